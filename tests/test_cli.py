"""The `unifilter-hf` command as a user runs it: demo and score."""

import math
import statistics
import subprocess
import sys

import datasets

from tests.badrows import image_dict, jpeg
from unifilter_hf.cli import main


def test_demo_runs_offline_end_to_end(tmp_path, capsys):
    assert main(["demo", "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "TINY RANDOM model" in out
    for kind in ("caption", "document"):
        scored = datasets.Dataset.from_parquet(str(tmp_path / f"{kind}_scores.parquet"))
        kept = datasets.Dataset.from_parquet(str(tmp_path / f"{kind}_kept.parquet"))
        assert sorted(set(scored["level"])) == [0, 1, 2, 3]
        assert all(e == "" and math.isfinite(s) for e, s in zip(scored["unifilter_error"], scored["unifilter_score"]))
        median = statistics.median(scored["unifilter_score"])  # the demo's default cut for a random model
        assert set(kept["id"]) == {i for i, s in zip(scored["id"], scored["unifilter_score"]) if s >= median}
        assert 0 < len(kept) < len(scored)
    assert (tmp_path / "synthetic" / "records.jsonl").exists()


def test_score_command_filters_a_parquet_file(tmp_path, model_dir):
    rows = [
        {"image": image_dict(jpeg(n)), "text": t}
        for n, t in [("coffee", "A cup of coffee."), ("rocket", "A rocket on a pad."), ("flower", "A flower.")]
    ]
    rows.append({"image": image_dict(b"broken"), "text": "A broken image."})
    src = tmp_path / "in.parquet"
    datasets.Dataset.from_list(rows).to_parquet(src)
    out = tmp_path / "out.parquet"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "unifilter_hf.cli",
            "score",
            str(src),
            "--model",
            str(model_dir),
            "--output",
            str(out),
            "--threshold",
            "1.0",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    kept = datasets.Dataset.from_parquet(str(out))
    assert 0 < len(kept) < 4 and all(s >= 1.0 for s in kept["unifilter_score"])
    assert "A broken image." not in kept["text"]
