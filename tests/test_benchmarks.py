"""Smoke tests of the scoring benchmarks at `tiny` size: they run, report every field, and the paths agree.

No timing is asserted here: speed targets live in benchmarks/RESULTS.md.
"""

import importlib
import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

RESULT_FIELDS = {
    "size", "set", "path", "batch_size", "samples", "seconds", "seconds_all", "samples_per_s", "tokens_per_s",
    "gflop_per_sample", "gflop_per_s", "peak_ratio", "padding_waste", "split", "speedup", "speedup_best",
    "seconds_best", "peaks_all", "max_score_diff",
    "skipped",
}


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("bench_scoring")


def test_bench_scoring_quick_reports_every_field_and_the_paths_agree(bench, tmp_path):
    out = tmp_path / "bench.json"
    bench.main(["--sizes", "tiny", "--quick", "--json", str(out)])
    report = json.loads(out.read_text())
    assert {"machine", "peaks", "results", "seconds", "score_tolerance"} <= report.keys()
    assert report["peaks"]["tiny"]["gflop_per_s"] > 0 and len(report["peaks"]["tiny"]["load_before"]) == 3
    sets = {r["set"] for r in report["results"]}
    assert sets == {"captions", "short_documents", "long_documents", "mixed_documents"}
    for row in report["results"]:
        assert RESULT_FIELDS <= row.keys(), RESULT_FIELDS - row.keys()
        assert set(row["split"]) == {"decode", "preprocess", "vision", "llm"}
        assert row["max_score_diff"] <= bench.SCORE_TOLERANCE, row
        assert row["skipped"] == 0 and row["gflop_per_sample"] > 0 and row["padding_waste"] >= 0
    assert {r["path"] for r in report["results"]} == {"official", "ours"}


def test_bench_size_flops_match_the_issue(bench):
    """A caption (144 image tokens + ~20 text tokens) at `bench` size is about 26.5 GFLOP."""
    config = bench.bench_config(image_token_id=320, vocab_size=320)
    assert 25e9 < bench.sample_flops(config, num_images=1, length=164) < 28e9


def test_gpu_check_runs_on_cpu_at_tiny_size(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    gpu_check = importlib.import_module("gpu_check")
    out = tmp_path / "gpu.json"
    # the compiled rows are left out here (minutes of compiling on a shared CPU); test_scoring_speed covers them
    report = gpu_check.main(["--device", "cpu", "--tiny", "--no-compile", "--json", str(out)])
    assert json.loads(out.read_text())["matmul_peak_tflop_per_s"] > 0
    assert {(r["set"], r["timing"]) for r in report["results"]} == {
        *((s, t) for s in ("captions", "documents") for t in ("model", "scorer")), ("documents", "fp32"),
        ("long_docs", "all at once"), ("long_docs", "budget 512"),
    }
    assert all(r["samples_per_s"] > 0 and 0 < r["fraction_of_peak"] for r in report["results"])
    assert report["results"][-3]["max_score_diff_vs_eager"] < 0.05  # bf16 vs fp32 on the same weights


def test_gpu_check_projects_the_cost_table_without_a_gpu(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    report = importlib.import_module("gpu_check").main(["--project", "--peak-tflops", "989", "--fraction", "0.4"])
    hours = {r["dataset"]: r["gpu_hours"] for r in report["cost"]}
    assert 90 < hours["DataComp-medium"] < 110 and 450 < hours["OBELICS"] < 520  # docs/scaling.md's table


def test_bench_selection_prints_a_row_per_size_and_step(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    importlib.import_module("bench_selection").main(["--rows", "20000", "--shards", "2"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:2] == ["rows", "step"]
    assert [line.split()[1] for line in lines[1:]] == ["make_plan", "summarize", "report"]
    assert all(float(line.split()[-2]) >= 0 for line in lines[1:])

