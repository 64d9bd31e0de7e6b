"""``UniFilterSynthetic``: every config from every source kind, split by group, streaming, and the Hub push."""

import hashlib
import io
import json
from unittest import mock

import datasets
import pyarrow.parquet as pq
import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import EntryNotFoundError
from PIL import Image

from tests.kit import photo
from unifilter_hf import undecode_images
from unifilter_hf.datasets_builder import (
    CONFIG_NAMES,
    UniFilterSynthetic,
    build_synthetic,
    push_synthetic_to_hub,
    split_by_group,
    synthetic_features,
)
from unifilter_hf.filtering import unifilter_score
from unifilter_hf.synthesis import Provenance, RuleBasedBackend, SynthRecord, bundled_items, synthesize
from unifilter_hf.synthesis.bundled import bundled_photos

LEVELS = ["easy_negative", "medium_negative", "hard_negative", "positive"]
CAPTIONS = {p["name"]: p["caption"] for p in bundled_photos()}


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    """Our synth output: six caption sources and two documents, rule-based."""
    items = bundled_items("both")
    keep = {"bundled/coffee", "bundled/chelsea", "bundled/rocket", "bundled/astronaut", "bundled/grass",
            "bundled/flower", "bundled-doc/ground-textures", "bundled-doc/summer-palace"}
    out = tmp_path_factory.mktemp("synth")
    backend = RuleBasedBackend(seed=0)
    backend.prepare(items)  # the whole bundled set as the distractor pool
    report = synthesize([it for it in items if it.id in keep], backend, out)
    assert report.failed == 0
    return out


@pytest.fixture(scope="module")
def released_dir(tmp_path_factory):
    """The released weizhiwang/unifilter_train_data layout: JSON records + an image folder."""
    root = tmp_path_factory.mktemp("released")
    (root / "datacomp").mkdir()
    names = ["coffee", "rocket", "chelsea", "astronaut", "china", "flower", "moon", "camera"]
    for n in names:
        photo(n, size=48).convert("RGB").save(root / "datacomp" / f"{n}.jpg")
    records = []
    for n in names[:4]:
        for level in range(4):
            records.append({"image": f"datacomp/{n}.jpg", "text": f"<image>\n{CAPTIONS[n]} (v{level})",
                            "label": level})
    for level in range(4):
        records.append({"image": ["datacomp/china.jpg", "datacomp/flower.jpg"],
                        "text": f"A tower in Beijing (v{level}). <image>\nA dahlia. <image> The end.",
                        "label": level})
        records.append({"image": ["datacomp/moon.jpg", "datacomp/camera.jpg"],
                        "text": f"<image> The Moon (v{level}). <image> A cameraman.", "label": level})
    records.append({"image": ["datacomp/china.jpg"], "text": "no placeholder here", "label": 1})  # skipped
    records.append({"image": "datacomp/coffee.jpg", "text": "<image>\nunlabeled"})  # skipped
    (root / "contrastive_train.json").write_text(json.dumps(records))
    return root


def _sources(synth_dir, released_dir):
    return {"bundled": "bundled", "synth": str(synth_dir), "released": str(released_dir)}


def _digest(image: Image.Image) -> str:
    return hashlib.sha256(image.convert("RGB").tobytes()).hexdigest()


def _source_images(row, config):
    """Image digests that identify the source: caption images (all levels) and positives' images."""
    if config == "caption":
        return {_digest(row["image"])}
    images = [im for im in row["images"] if im is not None]
    if row["kind"] == "caption" or row["label"] == 3:
        return {_digest(im) for im in images}
    return set()


@pytest.mark.parametrize("config", CONFIG_NAMES)
@pytest.mark.parametrize("source", ["bundled", "synth", "released"])
def test_each_config_from_each_source(config, source, synth_dir, released_dir, tmp_path):
    dd = build_synthetic(config, _sources(synth_dir, released_dir)[source], cache_dir=tmp_path,
                         validation_fraction=0.3)
    assert set(dd) == {"train", "validation"}
    for split in dd.values():
        assert split.features == synthetic_features(config)
        assert split.features["label"].names == LEVELS
    rows = [dict(r) for name in ("train", "validation") for r in dd[name]]
    expected_kinds = {"caption": {"caption"}, "interleaved": {"document"}}.get(config, {"caption", "document"})
    assert {r["kind"] for r in rows} == expected_kinds
    assert {r["label"] for r in rows} == {0, 1, 2, 3}

    # every group has its four levels, all in one split
    split_of = {}
    for name in ("train", "validation"):
        for r in dd[name]:
            assert split_of.setdefault(r["group_id"], name) == name, f"group {r['group_id']} in both splits"
    by_group = {}
    for r in rows:
        by_group.setdefault(r["group_id"], set()).add(r["label"])
    assert all(levels == {0, 1, 2, 3} for levels in by_group.values())

    # no source image in both splits
    seen = {name: set() for name in ("train", "validation")}
    for name in seen:
        for r in dd[name]:
            seen[name] |= _source_images(r, config)
    assert seen["train"] and seen["validation"] and not seen["train"] & seen["validation"]

    for r in rows:
        prov = r["provenance"]
        assert prov["generator"] == ("unifilter-release" if source == "released" else "rule-based")
        if config == "caption":
            assert isinstance(r["image"], Image.Image) and r["text"]
            continue
        assert len(r["images"]) == len(r["texts"])
        for im, text in zip(r["images"], r["texts"]):
            assert (im is None) != (text is None)  # OBELICS: each slot exactly one of the two
        if r["kind"] == "caption":  # joint schema: [image, null] / [null, text]
            assert r["images"][1] is None and r["texts"][0] is None and isinstance(r["images"][0], Image.Image)


