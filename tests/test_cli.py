"""The `unifilter-hf` command as a user runs it: demo arguments and score."""

import json
import math
import subprocess
import sys

import datasets
import pytest

from tests.badrows import image_dict, jpeg
from tests.kit import caption_rows, run_cli
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


def test_score_command_reads_hub_style_parquet_undecoded(hub_style_parquet, model_dir, tmp_path):
    out = tmp_path / "out.parquet"
    assert main(["score", str(hub_style_parquet), "--model", str(model_dir), "--output", str(out)]) == 0
    errors = datasets.Dataset.from_parquet(str(out))["unifilter_error"]
    assert len(errors) == 4 and sum(bool(e) for e in errors) == 1


def test_score_command_rerun_with_the_right_image_root_is_not_stale(default_model, tmp_path, monkeypatch):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "coffee.jpg").write_bytes(jpeg("coffee"))
    table = tmp_path / "rows.jsonl"
    table.write_text(json.dumps({"image": "coffee.jpg", "text": "A cup of coffee."}) + "\n")
    out = tmp_path / "out.jsonl"
    monkeypatch.chdir(photos)  # relative paths resolve next to the data file, not in the working folder
    assert main(["score", str(table), "--output", str(out)]) == 0
    assert "file not found" in json.loads(out.read_text())["unifilter_error"]
    assert main(["score", str(table), "--output", str(out), "--image-root", str(photos)]) == 0
    row = json.loads(out.read_text())
    assert row["unifilter_error"] == "" and math.isfinite(row["unifilter_score"])


def test_cli_errors_are_one_line_with_the_fix(model_dir, tmp_path):
    table = tmp_path / "rows.parquet"
    datasets.Dataset.from_list(caption_rows(2)).to_parquet(table)
    renamed = tmp_path / "renamed.parquet"
    datasets.Dataset.from_list([{"URL": r["image"], "TEXT": r["text"]} for r in caption_rows(2)]).to_parquet(renamed)
    out = str(tmp_path / "o.parquet")
    cases = {
        "missing input": (["score", str(tmp_path / "nope.parquet"), "--output", out, "--model", str(model_dir)],
                          "no such file"),
        "bad model path": (["score", str(table), "--output", out, "--model", str(tmp_path / "no-model")],
                           "--model"),
        "wrong columns": (["score", str(renamed), "--output", out, "--model", str(model_dir)], "--columns"),
        "batch size 0": (["score", str(table), "--output", out, "--batch-size", "0"], "at least 1"),
        "bad output": (["score", str(table), "--output", str(tmp_path / "o.txt"), "--model", str(model_dir)],
                       ".parquet, .jsonl or .csv"),
    }
    for name, (args, fix) in cases.items():
        run = run_cli(*args)
        assert run.returncode == 2, (name, run.stderr)
        lines = [line for line in run.stderr.splitlines()
                 if line.strip() and not line.startswith("usage:") and "/s]" not in line]  # progress bars
        assert len(lines) == 1 and fix in lines[0] and "Traceback" not in run.stderr, (name, run.stderr)
    debug = run_cli(*cases["missing input"][0], "--debug")
    assert "Traceback" in debug.stderr


def test_cli_options_jsonl_output_shards_folder_columns_keep_errors(model_dir, tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    rows = [{"URL": r["image"], "TEXT": r["text"]} for r in caption_rows(4)]
    rows.append({"URL": image_dict(b"broken"), "TEXT": "A broken image."})
    datasets.Dataset.from_list(rows[:3]).to_parquet(shards / "part-0.parquet")
    datasets.Dataset.from_list(rows[3:]).to_parquet(shards / "part-1.parquet")
    out = tmp_path / "kept.jsonl"
    run = run_cli("score", str(shards), "--model", str(model_dir), "--output", str(out), "--columns",
               "image=URL,text=TEXT", "--threshold", "100", "--keep-errors", "--device", "cpu")
    assert run.returncode == 0, run.stderr
    kept = [json.loads(line) for line in out.read_text().splitlines()]  # JSON lines, not Parquet
    assert [r["TEXT"] for r in kept] == ["A broken image."]  # nothing reaches 100; the error row is kept
    hub = run_cli("score", "someone/some-dataset", "--model", str(model_dir), "--output", str(out))
    assert hub.returncode == 2 and "Hub dataset" in hub.stderr and "Traceback" not in hub.stderr
