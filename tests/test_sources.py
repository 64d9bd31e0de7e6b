"""The source layer on folders in the layouts real tools write: rows counted exactly, metadata never read as
data, images found where the data says, and `score` and `curate` agreeing row for row."""

from __future__ import annotations

import gzip
import json
import math
import resource
import tarfile
import time

import pyarrow.parquet as pq
import pytest

from tests import layouts
from unifilter_hf.cli import main
from unifilter_hf.sources import ERROR_FIELD, SourceError, check_layouts, scan_source


def _rows(source, **kwargs) -> list[dict]:
    return [row for shard in scan_source(str(source), **kwargs).shards for row in shard.views()]


# -- 1. every layout: the true row count, no row from metadata -----------------------------------------------
@pytest.mark.parametrize("output_format", ["parquet", "webdataset", "files"])
def test_img2dataset_outputs_are_read_from_their_data_not_their_metadata(tmp_path, output_format):
    folder, true_rows = layouts.img2dataset(tmp_path / "out", output_format)
    source = scan_source(str(folder))
    formats = {"parquet": "parquet", "webdataset": "webdataset", "files": "files"}
    assert [s.format for s in source.shards] == [formats[output_format]] * 2
    rows = _rows(folder)
    assert len(rows) == true_rows == (10 if output_format == "parquet" else 8)
    assert sum(s.num_rows for s in source.shards) == true_rows  # counted before reading (progress totals)
    skipped = {p.split("/")[-1]: why for p, why in ((s.path, s.why) for s in source.skipped)}
    assert skipped["00000_stats.json"] == "img2dataset stats"
    if output_format != "parquet":  # the download log of every input row is not the data
        assert skipped["00000.parquet"].startswith("img2dataset download log")
    failed = [r[ERROR_FIELD] for r in rows if ERROR_FIELD in r]
    if output_format == "parquet":  # the rows that failed to download say so
        assert failed == ["image: not downloaded by img2dataset (failed_to_download: HTTP Error 404: Not Found)"] * 2
    else:
        assert failed == [] and all(isinstance(r["jpg"], bytes) and r["txt"] for r in rows)


def test_save_to_disk_folders_read_their_arrow_files(tmp_path):
    folder, rows = layouts.saved_dataset(tmp_path / "saved", rows=7, num_shards=2)
    source = scan_source(str(folder))
    assert [s.format for s in source.shards] == ["arrow", "arrow"]
    assert sorted(s.path.split("/")[-1] for s in source.skipped) == ["dataset_info.json", "state.json"]
    got = _rows(folder)
    assert len(got) == rows and all(isinstance(r["image"]["bytes"], bytes) for r in got)

    folder, splits = layouts.saved_dataset_dict(tmp_path / "dict")
    assert len(_rows(folder)) == splits["train"]
    assert len(_rows(folder, split="test")) == splits["test"]
    assert [s.name for s in scan_source(str(folder), split="test").shards] == ["test__data-00000-of-00001"]
    with pytest.raises(SourceError, match=r"without a 'validation' split: pass --split one of \['train', 'test'\]"):
        scan_source(str(folder), split="validation")


@pytest.mark.parametrize("compressed", [False, True])
def test_webdataset_tars_with_mixed_image_types(tmp_path, compressed):
    path, true_rows, _ = layouts.mixed_tar(tmp_path / f"wds/shard-000.{'tgz' if compressed else 'tar'}", compressed)
    (tmp_path / "wds" / "._shard-000.tar").write_bytes(b"\x00" * 10)  # macOS resource fork beside it: hidden
    rows = _rows(tmp_path / "wds")
    assert len(rows) == true_rows
    assert [sorted(k for k in r if k not in ("__key__", "txt", "cls")) for r in rows] == [
        ["jpg"], ["png"], ["webp"], ["gif"], ["tiff"], ["jpg"]]
    check_layouts(scan_source(str(tmp_path / "wds")).shards)  # tiff/gif members are images too