def test_released_layout_conversion(released_dir, tmp_path):
    dd = build_synthetic("joint", str(released_dir), cache_dir=tmp_path, validation_fraction=0.0)
    assert list(dd) == ["train"]
    rows = list(dd["train"])
    assert len(rows) == 4 * 4 + 2 * 4  # the record without placeholders and the unlabeled one are skipped
    doc = next(r for r in rows if r["kind"] == "document" and r["label"] == 2 and r["texts"][0])
    assert doc["texts"] == ["A tower in Beijing (v2).", None, "A dahlia.", None, "The end."]
    assert [im is not None for im in doc["images"]] == [False, True, False, True, False]
    assert doc["images"][1].size == photo("china", size=48).size
    cap = next(r for r in rows if r["kind"] == "caption" and r["label"] == 0 and "coffee" in r["group_id"])
    assert cap["texts"][1] == CAPTIONS["coffee"] + " (v0)"  # the <image> placeholder is removed
    assert cap["group_id"] == "released/datacomp/coffee.jpg"
    assert json.loads(cap["provenance"]["extra"])["file"] == "contrastive_train.json"


def test_synth_rows_keep_provenance_and_edits(synth_dir, tmp_path):
    dd = build_synthetic("caption", str(synth_dir), cache_dir=tmp_path)
    rows = [r for s in dd.values() for r in s]
    hard = next(r for r in rows if r["group_id"] == "bundled/coffee" and r["label"] == 2)
    prov = hard["provenance"]
    assert (prov["generator"], prov["prompt_version"], prov["seed"]) == ("rule-based", "uf-rules-v1", 0)
    [edit] = json.loads(prov["extra"])["edits"]
    assert CAPTIONS["coffee"][edit["start"]:edit["end"]] == edit["before"]
    positive = next(r for r in rows if r["group_id"] == "bundled/coffee" and r["label"] == 3)
    assert positive["text"] == CAPTIONS["coffee"]
    assert _digest(positive["image"]) == _digest(hard["image"]) == _digest(photo("coffee"))


def test_as_streaming_dataset(synth_dir, tmp_path):
    builder = UniFilterSynthetic(config_name="interleaved", source=str(synth_dir), cache_dir=str(tmp_path))
    stream = builder.as_streaming_dataset(split="train")
    assert isinstance(stream, datasets.IterableDataset)
    streamed = list(stream)
    builder.download_and_prepare()
    prepared = builder.as_dataset(split="train")
    assert [r["id"] for r in streamed] == prepared["id"]
    first = streamed[0]
    assert any(isinstance(im, Image.Image) for im in first["images"])
    assert first["label"] in range(4)
    both = builder.as_streaming_dataset()
    assert set(both) == {"train", "validation"}


def test_split_is_deterministic_and_keeps_shared_images_together():
    def row(group, level, images, kind="caption"):
        return SynthRecord(f"{group}/L{level}", group, kind, level, Provenance("test", extra={"image_ids": images}),
                           ["t"], list(images))

    rows = [row(f"g{i}", lvl, [f"img{i}"]) for i in range(40) for lvl in range(4)]
    # a document using img0 and img1: it must share a split with captions g0 and g1
    rows += [row("doc", lvl, ["img0", "img1"], "document") for lvl in (3, 2, 1)]
    rows += [row("doc", 0, ["img7", "img9"], "document")]  # level-0 distractors are not source images
    a = split_by_group(rows, 0.25, seed=0)
    assert a == split_by_group(list(reversed(rows)), 0.25, seed=0)
    assert a["doc"] == a["g0"] == a["g1"]
    assert 0.1 < sum(v == "validation" for v in a.values()) / len(a) < 0.45
    b = split_by_group(rows, 0.25, seed=1)
    assert a != b
    assert set(split_by_group(rows, 0.0).values()) == {"train"}


