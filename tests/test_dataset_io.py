"""The source layer's shards: images stay undecoded (a corrupt image is a row error), shards of every source
kind, one-line errors. The layouts real tools write (img2dataset, save_to_disk, ...) are in tests/test_sources.py."""

from __future__ import annotations

import datasets
import pytest

from tests.test_curation import png_bytes, write_datacomp_tar, write_obelics_tar
from unifilter_hf.sources.shards import SourceError, document_view, hub_shards, open_source, undecode_images


@pytest.fixture
def hub_style_parquet(tmp_path):
    """A Parquet file as the Hub stores it (datasets Image feature), holding one corrupt image."""
    features = datasets.Features({"image": datasets.Image(), "text": datasets.Value("string"),
                                  "gallery": datasets.List(datasets.Image())})
    data = {
        "image": [{"bytes": png_bytes("coffee"), "path": None}, {"bytes": b"\x89PNG\r\n broken", "path": None}],
        "text": ["A cup of coffee.", "A cat."],
        "gallery": [[{"bytes": png_bytes("chelsea"), "path": None}], []],
    }
    folder = tmp_path / "hub"
    folder.mkdir()
    datasets.Dataset.from_dict(data, features=features).to_parquet(str(folder / "train-00000.parquet"))
    return folder


def test_decoding_inside_datasets_fails_but_undecoded_rows_become_row_errors(hub_style_parquet, tiny):
    from unifilter_hf.scoring import QualityScorer

    files = str(hub_style_parquet / "*.parquet")
    decoded = datasets.load_dataset("parquet", data_files=files, split="train", streaming=True)
    with pytest.raises(Exception):  # noqa: B017 - PIL's error, raised inside datasets' decoding
        list(decoded)
    rows = list(undecode_images(decoded))
    assert isinstance(rows[1]["image"]["bytes"], bytes)
    assert isinstance(rows[0]["gallery"][0]["bytes"], bytes)  # inside List(Image()) too
    records = QualityScorer(*tiny).score_rows(rows)
    assert records[0].error is None and records[1].error.startswith("image:")


def test_undecode_images_on_a_map_style_dataset(hub_style_parquet):
    ds = datasets.load_dataset("parquet", data_files=str(hub_style_parquet / "*.parquet"), split="train")
    plain = undecode_images(ds)
    assert plain.features["image"].decode is False and plain.features["gallery"].feature.decode is False
    assert plain[1]["image"]["bytes"].startswith(b"\x89PNG")


def test_streamed_dataset_shards_are_undecoded(hub_style_parquet):
    # A local dataset folder goes through the very load_dataset(..., streaming=True) call used for Hub ids.
    shards = hub_shards(str(hub_style_parquet))
    rows = [r for s in shards for r in s.rows()]
    assert len(rows) == 2 and isinstance(rows[1]["image"]["bytes"], bytes)
    assert isinstance(datasets.Features.from_arrow_schema(shards[0].schema())["image"], datasets.Image)


def test_local_shards_of_every_format(tmp_path):
    (tmp_path / "a").mkdir()
    write_datacomp_tar(tmp_path / "a" / "dc.tar", rows=3)
    write_obelics_tar(tmp_path / "a" / "ob.tar", rows=3)
    (tmp_path / "a" / "rows.jsonl").write_text('{"text": "x", "image": "a.jpg"}\nnot json\n')
    shards = open_source(str(tmp_path / "a"))
    assert [(s.name, s.format, s.num_rows) for s in shards] == [
        ("dc", "webdataset", 3), ("ob", "webdataset", 3), ("rows", "jsonl", None)]
    dc = list(shards[0].rows())
    assert sorted(dc[0]) == ["__key__", "jpg", "json", "txt"] and len(dc) == 3
    assert document_view(dc[0]) is dc[0]  # a caption member set is scored as it is
    doc = document_view(next(shards[1].rows()))
    assert doc["images"][1] and doc["texts"][0] and "image_info" not in doc
    assert list(shards[2].rows())[1] == {"__error__": "row: rows.jsonl line 2 is not valid JSON"}
    assert [s.name for s in open_source(str(tmp_path / "a" / "*.tar"))] == ["dc", "ob"]


def test_one_line_errors_name_the_fix(tmp_path):
    with pytest.raises(SourceError, match="check the path"):
        open_source(str(tmp_path / "missing"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(SourceError, match="unknown file type 'notes.txt': give .parquet, .arrow"):
        open_source(str(tmp_path / "notes.txt"))
    with pytest.raises(SourceError, match="no data files in .* \\(found only 1 not a data file type\\)"):
        open_source(str(tmp_path))


def test_a_source_without_a_known_layout_is_one_job_error(tmp_path, model_dir):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from unifilter_hf.curation import CurateConfig, CurationError, curate, load_summary

    pq.write_table(pa.table({"picture": [png_bytes("coffee")], "words": ["A cup."]}), tmp_path / "p.parquet")
    with pytest.raises(CurationError, match="--columns image=IMG,text=CAPTION"):
        curate(CurateConfig(source=str(tmp_path / "p.parquet"), output=str(tmp_path / "o"), model=str(model_dir)))
    summary = load_summary(curate(CurateConfig(source=str(tmp_path / "p.parquet"), output=str(tmp_path / "o"),
                                  model=str(model_dir), columns={"image": "picture", "text": "words"},
                                  threshold=0.0, quiet=True)))
    assert summary["total"] == {"in": 1, "kept": 1, "rejected": 0, "errors": 0}