def test_table_files_and_json_kinds(tmp_path):
    folder, true_rows = layouts.tables(tmp_path / "t")
    source = scan_source(str(folder))
    assert [(s.name, s.format) for s in source.shards] == [
        ("a", "jsonl"), ("b", "json"), ("c", "csv"), ("d", "parquet"), ("e", "arrow")]
    rows = _rows(folder)
    assert len(rows) == true_rows
    assert [r[ERROR_FIELD] for r in rows if ERROR_FIELD in r] == ["row: a.jsonl line 4 is not valid JSON"]
    assert source.note() == "skipped 6 files that are not data: 6 image files (.jpg) that rows may refer to"
    one = tmp_path / "one.json"  # a single pretty-printed document is one row
    one.write_text(json.dumps({"texts": ["a", None], "images": [None, "x.jpg"]}, indent=2))
    assert len(_rows(one)) == 1


def test_malformed_records_are_row_errors_naming_file_and_line(tmp_path):
    (tmp_path / "rows.csv").write_text('image,text\nimages/a.jpg,"A cat,\non two lines"\nimages/b.jpg\nx,y\n')
    (tmp_path / "rows.jsonl").write_bytes(b'{"image": "a.jpg", "text": "ok"}\n\n[1, 2]\n{"text": "\xff"}\n')
    csv_rows, jsonl_rows = _rows(tmp_path / "rows.csv"), _rows(tmp_path / "rows.jsonl")
    assert csv_rows[0]["text"] == "A cat,\non two lines" and csv_rows[2] == {"image": "x", "text": "y"}
    assert csv_rows[1] == {ERROR_FIELD: "row: rows.csv line 4 has 1 fields, the header has 2"}
    assert [r.get(ERROR_FIELD) for r in jsonl_rows] == [
        None, "row: rows.jsonl line 3 is not a JSON object", "row: rows.jsonl line 4 is not valid UTF-8"]


def test_the_layout_check_looks_at_every_shard(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"picture": "x.jpg", "words": "no layout here"}\n' * 3)
    (tmp_path / "b.jsonl").write_text('not json\n{"image": "x.jpg", "text": "a caption"}\n')
    check_layouts(scan_source(str(tmp_path)).shards)  # the second shard's second row has a layout: go on
    (tmp_path / "b.jsonl").write_text('{"photo": "x.jpg", "title": "none either"}\n')
    with pytest.raises(SourceError, match=r"a has columns \['picture', 'words'\] \(and 1 other shards\); name them"):
        check_layouts(scan_source(str(tmp_path)).shards)


# -- 2. sources that cannot be read: one line, exit 2 -----------------------------------------------------------
def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_unreadable_sources_end_with_one_line(tmp_path, capsys):
    model = str(tmp_path / "no-model-needed")  # every case fails before a model is loaded
    stats_only = tmp_path / "stats_only"
    stats_only.mkdir()
    (stats_only / "00000_stats.json").write_text("{}")
    (tmp_path / "notes.md").write_text("# notes")
    (tmp_path / "broken.json").write_text('[{"text": "a"}, {"text": ')
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    tar, _, _ = layouts.mixed_tar(tmp_path / "digits" / "d.tar", compressed=False)
    cases = {
        str(stats_only): "no data files in",
        str(stats_only / "00000_stats.json"): "is img2dataset stats, not data",
        str(tmp_path / "notes.md"): "unknown file type 'notes.md'",
        str(tmp_path / "broken.json"): "broken.json: not valid JSON (line 1, column",
        str(tmp_path / "broken.parquet"): "cannot read",
    }
    for source, message in cases.items():
        for command in ("score", "curate"):
            argv = [command, source, "--model", model, "--output", str(tmp_path / f"o-{command}.parquet")]
            assert message in _one_line_error(capsys, argv), (command, source)
    # a layout no row matches: names the columns seen and the --columns fix, before the model loads
    line = _one_line_error(capsys, ["score", str(tar.parent), "--model", model, "--output", str(tmp_path / "o.jsonl"),
                                    "--columns", "image=picture,text=txt"])
    assert "--columns names ['picture'] that no shard has" in line
    for command in ("score", "curate"):
        (tmp_path / "only_cls").mkdir(exist_ok=True)
        with tarfile.open(tmp_path / "only_cls" / "x.tar", "w") as t:
            layouts._tar_add(t, "0.png", layouts.jpg("coffee"))
            layouts._tar_add(t, "0.cls", b"3")
        line = _one_line_error(capsys, [command, str(tmp_path / "only_cls"), "--model", model, "--output",
                                        str(tmp_path / f"cls-{command}.parquet")])
        assert "no known row layout in any shard: x has columns ['__key__', 'cls', 'png']" in line
        assert "--columns" in line