def test_builder_cache_follows_the_source(tmp_path):
    src = tmp_path / "rel"
    src.mkdir()
    photo("coffee", 16).convert("RGB").save(src / "a.jpg")
    recs = [{"image": "a.jpg", "text": f"<image>\nv{k}", "label": k} for k in range(4)]
    (src / "d.json").write_text(json.dumps(recs))
    first = build_synthetic("caption", str(src), cache_dir=tmp_path / "c", validation_fraction=0.0)
    (src / "d.json").write_text(json.dumps(recs + [{"image": "a.jpg", "text": "<image>\nv9", "label": 3}]))
    second = build_synthetic("caption", str(src), cache_dir=tmp_path / "c", validation_fraction=0.0)
    assert (first["train"].num_rows, second["train"].num_rows) == (4, 5)


class FakeHub:
    """HfApi methods that DatasetDict.push_to_hub calls, recording what would be uploaded."""

    def __init__(self):
        self.files = {}
        self.calls = []

    def patches(self):
        hub = self

        class Info:
            id = "me/unifilter-synth"
            sha = "0" * 40

        def repo_info(api, repo_id, *a, **k):
            hub.calls.append("repo_info")
            return Info()

        def create_repo(api, repo_id, *a, **k):
            hub.calls.append("create_repo")
            return mock.Mock(repo_id=repo_id)

        def preupload_lfs_files(api, repo_id, additions, **k):
            hub.calls.append("preupload_lfs_files")
            for add in additions:  # the temp file is deleted after this call: keep its bytes
                with open(add.path_or_fileobj, "rb") as fh:
                    hub.files[add.path_in_repo] = fh.read()

        def create_commit(api, repo_id, operations, **k):
            hub.calls.append("create_commit")
            hub.operations = [(type(op).__name__, op.path_in_repo) for op in operations]
            hub.commit_message = k.get("commit_message")
            for op in operations:
                if isinstance(getattr(op, "path_or_fileobj", None), bytes):
                    hub.files[op.path_in_repo] = op.path_or_fileobj
            return mock.Mock(oid="1" * 40, pr_url=None)

        def list_repo_tree(api, repo_id, path_in_repo=None, **k):
            if path_in_repo:  # an empty repo: no folder exists yet
                raise EntryNotFoundError(path_in_repo)
            return iter([])

        return mock.patch.multiple(HfApi, repo_info=repo_info, create_repo=create_repo,
                                   preupload_lfs_files=preupload_lfs_files, create_commit=create_commit,
                                   list_repo_tree=list_repo_tree)


def test_push_writes_parquet_per_config(tmp_path):
    dd = build_synthetic("joint", "bundled", cache_dir=tmp_path)
    hub = FakeHub()
    with hub.patches():
        push_synthetic_to_hub(dd, "me/unifilter-synth", "joint")
    assert hub.calls[-1] == "create_commit" and "preupload_lfs_files" in hub.calls
    assert sorted(p for kind, p in hub.operations) == [
        "README.md", "joint/train-00000-of-00001.parquet", "joint/validation-00000-of-00001.parquet"]
    assert hub.commit_message == "Upload UniFilter synthetic data (joint)"
    card = hub.files["README.md"].decode()
    assert "config_name: joint" in card and "path: joint/train-*" in card and "num_examples: " in card
    for split in ("train", "validation"):
        data = hub.files[f"joint/{split}-00000-of-00001.parquet"]
        table = pq.read_table(io.BytesIO(data))
        assert table.num_rows == dd[split].num_rows
        path = tmp_path / f"{split}.parquet"
        path.write_bytes(data)
        back = datasets.Dataset.from_parquet(str(path))
        assert back.features == synthetic_features("joint")  # ClassLabel and List(Image) survive the trip
        row = back[0]
        assert row["id"] == dd[split][0]["id"]
        assert isinstance(next(im for im in row["images"] if im is not None), Image.Image)  # bytes embedded


def test_push_rejects_bad_input(tmp_path):
    dd = build_synthetic("caption", "bundled", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="config_name"):
        push_synthetic_to_hub(dd, "me/x", "data")
    with pytest.raises(TypeError):
        push_synthetic_to_hub(dd["train"], "me/x", "caption")
    relabeled = dd.cast_column("label", datasets.Value("int64"))
    with pytest.raises(ValueError, match="ClassLabel"):
        push_synthetic_to_hub(relabeled, "me/x", "caption")


def test_joint_config_caption_scores_equal_the_caption_config(default_model):
    captions = build_synthetic("caption", source="bundled")["train"].select(range(8))
    joint = build_synthetic("joint", source="bundled")["train"]
    joint = joint.filter(lambda kind, id: kind == "caption" and id in set(captions["id"]),
                         input_columns=["kind", "id"])
    by_id = dict(zip(captions["id"], undecode_images(captions).map(unifilter_score, batched=True)["unifilter_score"]))
    joint_scores = undecode_images(joint).map(unifilter_score, batched=True)
    assert len(joint_scores) == 8
    for row_id, score in zip(joint_scores["id"], joint_scores["unifilter_score"]):
        assert score == pytest.approx(by_id[row_id], abs=1e-6)
