"""The `unifilter-hf` command as a user runs it: demo arguments and score."""

import subprocess
import sys

import datasets
import pytest

from tests.badrows import image_dict, jpeg
from unifilter_hf.cli import build_parser, main


def test_demo_command_arguments(capsys):
    """The demo's options (its run is tested in tests/test_demo.py): --output and --fresh; --quick is hidden."""
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = capsys.readouterr().out
    assert "--output" in text and "--fresh" in text and "--quick" not in text
    args = build_parser().parse_args(["demo"])
    assert (args.output, args.fresh, args.quick) == ("out/demo", False, False)


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
