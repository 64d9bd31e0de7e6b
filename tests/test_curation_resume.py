"""Kill-and-resume: the CLI is SIGKILLed at random points and restarted; the result equals one clean run."""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.test_curation import read_folder, sidecar_bytes, write_caption_shards

REPO = Path(__file__).resolve().parents[1]


def _command(src: Path, out: Path, model: Path) -> list[str]:
    return [sys.executable, "-m", "unifilter_hf.cli", "curate", str(src), "--output", str(out), "--model",
            str(model), "--top-fraction", "0.5", "--batch-size", "2", "--window", "2", "--quiet"]


def _files(out: Path) -> int:
    return sum(1 for p in out.rglob("*") if p.is_file()) if out.exists() else 0


def _comparable(rows: list[dict]) -> list[dict]:
    """NaN != NaN: compare error rows' NaN scores as a marker."""
    return [{k: "NaN" if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()} for r in rows]


def _env() -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false")
    env["OMP_NUM_THREADS"] = "1"
    return env


def test_sigkill_at_random_points_then_resume_equals_clean_run(tmp_path, model_dir):
    src = write_caption_shards(tmp_path / "src", shards=4, rows=4)
    clean, resumed = tmp_path / "clean", tmp_path / "resumed"
    subprocess.run(_command(src, clean, model_dir), env=_env(), check=True, timeout=600)

    # manifest + timings + 4 sidecars + selection + 4x(curated, rejected) + summary = 16 files, then the
    # report (html + 5 figures) and the card: 23 at the end. Kills land anywhere before the last one.
    assert _files(clean) == 23
    rng = random.Random(7)
    kills = 0
    for target in sorted(rng.sample(range(1, 22), 3)):
        proc = subprocess.Popen(_command(src, resumed, model_dir), env=_env())
        while proc.poll() is None and _files(resumed) < target:
            time.sleep(0.02)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
    assert kills >= 1
    subprocess.run(_command(src, resumed, model_dir), env=_env(), check=True, timeout=600)

    assert sidecar_bytes(resumed) == sidecar_bytes(clean)
    for part in ("curated", "rejected"):
        assert _comparable(read_folder(resumed / part)) == _comparable(read_folder(clean / part))
    assert not [p for p in resumed.rglob(".tmp-*")]
    kept = read_folder(resumed / "curated")
    assert len({r["uid"] for r in kept}) == len(kept) == 6  # floor(0.5 * 13 scored rows), none duplicated
