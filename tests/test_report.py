"""The curation report: sections, figures, example grid, attribution; rendered in a real headless Chromium.

The run is a real curation job with the trained quickstart model (tests/fixtures/quickstart-shapes) over the
demo's pool: shapes-world captions and documents from unseen scenes, and broken rows.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from unifilter_hf.curation import CurateConfig, curate
from unifilter_hf.demo.pool import build_pool, write_shapes_world
from unifilter_hf.publishing.curation_run import finish_curation
from unifilter_hf.report import ReportError, explain, explain_many, write_report
from unifilter_hf.report.browser import find_chromium, probe, screenshot
from unifilter_hf.sample import Sample
from unifilter_hf.scoring import QualityScorer
from unifilter_hf.synthesis.shapes_world import shapes_world_dataset

TRAINED = Path(__file__).parent / "fixtures" / "quickstart-shapes"
EXTERNAL = re.compile(r"""(src|href|url)\s*[=(]\s*["']?\s*(https?:|//|ftp:)""", re.I)


def _png(image: Image.Image) -> dict:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return {"bytes": buf.getvalue(), "path": None}


@pytest.fixture(scope="module")
def trained_scorer():
    return QualityScorer.from_pretrained(str(TRAINED), device="cpu")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    # the demo's pool: shapes captions and 2-3 scene documents of unseen scenes at all levels, broken rows
    src = root / "pool"
    build_pool(write_shapes_world(root / "shapes", num_scenes=16, seed=3), src, caption_scenes=6)
    out = root / "run"
    config = CurateConfig(source=str(src), output=str(out), model=str(TRAINED), top_fraction=0.5, batch_size=8,
                          quiet=True)
    finish_curation(curate(config), config)  # the report and the card, as `unifilter-hf curate` writes them
    return out


def test_curate_writes_every_section_and_figure(run_dir):
    # joint-layout rows count under the kind they are read as (24 captions + 6 broken; 16 documents + 2 broken)
    counts = json.loads((run_dir / "summary.json").read_text())["counts"]
    assert {k: c["in"] for k, c in counts.items()} == {"caption": 30, "document": 18}
    html = (run_dir / "report" / "report.html").read_text()
    for section in ("run", "scores", "errors", "throughput", "examples"):
        assert f'<section id="{section}">' in html
    for figure in ("score_histogram.png", "kept_fraction.png", "level_distribution.png", "errors_by_reason.png",
                   "throughput.png"):
        assert f'src="{figure}"' in html
        assert (run_dir / "report" / figure).stat().st_size > 5000
    # the two broken rows are counted by reason, and the cut of each kind is in the table
    assert "caption: empty text" in html and "all images failed to load" in html
    assert html.count("data:image/jpeg;base64,") >= 8  # thumbnails embedded, none fetched
    assert not EXTERNAL.search(html)
    # every score band that has rows shows examples: kept (green edge) and rejected (red edge) cards
    assert 'class="card kept"' in html and 'class="card rejected"' in html
    # caption cards show the caption under the thumbnail
    assert re.search(r'alt="image slot">\s*</div>\s*<div class="slot">\s*<div class="txt">\w+ \w+', html)
    assert len(set(re.findall(r"<h3>band (\d)", html))) >= 3


def test_low_band_documents_carry_attribution_bars(run_dir):
    html = (run_dir / "report" / "report.html").read_text()
    bars = re.findall(r'<div class="bar (neg|pos)" style="width: ([\d.]+)%">', html)
    assert bars, "no attribution bars in the example grid"
    assert "neg" in {kind for kind, _ in bars}
    assert max(float(w) for _, w in bars) == 100.0  # each document's largest effect spans the bar


def test_report_command_rewrites_and_refuses_a_wrong_folder(run_dir, tmp_path, capsys):
    from unifilter_hf.cli import main

    (run_dir / "report" / "report.html").unlink()
    assert main(["report", str(run_dir), "--no-attribution", "--examples", "1"]) == 0
    html = (run_dir / "report" / "report.html").read_text()
    assert 'class="bar' not in html and html.count('<div class="card') >= 4
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "manifest.json" in err and "curate" in err and len(err.strip().splitlines()) == 1
    assert main(["report", str(run_dir), "--explain-bands", "5"]) == 2
    assert "--explain-bands takes bands 0..3" in capsys.readouterr().err
    with pytest.raises(ReportError):
        write_report(tmp_path / "missing")


def test_unrelated_inserted_image_gets_the_largest_negative_contribution(trained_scorer):
    scenes = shapes_world_dataset(60, split="validation", seed=11)
    positives = [r for r in scenes if r["label"] == 3]
    docs = [Sample.document([None, a["text"], None], [a["image"], None, c["image"]])  # c's image: unrelated
            for a, c in zip(positives[0::2], positives[1::2])]
    results = explain_many(docs, trained_scorer)
    hits = [r.most_negative() is not None and r.most_negative().index == 2 for r in results]
    assert len(hits) == 30 and sum(hits) >= 24, hits  # measured: 27 of 30
    assert all([s.index for s in r.slots] == [0, 1, 2] for r in results)
    # one document through explain() equals the batched call
    single = explain(docs[0], trained_scorer)
    assert [s.contribution for s in single.slots] == pytest.approx([s.contribution for s in results[0].slots], abs=1e-5)


def test_explain_reads_rows_and_refuses_captions(trained_scorer):
    scene = shapes_world_dataset(1, split="validation", seed=2)[0]
    row = {"texts": [None, scene["text"]], "images": [_png(scene["image"]), None]}
    result = explain(row, trained_scorer)
    whole = trained_scorer.score_rows([row])[0].score
    assert abs(result.score - whole) < 1e-5
    assert [s.kind for s in result.slots] == ["image", "text"]
    with pytest.raises(ValueError, match="caption"):
        explain(Sample.caption(scene["image"], scene["text"]), trained_scorer)


chromium = pytest.mark.skipif(find_chromium() is None, reason="no Chromium (.ci/run installs Debian's chromium)")


@chromium
def test_report_renders_in_headless_chromium_offline(run_dir, tmp_path):
    report = run_dir / "report" / "report.html"
    seen = probe(report)
    figures = [i for i in seen["images"] if i["alt"] != "image slot"]
    thumbs = [i for i in seen["images"] if i["alt"] == "image slot"]
    assert len(figures) == 5 and len(thumbs) >= 8
    assert all(i["complete"] and i["width"] > 0 for i in seen["images"]), seen["images"]
    assert seen["network"] == [] and all(u.startswith(("file:", "data:")) for u in seen["resources"])
    # the screenshot shows the histogram's bars (matplotlib's blue) and the cut line (red)
    shot = np.asarray(Image.open(screenshot(report, tmp_path / "shot.png", height=3000)).convert("RGB")).astype(int)
    blue = (np.abs(shot - [31, 119, 180]).sum(-1) < 30).sum()
    assert blue > 2000, blue


@chromium
def test_probe_sees_a_missing_figure_and_a_remote_fetch(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir / "report", copy)
    (copy / "kept_fraction.png").unlink()
    page = copy / "report.html"
    page.write_text(page.read_text().replace("</body>", '<img alt="remote" src="http://example.org/x.png"></body>'))
    seen = probe(page)
    widths = {i["alt"]: i["width"] for i in seen["images"]}
    assert widths["kept fraction against threshold"] == 0 and widths["score histogram per kind"] > 0
    assert widths["remote"] == 0 and seen["network"] == ["GET http://example.org/x.png"]


def test_streamed_statistics_equal_a_brute_force_count(run_dir, monkeypatch):
    from unifilter_hf.report import run_data

    rows = [r for p in sorted((run_dir / "scores").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    curated = [r for p in sorted((run_dir / "curated").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    monkeypatch.setattr(run_data, "SAMPLE_PER_BAND", 2)  # a bounded sample, however many rows
    run = run_data.load_run(run_dir)
    for kind, stats in run.stats.items():
        scored = [r for r in rows if r["kind"] == kind and r["error"] is None]
        assert stats.rows == len(scored) == int(stats.hist.sum())
        assert stats.kept == sum(r["kind"] == kind for r in curated) == int(stats.kept_hist.sum())
        assert stats.bands == [sum(run_data.band_of(r["score"]) == b for r in scored) for b in range(4)]
        assert (stats.low, stats.high) == (min(r["score"] for r in scored), max(r["score"] for r in scored))
        assert all(len(heap) <= 2 for heap in stats.samples)
    picks = run_data.pick_examples(run, 3)
    assert picks == run_data.pick_examples(run_data.load_run(run_dir), 3)  # deterministic
    assert all(ex.band == run_data.band_of(ex.score) for ex in picks)
