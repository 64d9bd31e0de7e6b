"""Every door scores through the one batch path with the one settings object.

The pipeline, the `datasets` callables, `unifilter-hf score` and `unifilter-hf curate` give the same scores,
levels and reasons for the same rows; `score` and `curate` take the same scoring flags with the same meaning.
"""

from __future__ import annotations

import argparse
import inspect
import math
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from transformers import pipeline

from tests.badrows import jpeg, png
from unifilter_hf.cli import build_parser, main
from unifilter_hf.curation import CurateConfig
from unifilter_hf.curation.cli import config_from_args
from unifilter_hf.filtering import UniFilterSettings, unifilter_score
from unifilter_hf.scoring import QualityScorer
from unifilter_hf.scoring_settings import ScoringSettings

NAMES = ["coffee", "chelsea", "rocket", "china", "flower", "astronaut"]
BROKEN = b"\x89PNG not really"


def _captions() -> list[dict]:
    """Captions of very different lengths and one unreadable image."""
    rows = [{"image": {"bytes": jpeg(n), "path": None}, "text": f"A photograph of a {n}." * (1 + 12 * (i % 3))}
            for i, n in enumerate(NAMES)]
    rows.insert(3, {"image": {"bytes": BROKEN, "path": None}, "text": "A broken image."})
    return rows


def _documents() -> list[dict]:
    """OBELICS-style documents: one image, a few, one that loses an image, one cut at max_length, a failed one."""
    def doc(slots):
        return {"texts": [t for t, _ in slots], "images": [im for _, im in slots]}

    long_doc = [(None, png(NAMES[i % 6])) if i % 2 else (f"Paragraph {i} about the photos.", None) for i in range(80)]
    return [
        doc([("A short page.", None), (None, png("coffee"))]),
        doc([("Intro to a trip.", None), (None, png("china")), ("Then a launch.", None), (None, png("rocket")),
             ("And a cat at home, the end of a long day of travelling.", None), (None, jpeg("chelsea"))]),
        doc([("One image of two is broken.", None), (None, BROKEN), (None, png("flower"))]),
        doc(long_doc),  # 40 images x 16 tokens: longer than the tiny model's 512 positions
        doc([("Every image is broken.", None), (None, BROKEN)]),
        doc([("A page with text only and no images at all, which is still a document.", None)]),
    ]


def _records(rows):
    return [(r["score"], r["level"], r["error"], r["images_dropped"], r["images_cut"]) for r in rows]


def _assert_same(got, expected, door):
    assert len(got) == len(expected), door
    for i, ((s, level, error, dropped, cut), (s0, level0, error0, dropped0, cut0)) in enumerate(zip(got, expected)):
        where = f"{door}, row {i}"
        assert (error or None) == error0, where
        assert (dropped, cut) == (dropped0, cut0), where
        if error0:
            assert math.isnan(s) and level in (None, -1), where
        else:
            assert s == pytest.approx(s0, abs=1e-6) and level == level0, where


