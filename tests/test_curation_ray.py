"""The Ray Data engine on a real local Ray cluster: same sidecars as the local engine, and engines can hand over."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.test_curation import read_folder, sidecar_bytes, write_caption_shards
from unifilter_hf.curation import CurateConfig, curate, load_summary

ray = pytest.importorskip("ray")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ray_cluster():
    # Actors import unifilter_hf from this checkout and must stay offline like the tests.
    env = {"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "OMP_NUM_THREADS": "1", "HF_HOME": os.environ["HF_HOME"]}
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": env}, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_and_local_engines_write_identical_sidecars_and_hand_over(tmp_path, model_dir, ray_cluster):
    src = write_caption_shards(tmp_path / "src", shards=3, rows=4)
    common = dict(source=str(src), model=str(model_dir), batch_size=2, window=4, top_fraction=0.5, quiet=True)
    local = load_summary(curate(CurateConfig(**common, output=str(tmp_path / "local"))))
    on_ray = load_summary(curate(CurateConfig(**common, output=str(tmp_path / "ray"), engine="ray", num_actors=1)))
    assert on_ray["throughput"]["rows_scored_this_run"] == 12
    assert sidecar_bytes(tmp_path / "ray") == sidecar_bytes(tmp_path / "local")
    assert read_folder(tmp_path / "ray" / "curated") == read_folder(tmp_path / "local" / "curated")
    assert on_ray["counts"] == local["counts"]

    # Started locally, one shard left unscored, finished on Ray: the same job folder, the same result.
    handover = tmp_path / "handover"
    curate(CurateConfig(**common, output=str(handover)))
    (handover / "scores" / "part-01.parquet").unlink()
    for folder in ("curated", "rejected"):
        for path in (handover / folder).iterdir():
            path.unlink()
    finished = load_summary(curate(CurateConfig(**common, output=str(handover), engine="ray")))
    assert finished["throughput"]["rows_scored_this_run"] == 4
    assert sidecar_bytes(handover) == sidecar_bytes(tmp_path / "local")