# -- 3. a tar member that inflates to gigabytes ------------------------------------------------------------------
def _member(name: str, data: bytes | None, size: int | None = None) -> bytes:
    """One tar member as bytes: its header, then its data padded to 512 (only the header when data is None)."""
    info = tarfile.TarInfo(name)
    info.size = len(data) if data is not None else size
    header = info.tobuf(format=tarfile.GNU_FORMAT)
    return header if data is None else header + data + b"\x00" * (-len(data) % 512)


def _zero_bomb_tgz(path, member_size: int) -> None:
    """A .tgz whose middle member holds ``member_size`` zero bytes, written as repeated gzip members of one
    compressed block of zeros (a valid multi-member gzip stream): megabytes on disk, gigabytes inflated."""
    block = 64 * 1024 * 1024
    zeros = gzip.compress(b"\x00" * block, compresslevel=9, mtime=0)
    with open(path, "wb") as fh:
        head = _member("sample0000.jpg", layouts.jpg("coffee")) + _member("sample0000.txt", b"A cup of coffee.")
        fh.write(gzip.compress(head + _member("sample0001.jpg", None, member_size), mtime=0))
        for _ in range(member_size // block):
            fh.write(zeros)
        tail = (_member("sample0001.txt", b"A bomb.") + _member("sample0002.jpg", layouts.jpg("rocket"))
                + _member("sample0002.txt", b"A rocket.") + b"\x00" * 1024)
        fh.write(gzip.compress(tail, mtime=0))


def test_a_tar_member_over_max_bytes_is_a_row_error_not_read(tmp_path, model_dir):
    path = tmp_path / "bomb" / "bomb.tgz"
    path.parent.mkdir()
    _zero_bomb_tgz(path, 2 * 1024**3)
    assert path.stat().st_size < 3 * 1024**2  # 2 GiB inside a couple of megabytes
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    rows = _rows(path.parent)
    assert [r["__key__"] for r in rows] == ["sample0000", "sample0001", "sample0002"]
    assert rows[1][ERROR_FIELD] == (
        f"row: bomb.tgz member sample0001.jpg is {2 * 1024**3} bytes, over max_bytes={64 * 1024**2}")
    assert isinstance(rows[2]["jpg"], bytes)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 300, grown_mb  # the member was skipped, never held
    assert time.perf_counter() - start < 120

    # the whole job (layout check, scoring, writing) with a smaller one over the cap: one row error
    _zero_bomb_tgz(path, 128 * 1024**2)
    out = tmp_path / "scored.parquet"
    assert main(["score", str(path.parent), "--model", str(model_dir), "--output", str(out)]) == 0
    scored = pq.read_table(out).to_pylist()
    assert [bool(r["unifilter_error"]) for r in scored] == [False, True, False]
    assert "over max_bytes" in scored[1]["unifilter_error"]


# -- 4. images are found where the data says --------------------------------------------------------------------
def test_relative_paths_resolve_against_the_data_file_folder(tmp_path, model_dir, monkeypatch):
    folder, true_rows = layouts.obelics_jsonl(tmp_path / "obelics")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # run from another folder: paths still resolve next to docs.jsonl
    out = tmp_path / "o.jsonl"
    assert main(["score", str(folder), "--model", str(model_dir), "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == true_rows
    errors = [r["unifilter_error"] for r in rows]
    assert errors[:2] == ["", ""] and errors[3] == ""
    assert errors[2].startswith("document: all images failed to load (image 1: file not found:")
    assert str(folder / "images" / "missing.jpg") in errors[2]


def test_mmc4_image_names_resolve_under_image_root(tmp_path, model_dir):
    folder, images, true_rows = layouts.mmc4_jsonl(tmp_path / "mmc4")
    out = tmp_path / "o.jsonl"
    assert main(["score", str(folder), "--model", str(model_dir), "--output", str(out), "--image-root",
                 str(images)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == true_rows and [r["unifilter_error"] for r in rows] == [""] * true_rows
    assert all(r["unifilter_images_dropped"] == 0 for r in rows)
    # without it, image_name is looked up beside the data file only; else the raw_url is tried (unreachable
    # here), and the reason says so
    assert main(["score", str(folder), "--model", str(model_dir), "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(r["unifilter_error"].startswith("document: all images failed to load (image 0: URL") for r in rows)
    (images / "docs.jsonl").write_text((folder / "docs_shard_0.jsonl").read_text())
    assert main(["score", str(images / "docs.jsonl"), "--model", str(model_dir), "--output", str(out)]) == 0
    assert [json.loads(line)["unifilter_error"] for line in out.read_text().splitlines()] == [""] * true_rows


# -- 5. score and curate: the same rows, the same scores, the same reasons -------------------------------------
def _layout(name: str, tmp_path):
    root = tmp_path / name
    if name.startswith("img2dataset-"):
        return layouts.img2dataset(root, name.split("-", 1)[1])[0], []
    if name == "save_to_disk":
        return layouts.saved_dataset(root)[0], []
    if name == "tgz":
        return layouts.mixed_tar(root / "s.tgz", compressed=True)[0].parent, []
    if name == "tables":
        return layouts.tables(root)[0], []
    if name == "obelics":
        return layouts.obelics_jsonl(root)[0], []
    folder, images, _ = layouts.mmc4_jsonl(root)
    return folder, ["--image-root", str(images)]


@pytest.mark.parametrize("name", ["img2dataset-parquet", "img2dataset-webdataset", "img2dataset-files",
                                  "save_to_disk", "tgz", "tables", "obelics", "mmc4"])
def test_score_and_curate_agree_row_for_row(tmp_path, model_dir, name, capsys):
    source, extra = _layout(name, tmp_path)
    true_rows = len(_rows(source))
    out = tmp_path / "scored.jsonl"
    assert main(["score", str(source), "--model", str(model_dir), "--output", str(out), *extra]) == 0
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    job = tmp_path / "job"
    assert main(["curate", str(source), "--model", str(model_dir), "--output", str(job), "--threshold", "1.0",
                 "--quiet", "--no-report", *extra]) == 0
    summary = json.loads((job / "summary.json").read_text())["total"]
    assert summary["in"] == len(scored) == true_rows
    assert summary["kept"] + summary["rejected"] == true_rows  # errors are among the rejected
    sidecars = [r for p in sorted((job / "scores").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert [r["error"] or "" for r in sidecars] == [r["unifilter_error"] for r in scored]
    for a, b in zip(scored, sidecars):
        assert (a["unifilter_score"] is None and math.isnan(b["score"])) or a["unifilter_score"] == b["score"]
    assert summary["errors"] == sum(bool(r["unifilter_error"]) for r in scored)
    assert any(not r["unifilter_error"] for r in scored)  # local images were scored