def test_pipeline_callables_score_and_curate_agree(model_dir, tmp_path, monkeypatch):
    read_rows = []  # rows through the one batch path, per door (the real method runs)
    real = QualityScorer.score_read
    monkeypatch.setattr(QualityScorer, "score_read", lambda self, read: read_rows.append(len(read)) or real(self, read))
    src = tmp_path / "src"
    src.mkdir()
    tables = {"captions": _captions(), "documents": _documents()}
    for name, rows in tables.items():
        pq.write_table(pa.Table.from_pylist(rows), src / f"{name}.parquet")

    pipe = pipeline("multimodal-quality-scoring", model=str(model_dir), device="cpu")
    expected = {name: _records(pipe(rows)) for name, rows in tables.items()}  # batch_size 1: one row a pass
    n_rows = sum(len(rows) for rows in tables.values())
    assert sum(read_rows) == n_rows
    # the rows mean something: scores spread, a bad row per table, documents lost and cut images
    flat = [r for name in tables for r in expected[name]]
    assert sum(1 for r in flat if r[2]) == 2 and len({r[1] for r in flat if not r[2]}) >= 2
    assert any(r[3] for r in expected["documents"]) and any(r[4] for r in expected["documents"])

    _assert_same(_records(pipe(tables["documents"], batch_size=4)), expected["documents"], "pipeline, batch_size=4")
    for name in tables:
        read_rows.clear()
        ds = datasets.Dataset.from_parquet(str(src / f"{name}.parquet"))
        mapped = ds.map(unifilter_score(model=str(model_dir), device="cpu", batch_size=3), batched=True,
                        batch_size=5, load_from_cache_file=False)
        _assert_same([(r["unifilter_score"], r["unifilter_level"], r["unifilter_error"], r["unifilter_images_dropped"],
                       r["unifilter_images_cut"]) for r in mapped], expected[name], f"datasets map, {name}")
        assert sum(read_rows) == len(tables[name])

        out = tmp_path / f"{name}-scored.parquet"
        assert main(["score", str(src / f"{name}.parquet"), "--model", str(model_dir), "--device", "cpu",
                     "--output", str(out)]) == 0
        written = pq.read_table(out).to_pylist()
        _assert_same([(r["unifilter_score"], r["unifilter_level"], r["unifilter_error"], r["unifilter_images_dropped"],
                       r["unifilter_images_cut"]) for r in written], expected[name], f"score, {name}")
        assert sum(read_rows) == 2 * len(tables[name])  # map, then score

    read_rows.clear()
    job = tmp_path / "job"
    assert main(["curate", str(src), "--output", str(job), "--model", str(model_dir), "--device", "cpu",
                 "--threshold", "0", "--no-report", "--quiet"]) == 0
    for name in tables:
        sidecar = sorted(pq.read_table(job / "scores" / f"{name}.parquet").to_pylist(), key=lambda r: r["index"])
        _assert_same(_records(sidecar), expected[name], f"curate, {name}")
    assert sum(read_rows) == n_rows


def test_score_and_curate_honour_the_same_reading_flags(model_dir, tmp_path):
    """--on-image-error (was score-only) and --max-images (was curate-only) mean the same in both commands."""
    src = tmp_path / "docs.parquet"
    rows = _documents()[:3]
    pq.write_table(pa.Table.from_pylist(rows), src)
    flags = ["--on-image-error", "fail", "--max-images", "2", "--model", str(model_dir), "--device", "cpu"]
    assert main(["score", str(src), "--output", str(tmp_path / "s.parquet"), *flags]) == 0
    assert main(["curate", str(src), "--output", str(tmp_path / "c"), "--no-report", "--quiet", *flags]) == 0
    scored = pq.read_table(tmp_path / "s.parquet").to_pylist()
    sidecar = pq.read_table(tmp_path / "c" / "scores" / "docs.parquet").to_pylist()
    # doc 1 keeps 2 of its 3 images (--max-images 2); doc 2 fails (--on-image-error fail: one image is broken),
    # where the defaults score both whole and doc 2 without its broken image
    assert [r["unifilter_images_dropped"] for r in scored] == [r["images_dropped"] for r in sidecar] == [0, 1, 0]
    errors = [r["unifilter_error"] for r in scored]
    assert errors == [r["error"] or "" for r in sidecar]
    assert errors[:2] == ["", ""] and errors[2].startswith("document: 1 of 2 images failed to load")
    for a, b in zip(scored[:2], sidecar[:2]):
        assert a["unifilter_score"] == pytest.approx(b["score"], abs=1e-6)
    manifest = (tmp_path / "c" / "manifest.json").read_text()
    assert '"on_image_error": "fail"' in manifest and '"max_images": 2' in manifest  # part of the resume identity


def _scoring_group(command: str) -> tuple[str, list[tuple]]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser = sub.choices[command]
    group = next(g for g in parser._action_groups if g.title == "scoring")
    actions = [(tuple(a.option_strings), a.dest, a.type, a.choices, a.default, a.help) for a in group._group_actions]
    text = parser.format_help()
    section = text[text.index("\nscoring:"):]
    section = section[: section.find("\n\n", 1) if "\n\n" in section[1:] else None]
    return section, actions


