"""`unifilter-hf demo`: every artefact of a reduced run, reuse and --fresh, and the selection of a trained model."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from transformers import pipeline

from unifilter_hf.cli import main
from unifilter_hf.curation import CurateConfig, curate
from unifilter_hf.demo import DemoSizes, run_demo
from unifilter_hf.demo.pool import DEFECTS, POOL_FILE, build_pool, level_means, write_shapes_world
from unifilter_hf.report.browser import find_chromium, probe, screenshot

FIXTURE_MODEL = Path(__file__).parent / "fixtures" / "quickstart-shapes"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One reduced demo through the CLI, then a second run over the same folder (must reuse data and model)."""
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--output", str(out), "--quick"]) == 0
    first = json.loads((out / "demo_summary.json").read_text())
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "pool" / POOL_FILE, out / "model" / "model.safetensors")}
    lines: list[str] = []
    second = run_demo(out, sizes=DemoSizes.quick(), echo=lines.append)
    return out, first, second, mtimes, lines


def test_demo_writes_every_artefact(demo_run):
    out, first, _, _, _ = demo_run
    assert first["stages"]["data"]["status"] == "built" and first["stages"]["model"]["status"] == "trained"
    metrics = json.loads((out / "model" / "metrics.json").read_text())
    q = metrics["quality_metrics"]
    for key in ("accuracy", "macro_f1", "pairwise_accuracy"):
        assert 0.0 <= q[key] <= 1.0 and first["metrics"][key] == q[key]
    assert len(q["confusion_matrix"]) == 4 and sum(map(sum, q["confusion_matrix"])) == q["num_examples"]
    for name in ("confusion_matrix.png", "score_distribution.png", "training_curve.png", "README.md"):
        assert (out / "model" / name).is_file(), name
    assert (out / "data" / "shapes-world" / "README.md").is_file()
    assert pq.read_table(out / "data" / "shapes-world" / "validation.parquet").num_rows == 4 * 16

    # kept + rejected = input; the rows with errors are exactly the broken ones, each with its reason
    pool = pq.read_table(out / "pool" / POOL_FILE).to_pylist()
    kept = pq.read_table(out / "curation" / "curated").to_pylist()
    rejected = pq.read_table(out / "curation" / "rejected").to_pylist()
    assert len(kept) + len(rejected) == len(pool) == first["levels"]["rows"]
    assert {r["id"] for r in kept} | {r["key"] for r in rejected} == {r["id"] for r in pool}
    errors = {r["key"]: r["reason"] for r in rejected if r["reason"].startswith("error: ")}
    broken = {r["id"]: r["defect"] for r in pool if r["defect"]}
    assert set(errors) == set(broken) and len(broken) >= 3 * 2
    assert set(broken.values()) == set(DEFECTS)
    for key, defect in broken.items():
        assert DEFECTS[defect] in errors[key] or "all images failed to load" in errors[key], (defect, errors[key])
    assert first["stages"]["curation"]["total"]["errors"] == len(broken)
    for kind in ("caption", "document"):  # the top fraction of each kind's scorable rows
        scored = sum(1 for r in pool if not r["defect"] and r["kind"] == kind)
        assert sum(r["kind"] == kind for r in kept) == math.floor(0.25 * scored), kind
    assert {"level", "kind", "unifilter_score"} <= set(kept[0])

    # the push commands name each Hub-ready folder
    assert set(first["push"]) == {"curated dataset", "model"}
    assert first["push"]["model"].startswith(f"unifilter-hf push {out / 'model'} ")


def test_demo_checkpoint_scores_equal_the_curated_scores(demo_run):
    out = demo_run[0]
    scorer = pipeline("multimodal-quality-scoring", model=str(out / "model"))
    kept = pq.read_table(out / "curation" / "curated").to_pylist()
    results = scorer([{"images": r["images"], "texts": r["texts"], "kind": r["kind"]} for r in kept])
    for row, result in zip(kept, results):
        assert result["error"] is None
        assert result["score"] == pytest.approx(row["unifilter_score"], abs=1e-5), row["id"]


def test_demo_second_run_reuses_data_model_and_ablation(demo_run):
    out, first, second, mtimes, lines = demo_run
    assert second["stages"]["data"]["status"] == "reused"
    assert second["stages"]["model"]["status"] == "reused"
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())
    # Curation is redone (same scores), so the ablation's result is put back, not recomputed.
    assert first["stages"]["ablation"]["status"] == "ran" and second["stages"]["ablation"]["status"] == "reused"
    assert second["ablation"] == first["ablation"]
    assert [line[:5] for line in lines if line.startswith("[")] == ["[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"]
    assert any("mean true level" in line for line in lines)
    table = next(line for line in lines if line.startswith("[4/5] ablation (reused, "))
    assert all(name in table for name in ("UniFilter", "random", "CLIP-score", "oracle", "2 seeds", " ± "))
    assert set(second["ablation"]) == {"unifilter", "random", "clip_score", "oracle"}


