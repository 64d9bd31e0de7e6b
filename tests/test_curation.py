"""Curation job (local engine): selection, re-selection, refusal to mix, webdataset layouts, bounded memory.

Helpers here build tiny multi-shard fixtures (real photos, a few dozen rows) and are reused by the resume and
Ray tests.
"""

from __future__ import annotations

import base64
import io
import json
import math
import tarfile
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.kit import PHOTO_NAMES, photo
from unifilter_hf.curation import CurateConfig, CurationError, curate, load_summary
from unifilter_hf.curation.selection import decide, decide_many, make_plan

TEXTS = ["A cup of coffee.", "A cat.", "A rocket on a pad.", "A temple roof.", "A flower.", "Astronaut."]


def png_bytes(name: str, size: int = 40) -> bytes:
    buf = io.BytesIO()
    photo(name, size).convert("RGB").save(buf, "PNG")
    return buf.getvalue()


def write_caption_shards(folder: Path, shards: int = 3, rows: int = 6, corrupt: bool = True) -> Path:
    """Hub-style Parquet shards (datasets Image feature), one corrupt image per shard."""
    folder.mkdir(parents=True, exist_ok=True)
    features = datasets.Features({"uid": datasets.Value("string"), "image": datasets.Image(),
                                  "text": datasets.Value("string")})
    for s in range(shards):
        images, texts, uids = [], [], []
        for i in range(rows):
            k = (s + i) % len(PHOTO_NAMES)
            bad = corrupt and i == 2
            images.append({"bytes": b"\x89PNG broken" if bad else png_bytes(PHOTO_NAMES[k]), "path": None})
            texts.append(TEXTS[k])
            uids.append(f"s{s}-r{i}")
        datasets.Dataset.from_dict({"uid": uids, "image": images, "text": texts}, features=features).to_parquet(
            str(folder / f"part-{s:02d}.parquet")
        )
    return folder


def write_document_shard(path: Path, rows: int = 4) -> Path:
    """OBELICS-style documents (images + texts) as a Parquet shard."""
    docs = []
    for i in range(rows):
        a, b = PHOTO_NAMES[i % 6], PHOTO_NAMES[(i + 1) % 6]
        docs.append({"id": f"doc{i}", "texts": [TEXTS[i % 6], None, TEXTS[(i + 2) % 6], None],
                     "images": [None, png_bytes(a), None, png_bytes(b)]})
    pq.write_table(pa.Table.from_pylist(docs), path)
    return path


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_datacomp_tar(path: Path, rows: int = 5) -> Path:
    """DataComp-style members: jpg/png/webp + txt + json; member 0001's image is corrupt."""
    with tarfile.open(path, "w") as tar:
        for i in range(rows):
            key = f"{i:04d}"
            ext = ("jpg", "png", "webp")[i % 3]
            buf = io.BytesIO()
            photo(PHOTO_NAMES[i % 6], 40).convert("RGB").save(buf, {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}[ext])
            data = buf.getvalue()[:40] if i == 1 else buf.getvalue()
            _add(tar, f"{key}.{ext}", data)
            _add(tar, f"{key}.txt", TEXTS[i % 6].encode())
            _add(tar, f"{key}.json", json.dumps({"uid": f"dc{i}", "caption": TEXTS[i % 6]}).encode())
    return path


def write_obelics_tar(path: Path, rows: int = 4) -> Path:
    """OBELICS-style members: one json per document, texts + image_info with base64 images; one bad json."""
    with tarfile.open(path, "w") as tar:
        for i in range(rows):
            if i == 2:
                _add(tar, f"doc{i:03d}.json", b'{"texts": ["truncated')
                continue
            info = [None, {"image_base64": base64.b64encode(png_bytes(PHOTO_NAMES[i % 6])).decode()}, None]
            doc = {"texts": [TEXTS[i % 6], None, TEXTS[(i + 3) % 6]], "image_info": info}
            _add(tar, f"doc{i:03d}.json", json.dumps(doc).encode())
    return path


def read_folder(folder: Path) -> list[dict]:
    return [r for f in sorted(folder.glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def sidecar_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "scores").glob("*.parquet"))}