def test_score_and_curate_have_the_same_scoring_flags(capsys):
    score_help, score_actions = _scoring_group("score")
    curate_help, curate_actions = _scoring_group("curate")
    assert score_help == curate_help and score_actions == curate_actions
    options = {o for a in score_actions for o in a[0]}
    assert {"--model", "--device", "--batch-size", "--columns", "--max-images", "--image-timeout",
            "--on-image-error"} <= options
    for command in ("score", "curate"):  # what a user sees: `--help` lists them under "scoring"
        with pytest.raises(SystemExit):
            main([command, "--help"])
        shown = capsys.readouterr().out
        assert "\nscoring:" in shown and all(o in shown for o in options)


def test_one_settings_object_behind_score_curate_and_the_callables(tmp_path):
    argv = ["--batch-size", "3", "--columns", "image=jpg,text=txt", "--max-images", "4", "--image-timeout", "2.5",
            "--on-image-error", "score_rest", "--model", "m", "--device", "cpu"]
    score = build_parser().parse_args(["score", "x.parquet", "--output", "o.parquet", *argv])
    curate = config_from_args(build_parser().parse_args(["curate", "x/", "--output", "o", *argv]))
    settings = ScoringSettings.from_args(score)
    assert settings == curate.scoring and settings.device == curate.scoring.device == "cpu"
    assert (settings.batch_size, settings.columns.columns, settings.max_images) == (3, ["jpg", "txt"], 4)
    # the datasets callables take the same settings (plus the filter's own)
    keep = UniFilterSettings.of(settings).replace(threshold=2.5)
    assert keep.scoring_identity() == settings.scoring_identity() and keep.threshold == 2.5
    assert unifilter_score(settings=settings).settings.model == "m"
    # a recipe gives them flat (as recipes/*.yaml do) or under `scoring:`; flags win over the recipe
    recipe = tmp_path / "r.yaml"
    recipe.write_text("top_fraction: 0.5\nmax_images: 6\nscoring:\n  on_image_error: fail\n  batch_size: 2\n")
    config = config_from_args(build_parser().parse_args(["curate", "x/", "--config", str(recipe), "--output", "o",
                                                         "--batch-size", "5"]))
    assert (config.scoring.max_images, config.scoring.on_image_error, config.scoring.batch_size) == (6, "fail", 5)
    # defaults: the scorer's own, and a default job's manifest identity is what it was before
    defaults = {k: p.default for k, p in inspect.signature(QualityScorer.__init__).parameters.items()
                if k in ScoringSettings.names() and k != "model"}
    assert defaults == {k: getattr(ScoringSettings(), k) for k in defaults}
    assert CurateConfig(source="x", output="o").scoring_settings() == {"columns": None, "max_images": None}
    with pytest.raises(Exception, match="batch_size"):
        CurateConfig(source="x", output="o", batch_size=0)


def test_recipes_in_the_repository_still_load():
    repo = Path(__file__).resolve().parents[1]
    for recipe in sorted(repo.glob("recipes/curate-*.yaml")):
        config = config_from_args(build_parser().parse_args(["curate", "--config", str(recipe), "--output", "o"]))
        assert config.scoring.model == "weizhiwang/UniFilter-Qwen2.5-1.5B" and config.top_fraction


def test_pipeline_takes_key_datasets_through_the_same_path(model_dir):
    from transformers.pipelines.pt_utils import KeyDataset

    rows = _captions()[2:5]  # a good row, the broken one, a good row
    pipe = pipeline("multimodal-quality-scoring", model=str(model_dir), device="cpu")
    expected = _records(pipe(rows))
    got = _records(pipe(KeyDataset(datasets.Dataset.from_list([{"row": r} for r in rows]), "row"), batch_size=2))
    _assert_same(got, expected, "KeyDataset")
    assert expected[1][2] == "image: not a recognized image format"
