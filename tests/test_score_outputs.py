"""`unifilter-hf score --output`: checked before any work, written atomically, and readable in every format on
rows that hold image bytes (text formats keep paths and URLs, leave bytes out with one note, escape formulas)."""

from __future__ import annotations

import csv
import json

import datasets
import pyarrow.parquet as pq
import pytest

from tests import layouts
from unifilter_hf.cli import main
from unifilter_hf.curation.table_output import OutputError, TableWriter, check_output, escape_formula


def _obelics_parquet(path) -> int:
    """OBELICS-style documents with their images as bytes (``List(Image())``), as the Hub stores them."""
    features = datasets.Features({"images": datasets.List(datasets.Image()),
                                  "texts": datasets.List(datasets.Value("string")), "url": datasets.Value("string")})
    docs = {
        "images": [[None, {"bytes": layouts.jpg("coffee"), "path": None}],
                   [{"bytes": layouts.jpg("rocket"), "path": "rocket.jpg"}, None]],
        "texts": [["=cmd|' /C calc'!A0", None], [None, "@SUM(1+1) and more"]],
        "url": ["https://example.com/a b.html", "-https://example.com/c"],
    }
    datasets.Dataset.from_dict(docs, features=features).to_parquet(str(path))
    return 2


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".csv"])
def test_outputs_of_rows_holding_image_bytes(tmp_path, model_dir, suffix, capsys):
    folder, true_rows = layouts.img2dataset(tmp_path / "i2d", "parquet", shards=1, rows=4)
    docs = tmp_path / "docs.parquet"
    n_docs = _obelics_parquet(docs)
    for source, n in ((folder, true_rows), (docs, n_docs)):
        out = tmp_path / f"{source.stem}{suffix}"
        assert main(["score", str(source), "--model", str(model_dir), "--output", str(out)]) == 0
        err = capsys.readouterr().err
        if suffix == ".parquet":  # everything kept, bytes included
            table = pq.read_table(out).to_pylist()
            assert len(table) == n and "note:" not in err
            if source == folder:
                assert [isinstance(r["jpg"], bytes) for r in table] == [True] * (n - 1) + [False]
            else:
                assert isinstance(table[0]["images"][1]["bytes"], bytes) and table[1]["images"][0]["bytes"]
            continue
        assert err.count("note: image bytes in column(s)") == 1  # one note, not one per row
        if suffix == ".jsonl":
            rows = [json.loads(line) for line in out.read_text().splitlines()]
        else:
            with open(out, newline="") as fh:
                rows = list(csv.DictReader(fh))
        assert len(rows) == n
        assert not any("b'" in str(v) or "\\x" in str(v) for r in rows for v in r.values())  # no Python reprs
        if source == folder:
            assert [r["url"] for r in rows] == [layouts._meta(i, True)["url"] for i in range(n)]  # URL kept
            assert "jpg" not in rows[0] or rows[0]["jpg"] == ""
            assert sum(bool(r["unifilter_error"]) for r in rows) == 1  # the failed download
        elif suffix == ".jsonl":
            assert "images" not in rows[0] and rows[1]["images"] == ["rocket.jpg", None]  # the path is kept
            assert rows[0]["texts"][0].startswith("=cmd")  # JSON is not a spreadsheet: text unchanged
        else:
            assert rows[0]["images"] == "" and json.loads(rows[1]["images"]) == ["rocket.jpg", None]
            assert rows[0]["url"] == "https://example.com/a b.html" and rows[1]["url"] == "'-https://example.com/c"
            assert rows[0]["texts"].startswith('["=cmd')  # inside a JSON list: not at the start of the cell


def test_csv_cells_are_escaped_against_formula_injection(tmp_path):
    path = tmp_path / "out.csv"
    rows = [{"text": t, "score": s} for t, s in [("=HYPERLINK(\"http://x\",\"y\")", -1.5), ("+1", 0.5),
                                                 ("-2", 2.0), ("@A1", 1.0), ("\tTAB", 3.0), ("plain", 0.0)]]
    with TableWriter(path) as writer:
        writer.write(rows)
    with open(path, newline="") as fh:
        got = list(csv.DictReader(fh))
    assert [r["text"] for r in got] == ["'=HYPERLINK(\"http://x\",\"y\")", "'+1", "'-2", "'@A1", "'\tTAB", "plain"]
    assert [float(r["score"]) for r in got] == [-1.5, 0.5, 2.0, 1.0, 3.0, 0.0]  # numbers are not text
    assert escape_formula("a=b") == "a=b"


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".csv"])
def test_a_failed_write_leaves_no_file(tmp_path, suffix):
    path = tmp_path / f"out{suffix}"
    with pytest.raises(RuntimeError, match="stopped"):
        with TableWriter(path) as writer:
            writer.write([{"text": "a", "score": 1.0}])
            raise RuntimeError("stopped half way")
    assert not path.exists() and list(tmp_path.iterdir()) == []  # no 0-byte file, no temporary left
    path.write_text("an earlier result")
    with pytest.raises(RuntimeError):
        with TableWriter(path) as writer:
            writer.write([{"text": "b", "score": 2.0}])
            raise RuntimeError("stopped")
    assert path.read_text() == "an earlier result"  # replaced only by a complete file


def test_the_output_is_checked_before_the_model_or_the_data(tmp_path, capsys):
    (tmp_path / "rows.jsonl").write_text('{"image": "a.jpg", "text": "x"}\n')
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "dir.parquet").mkdir()
    no_model = str(tmp_path / "no-model")
    for output, message in [(tmp_path / "o.txt", "must end in .parquet, .jsonl or .csv"),
                            (tmp_path / "dir.parquet", "it is a folder"),
                            (tmp_path / "a_file" / "o.jsonl", "cannot create the folder")]:
        assert main(["score", str(tmp_path / "rows.jsonl"), "--model", no_model, "--output", str(output)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    with pytest.raises(OutputError, match="must end in"):
        check_output(tmp_path / "scores.xlsx")
    assert check_output(tmp_path / "new" / "deep" / "s.JSONL") == "jsonl"


def test_an_empty_source_writes_an_empty_table(tmp_path, model_dir):
    (tmp_path / "empty.jsonl").write_text("")
    out = tmp_path / "o.csv"
    assert main(["score", str(tmp_path / "empty.jsonl"), "--model", str(model_dir), "--output", str(out)]) == 0
    assert out.exists() and out.read_text() == ""