def test_top_fraction_equals_brute_force_sort(tmp_path, model_dir):
    src = write_caption_shards(tmp_path / "src", shards=3, rows=6)
    out = tmp_path / "out"
    summary = load_summary(curate(CurateConfig(source=str(src), output=str(out), model=str(model_dir), top_fraction=0.4,
                                  batch_size=4, quiet=True)))
    scores = read_folder(out / "scores")
    assert len(scores) == 18 and sum(r["error"] is not None for r in scores) == 3
    ok = [r for r in scores if r["error"] is None]
    brute = sorted(ok, key=lambda r: (-r["score"], r["key"]))[: math.floor(0.4 * len(ok))]
    kept = read_folder(out / "curated")
    assert [r["uid"] for r in kept] != []
    assert sorted(r["uid"] for r in kept) == sorted(r["key"] for r in brute)
    assert {r["unifilter_score"] for r in kept} == {r["score"] for r in brute}
    rejected = read_folder(out / "rejected")
    assert len(kept) + len(rejected) == 18 == summary["total"]["in"]
    q = summary["score_quantiles"]["caption"]
    assert (q["q00"], q["q50"], q["q100"]) == pytest.approx(
        (min(r["score"] for r in ok), float(np.median([r["score"] for r in ok])), max(r["score"] for r in ok)))
    assert sum(r["reason"].startswith("error: image") for r in rejected) == 3
    # Source columns keep their datasets types: the curated Image column still decodes to a photo.
    curated = datasets.load_dataset("parquet", data_files=str(out / "curated" / "*.parquet"), split="train")
    assert isinstance(curated.features["image"], datasets.Image)
    assert curated[0]["image"].size[0] > 1


def test_ties_are_broken_by_key_then_shard_then_index():
    table = pa.table({"index": [0, 1, 2, 3], "key": ["d", "b", "c", "a"], "kind": ["caption"] * 4,
                      "score": [2.0, 2.0, 2.0, 1.0], "error": [None] * 4})
    plan = make_plan({"s1": table}, {"threshold": None, "top_fraction": 0.5, "keep_errors": False})
    kept = [r["key"] for r in table.to_pylist() if decide(plan, "s1", r)[0]]
    assert kept == ["b", "c"]  # the two best of the three tied 2.0 rows, by key


@pytest.mark.parametrize("seed", range(5))
def test_top_fraction_cut_equals_a_full_sort_with_many_ties(seed):
    rng = np.random.default_rng(seed)
    tables, entries = {}, {}
    for s in range(3):
        n = int(rng.integers(5, 40))
        scores = rng.choice([0.5, 1.25, 2.0, float("nan")], n).tolist()  # few values: many ties
        errors = [None if rng.random() > 0.1 else "image: truncated file" for _ in range(n)]
        table = pa.table({"index": list(range(n)), "key": [f"k{int(k)}" for k in rng.integers(0, 6, n)],
                          "kind": rng.choice(["caption", "document"], n).tolist(), "score": scores, "error": errors})
        tables[f"shard-{s}"] = table
        for r in table.to_pylist():
            if r["error"] is None and not math.isnan(r["score"]):
                entries.setdefault(r["kind"], []).append((-r["score"], r["key"], f"shard-{s}", r["index"]))
    fraction = float(rng.choice([0.1, 0.35, 0.5, 0.9]))
    plan = make_plan(tables, {"threshold": None, "top_fraction": fraction, "keep_errors": False})
    kept = {(shard, r["index"]) for shard, t in tables.items() for r in t.to_pylist() if decide(plan, shard, r)[0]}
    brute = {(e[2], e[3]) for rows in entries.values() for e in sorted(rows)[: math.floor(fraction * len(rows))]}
    assert kept == brute
    for keep_errors in (False, True):  # the vectorized decision answers as decide() does, row by row
        for settings in ({"threshold": 1.25}, {"threshold": None, "top_fraction": fraction}):
            plan = make_plan(tables, {"threshold": None, "top_fraction": None, **settings, "keep_errors": keep_errors})
            for shard, t in tables.items():
                assert decide_many(plan, shard, t).tolist() == [decide(plan, shard, r)[0] for r in t.to_pylist()]