def test_demo_warns_when_its_model_is_blind_to_images(demo_run):
    from unifilter_hf.demo.run import blind_model_warning

    _, _, second, _, lines = demo_run
    per_edit = second["metrics"]["accuracy_per_edit"]
    blind = bool(per_edit) and all(acc <= 0.5 for acc in per_edit.values())
    assert second["metrics"]["blind_to_images"] is blind
    assert any(line.startswith("WARNING: the model looks blind") for line in lines) is blind
    assert any("fresh 2-core machines get accuracy 0.66-0.72" in line for line in lines)
    # the trained fixture reads the image; the blank-image control of docs/training.md did not
    trained = json.loads((FIXTURE_MODEL / "metrics.json").read_text())["eval_accuracy_per_edit"]
    assert blind_model_warning(trained) is None
    control = {"colour": 0.446, "shape": 0.484, "count": 0.426, "position": 0.441}
    assert "colour 0.45, count 0.43, position 0.44, shape 0.48" in blind_model_warning(control)


def test_demo_fresh_rebuilds_and_changed_recipe_settings_retrain(demo_run, tmp_path):
    out = demo_run[0]
    lines: list[str] = []
    sizes = DemoSizes.quick()
    sizes.train_overrides += ["--learning_rate", "0.002"]  # other settings: the model must be retrained
    changed = run_demo(out, sizes=sizes, echo=lines.append)
    assert changed["stages"]["data"]["status"] == "reused" and changed["stages"]["model"]["status"] == "trained"
    assert changed["stages"]["ablation"]["status"] == "ran"  # another model, other scores: the ablation reruns
    (out / "stray.txt").write_text("left by an earlier run")
    fresh = run_demo(out, sizes=sizes, fresh=True, echo=lines.append)
    assert fresh["stages"]["data"]["status"] == "built" and fresh["stages"]["model"]["status"] == "trained"
    assert not (out / "stray.txt").exists()


def test_demo_report_artifacts(demo_run):
    """The report and the dataset card that `curate` writes at the end of the demo's curation."""
    out, first = demo_run[0], demo_run[1]
    report = out / "curation" / "report" / "report.html"
    assert first["report"] == str(report)
    html = report.read_text()
    pngs = sorted(set(re.findall(r'src="([\w.]+\.png)"', html)))
    assert pngs == ["ablation.png", "errors_by_reason.png", "kept_fraction.png", "level_distribution.png",
                    "score_histogram.png", "throughput.png"]
    assert '<section id="ablation">' in html and (out / "curation" / "ablation.json").is_file()
    assert all((report.parent / name).stat().st_size > 5000 for name in pngs)
    assert html.count('alt="image slot"') >= 8 and '<section id="examples">' in html
    card = (out / "curation" / "README.md").read_text()
    assert "report/score_histogram.png" in card and "curated/*.parquet" in card


@pytest.mark.skipif(find_chromium() is None, reason="no Chromium (.ci/run installs Debian's chromium)")
def test_demo_report_renders_plots_and_thumbnails_in_chromium(demo_run, tmp_path):
    report = demo_run[0] / "curation" / "report" / "report.html"
    seen = probe(report)
    figures = [i for i in seen["images"] if i["alt"] != "image slot"]
    thumbs = [i for i in seen["images"] if i["alt"] == "image slot"]
    assert len(figures) == 6 and len(thumbs) >= 8 and seen["network"] == []  # 6th: the ablation chart
    assert all(i["complete"] and i["width"] > 0 for i in seen["images"]), seen["images"]
    shot = np.asarray(Image.open(screenshot(report, tmp_path / "shot.png", height=4000)).convert("RGB")).astype(int)
    histogram_blue = (np.abs(shot - [31, 119, 180]).sum(-1) < 30).sum()
    kept_green = (np.abs(shot - [44, 160, 44]).sum(-1) < 30).sum()  # kept bars and kept cards' edges
    assert histogram_blue > 2000 and kept_green > 500, (histogram_blue, kept_green)


def test_trained_model_keeps_better_rows_than_chance(tmp_path):
    """The real-size pool curated by the trained quickstart fixture: the kept quarter's mean level is well above."""
    sizes = DemoSizes()
    shapes = write_shapes_world(tmp_path / "shapes", sizes.shapes_scenes)
    build_pool(shapes, tmp_path / "pool", sizes.caption_scenes, sizes.broken_per_defect)
    curate(CurateConfig(source=str(tmp_path / "pool"), output=str(tmp_path / "cur"), model=str(FIXTURE_MODEL),
                        top_fraction=0.25, quiet=True))
    means = level_means(tmp_path / "cur", tmp_path / "pool" / POOL_FILE)
    pool, kept = means["pool_mean_level"], means["kept_mean_level"]
    assert pool["all"] == pytest.approx(1.5)
    assert kept["all"] > pool["all"] + 0.6, means  # measured: 2.57 vs 1.50 (captions 2.56, documents 2.62)
    assert kept["document"] > pool["document"] + 0.4, means  # measured: 2.62 vs 1.50
