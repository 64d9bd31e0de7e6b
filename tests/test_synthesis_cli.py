"""``unifilter-hf synth``: sources (bundled, folder, dataset), output layout, resume."""

import argparse
import json

import datasets
import pytest

from tests.kit import photo
from unifilter_hf.errors import UniFilterError
from unifilter_hf.synthesis.bundled import bundled_photos
from unifilter_hf.synthesis.cli import register
from unifilter_hf.synthesis.runner import completed_groups

CAPTIONS = {p["name"]: p["caption"] for p in bundled_photos()}


def run(*argv):
    parser = argparse.ArgumentParser(prog="unifilter-hf")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["synth", *argv])
    return args.func(args)


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_bundled_offline_run_and_resume(tmp_path, capsys):
    out = tmp_path / "synth"
    assert run("--bundled", "--kind", "caption", "--output", str(out)) == 0
    records = lines(out / "records.jsonl")
    assert len(records) == 4 * len(CAPTIONS)
    assert {r["level"] for r in records} == {0, 1, 2, 3}
    assert {r["label"] for r in records} == {"easy_negative", "medium_negative", "hard_negative", "positive"}
    first = records[0]
    assert set(first) == {"id", "group_id", "kind", "level", "label", "image", "text", "provenance"}
    assert (out / first["image"]).is_file() and first["image"].startswith("images/")
    assert len(list((out / "images").iterdir())) == len(CAPTIONS)  # four levels share one stored image
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["generator"] == "rule-based" and manifest["records"] == len(records)
    assert "generated 21" in capsys.readouterr().out

    # rerun: nothing to do
    assert run("--bundled", "--kind", "caption", "--output", str(out)) == 0
    assert "generated 0, skipped 21" in capsys.readouterr().out

    # an interrupted write: one group complete, one partial, half a line -> partial work is redone once
    text = (out / "records.jsonl").read_text().splitlines(keepends=True)
    (out / "records.jsonl").write_text("".join(text[:6]) + text[6][:40])
    assert completed_groups(out) == {records[0]["group_id"]}
    assert run("--bundled", "--kind", "caption", "--output", str(out)) == 0
    again = lines(out / "records.jsonl")
    assert len(again) == len(records) and len({r["id"] for r in again}) == len(again)
    assert sorted(json.dumps(r, sort_keys=True) for r in again) == \
        sorted(json.dumps(r, sort_keys=True) for r in records)  # deterministic: same records as before

    # --no-resume starts over
    assert run("--bundled", "--kind", "document", "--output", str(out), "--no-resume") == 0
    assert {r["kind"] for r in lines(out / "records.jsonl")} == {"document"}


def test_folder_of_images_with_reference_captions_and_documents(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    names = ["astronaut", "chelsea", "coffee", "rocket", "flower"]
    for n in names:
        photo(n, size=64).convert("RGB").save(photos / f"{n}.jpg")
    with open(photos / "captions.jsonl", "w") as fh:
        for n in names[:3]:
            fh.write(json.dumps({"file": f"{n}.jpg", "caption": CAPTIONS[n]}) + "\n")
    (photos / "rocket.txt").write_text(CAPTIONS["rocket"])  # sidecar caption; flower has none
    out = tmp_path / "out"
    assert run("--images-dir", str(photos), "--output", str(out), "--seed", "3") == 1  # flower failed
    records = lines(out / "records.jsonl")
    assert len({r["group_id"] for r in records}) == 4
    errors = lines(out / "errors.jsonl")
    assert [e["group_id"] for e in errors] == ["photos/flower.jpg"] and "reference" in errors[0]["error"]
    assert "failed photos/flower.jpg" in capsys.readouterr().err
    # a stored image keeps the original file's bytes
    stored = {r["image"] for r in records if r["group_id"] == "photos/coffee.jpg"}
    assert len(stored) == 1 and (out / stored.pop()).read_bytes() == (photos / "coffee.jpg").read_bytes()

    docs = tmp_path / "docs"
    for d, pair in {"d1": ["coffee", "chelsea"], "d2": ["rocket", "astronaut"]}.items():
        (docs / d).mkdir(parents=True)
        for n in pair:
            photo(n, size=64).convert("RGB").save(docs / d / f"{n}.jpg")
        doc = {"texts": [CAPTIONS[pair[0]], None, CAPTIONS[pair[1]], None],
               "images": [None, f"{pair[0]}.jpg", None, f"{pair[1]}.jpg"]}
        (docs / d / "document.json").write_text(json.dumps(doc))
    out2 = tmp_path / "out2"
    # "interleaved" is the deprecated word for "document": still accepted, written as "document"
    assert run("--images-dir", str(docs), "--kind", "interleaved", "--output", str(out2)) == 0
    recs = lines(out2 / "records.jsonl")
    assert len(recs) == 8 and all(r["kind"] == "document" for r in recs)
    pos = next(r for r in recs if r["group_id"] == "docs/d1" and r["level"] == 3)
    assert pos["texts"][0] == CAPTIONS["coffee"] and pos["images"][0] is None and pos["images"][1]
    easy = next(r for r in recs if r["group_id"] == "docs/d1" and r["level"] == 0)
    own = {pos["images"][1], pos["images"][3]}
    assert own.isdisjoint(im for im in easy["images"] if im)  # level 0 uses the other document's images


def test_dataset_source(tmp_path):
    names = ["coffee", "rocket", "chelsea"]
    ds = datasets.Dataset.from_dict(
        {"image": [photo(n, size=48) for n in names], "caption": [CAPTIONS[n] for n in names],
         "key": [f"k-{n}" for n in names]},
        features=datasets.Features({"image": datasets.Image(), "caption": datasets.Value("string"),
                                    "key": datasets.Value("string")}))
    folder = tmp_path / "hubset"
    folder.mkdir()
    ds.to_parquet(str(folder / "train.parquet"))
    out = tmp_path / "out"
    assert run("--dataset", str(folder), "--text-column", "caption", "--id-column", "key", "--limit", "2",
               "--output", str(out)) == 0
    records = lines(out / "records.jsonl")
    assert {r["group_id"] for r in records} == {"hubset/train/k-coffee", "hubset/train/k-rocket"}
    pos = next(r for r in records if r["group_id"].endswith("k-coffee") and r["level"] == 3)
    assert pos["text"] == CAPTIONS["coffee"]


def test_usage_errors(tmp_path):
    with pytest.raises(UniFilterError, match="--model is required"):  # the CLI turns it into exit status 2
        run("--bundled", "--backend", "openai", "--output", str(tmp_path))
    with pytest.raises(SystemExit):
        run("--output", str(tmp_path))  # a source is required
    assert run("--images-dir", str(tmp_path / "missing"), "--output", str(tmp_path / "o")) == 2