def test_reselect_reuses_sidecars_and_keep_errors(tmp_path, model_dir):
    src = write_caption_shards(tmp_path / "src", shards=2, rows=5)
    out = tmp_path / "out"
    base = dict(source=str(src), output=str(out), model=str(model_dir), batch_size=4, quiet=True)
    first = load_summary(curate(CurateConfig(**base, threshold=1.0)))
    before = {p: p.stat().st_mtime_ns for p in (out / "scores").iterdir()}
    again = load_summary(curate(CurateConfig(**base, top_fraction=0.5, keep_errors=True, select_only=True)))
    assert {p: p.stat().st_mtime_ns for p in (out / "scores").iterdir()} == before
    assert again["throughput"]["rows_scored_this_run"] == 0
    assert first["selection"] != again["selection"]
    kept = read_folder(out / "curated")
    assert sum(r["unifilter_error"] is not None for r in kept) == 2  # errors kept with their reason
    assert len(kept) == math.floor(0.5 * 8) + 2


def test_restart_with_another_model_is_refused(tmp_path, model_dir, capsys):
    from tests.kit import tiny_model_and_processor
    from unifilter_hf.cli import main

    src = write_caption_shards(tmp_path / "src", shards=1, rows=3)
    out = tmp_path / "out"
    curate(CurateConfig(source=str(src), output=str(out), model=str(model_dir), quiet=True))
    other = tmp_path / "other-model"
    model, proc = tiny_model_and_processor(seed=5)
    model.save_pretrained(other)
    proc.save_pretrained(other)
    with pytest.raises(CurationError, match="different model fingerprint.*--overwrite"):
        curate(CurateConfig(source=str(src), output=str(out), model=str(other), quiet=True))
    capsys.readouterr()
    assert main(["curate", str(src), "--output", str(out), "--model", str(other), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--overwrite" in err
    assert main(["curate", str(tmp_path / "missing"), "--output", str(out), "--quiet"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_webdataset_both_layouts_every_row_accounted_for(tmp_path, model_dir):
    src = tmp_path / "src"
    src.mkdir()
    write_datacomp_tar(src / "datacomp-000.tar", rows=5)
    write_obelics_tar(src / "obelics-000.tar", rows=4)
    out = tmp_path / "out"
    summary = load_summary(curate(CurateConfig(source=str(src), output=str(out), model=str(model_dir), threshold=0.0,
                                  batch_size=4, quiet=True)))
    scores = {r["key"]: r for r in read_folder(out / "scores")}
    assert len(scores) == 9
    assert scores["0001"]["error"].startswith("image:")  # the truncated jpg member
    assert scores["doc002"]["error"] == "json: member is not valid JSON"
    assert scores["doc000"]["kind"] == "document" and scores["doc000"]["error"] is None
    assert scores["0000"]["kind"] == "caption" and scores["0000"]["error"] is None
    kept, rejected = read_folder(out / "curated"), read_folder(out / "rejected")
    assert len(kept) + len(rejected) == 9 == summary["total"]["in"]
    assert summary["total"]["errors"] == 2
    assert {r["key"] for r in rejected if r["reason"].startswith("error:")} == {"0001", "doc002"}
    # members are written back as they were
    assert {r["__key__"] for r in kept} == {k for k, r in scores.items() if r["error"] is None}
    assert all(isinstance(r["txt"], bytes) for r in kept if r["__key__"].isdigit())


def test_mixed_kinds_are_ranked_separately(tmp_path, model_dir):
    src = write_caption_shards(tmp_path / "src", shards=1, rows=6, corrupt=False)
    write_document_shard(src / "docs.parquet", rows=4)
    out = tmp_path / "out"
    summary = load_summary(curate(CurateConfig(source=str(src), output=str(out), model=str(model_dir), top_fraction=0.5,
                                  quiet=True)))
    assert summary["counts"]["caption"]["kept"] == 3
    assert summary["counts"]["document"]["kept"] == 2


def test_streaming_source_is_never_materialised(tmp_path, model_dir):
    """Rows pulled from the stream and not yet scored stay within one window, however long the stream is."""
    from unifilter_hf.scoring import QualityScorer

    class CountingScorer(QualityScorer):  # a real scorer that also counts the rows it scored
        scored = 0

        def score_samples(self, samples):
            records = super().score_samples(samples)
            self.scored += len(samples)
            return records

    scorer = CountingScorer.from_pretrained(str(model_dir), batch_size=2, device="cpu")
    pics = [png_bytes(n, 24) for n in PHOTO_NAMES]
    ahead = []

    def rows():
        for i in range(96):
            ahead.append(i - scorer.scored)  # rows already read but not scored when row i is pulled
            yield {"id": f"r{i}", "image": {"bytes": pics[i % 6], "path": None}, "text": TEXTS[i % 6]}

    features = datasets.Features({"id": datasets.Value("string"), "image": datasets.Image(),
                                  "text": datasets.Value("string")})
    stream = datasets.IterableDataset.from_generator(rows, features=features)
    summary = load_summary(curate(CurateConfig(source=stream, output=str(tmp_path / "out"), window=4, quiet=True),
                     scorer=scorer))
    assert summary["total"]["in"] == 96 and scorer.scored == 96
    assert max(ahead) <= 4  # one window (no workers): nothing like the 96-row source is ever held
    assert summary["throughput"]["peak_rows_in_flight"] <= 4


def test_decoding_workers_give_identical_sidecars_and_never_import_torch(tmp_path, model_dir):
    from unifilter_hf.curation.decoding import decoding_pool, torch_loaded

    pool = decoding_pool(1)
    try:
        assert pool.apply(torch_loaded) is False
    finally:
        pool.terminate()
        pool.join()
    src = write_caption_shards(tmp_path / "src", shards=2, rows=5)
    outs = []
    for workers in (0, 2):
        out = tmp_path / f"out{workers}"
        summary = load_summary(curate(CurateConfig(source=str(src), output=str(out), model=str(model_dir), batch_size=2,
                                      window=4, workers=workers, quiet=True)))
        outs.append(out)
    assert sidecar_bytes(outs[0]) == sidecar_bytes(outs[1])
    assert summary["throughput"]["peak_rows_in_flight"] <= 4 * (2 + 2)


def test_recipes_load_and_flags_override_them(tmp_path, model_dir):
    from unifilter_hf.cli import build_parser
    from unifilter_hf.curation.cli import config_from_args

    repo = Path(__file__).resolve().parents[1]
    args = build_parser().parse_args(["curate", "--config", str(repo / "recipes/curate-obelics.yaml"),
                                      "--output", "o", "--batch-size", "2"])
    config = config_from_args(args)
    assert (config.source, config.top_fraction, config.scoring.batch_size) == ("HuggingFaceM4/OBELICS", 0.035, 2)
    datacomp = config_from_args(build_parser().parse_args(
        ["curate", "shards/", "--config", str(repo / "recipes/curate-datacomp.yaml"), "--output", "o"]))
    assert (datacomp.source, datacomp.top_fraction) == ("shards/", 0.3)
    hub = config_from_args(build_parser().parse_args(["curate", "org/data", "--config", "en", "--output", "o"]))
    assert hub.dataset_config == "en"


def test_engine_scores_equal_the_scorer_on_full_size_photos(tmp_path, model_dir):
    """Workers resize images before shipping them; the scores stay exactly those of QualityScorer.score_rows."""
    from unifilter_hf.curation.engine_local import shrink_spec
    from unifilter_hf.scoring import QualityScorer

    rows = [{"id": f"r{i}", "image": {"bytes": png_bytes(n, 200), "path": None}, "text": TEXTS[i]}
            for i, n in enumerate(PHOTO_NAMES)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "big.parquet")
    out = tmp_path / "out"
    curate(CurateConfig(source=str(tmp_path / "big.parquet"), output=str(out), model=str(model_dir),
                        batch_size=1, workers=1, quiet=True))
    scorer = QualityScorer.from_pretrained(str(model_dir), batch_size=1, device="cpu")
    assert shrink_spec(scorer.processor) == (84, 84, 3)  # the shortcut is really taken (bicubic to 84 px)
    expected = scorer.score_rows(rows)
    assert [r["score"] for r in read_folder(out / "scores")] == [r.score for r in expected]
