"""Level definitions, prompt templates, strict reply parsing and the JSONL record format."""

import json

import pytest
from PIL import Image

from tests.kit import photo
from unifilter_hf.synthesis import (
    LEVEL_NAMES,
    PROMPT_VERSION,
    Level,
    MalformedReply,
    Provenance,
    SourceItem,
    SynthRecord,
    build_messages,
    bundled_items,
    level_name,
    parse_levels,
    read_records,
    record_to_sample,
    requirement,
)
from unifilter_hf.synthesis.levels import canonical_kind


def test_levels_match_the_model_labels_and_spec():
    from unifilter_hf.configuration_unifilter import LEVEL_NAMES as MODEL_NAMES

    assert list(LEVEL_NAMES) == list(MODEL_NAMES) == ["easy_negative", "medium_negative", "hard_negative",
                                                      "positive"]
    assert [int(lv) for lv in Level] == [0, 1, 2, 3]
    assert level_name(2) == Level.HARD_NEGATIVE.name_str == "hard_negative"
    assert "exactly one" in requirement(2, "caption")
    assert "unrelated" in requirement(0, "caption")
    assert "arbitrary places" in requirement(0, "document")
    assert "factual" in requirement(2, "document")
    with pytest.raises(ValueError):
        requirement(4, "caption")
    with pytest.raises(ValueError):
        requirement(0, "video")


def _caption_item(**kw):
    return SourceItem("t/cat", "caption", [photo("chelsea", size=32)], **kw)


def _doc_item(reference=None):
    return SourceItem("t/doc", "document", [photo("coffee", 32), photo("rocket", 32)], reference=reference)


def test_caption_prompts_vision_and_rewrite():
    vision = build_messages(_caption_item(reference="a tabby cat"), "vision")
    assert [m["role"] for m in vision] == ["system", "user"]
    parts = vision[1]["content"]
    assert parts[0]["type"] == "image" and isinstance(parts[0]["image"], Image.Image)
    text = parts[-1]["text"]
    for lvl in range(4):
        assert requirement(lvl, "caption") in text
    assert "a tabby cat" in text and '"3"' in text

    rewrite = build_messages(_caption_item(reference="a tabby cat"), "rewrite")
    assert all(p["type"] == "text" for m in rewrite for p in m["content"])
    with pytest.raises(ValueError, match="reference"):
        build_messages(_caption_item(), "rewrite")


def test_document_prompt_numbers_the_images_and_renders_the_reference():
    item = _doc_item(["Intro about coffee.", None, "Then a rocket.", None])
    msgs = build_messages(item, "vision")
    parts = msgs[1]["content"]
    assert [p["type"] for p in parts].count("image") == 2
    labels = [p["text"] for p in parts if p["type"] == "text"][:2]
    assert labels == ["<image1>:", "<image2>:"]
    text = parts[-1]["text"]
    assert "Intro about coffee.\n\n<image1>\n\nThen a rocket.\n\n<image2>" in text
    assert "<image1>, <image2>" in text and requirement(0, "document") in text


GOOD = {"0": "two dogs on a beach", "1": "a blue bowl", "2": "a cat with blue eyes", "3": "a cat with green eyes"}


def test_parse_caption_reply_variants():
    assert parse_levels(json.dumps(GOOD), "caption") == {int(k): v for k, v in GOOD.items()}
    fenced = "```json\n" + json.dumps(GOOD, indent=2) + "\n```"
    assert parse_levels(fenced, "caption")[3] == GOOD["3"]
    thinking = "<think>levels...</think>\n" + json.dumps(GOOD)
    assert parse_levels(thinking, "caption")[0] == GOOD["0"]
    spaced = dict(GOOD, **{"3": "  a cat\nwith   green eyes "})
    assert parse_levels(json.dumps(spaced), "caption")[3] == "a cat with green eyes"


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("", "empty reply"),
        ("Sure! Here are the captions: ...", "not a JSON object"),
        (json.dumps(GOOD) + " Hope this helps!", "not a JSON object"),
        (json.dumps(list(GOOD.values())), "expected a JSON object"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "2"}), "missing level(s) 2"),
        (json.dumps(dict(GOOD, note="x")), "unexpected key"),
        (json.dumps(dict(GOOD, **{"1": ""})), "level 1: expected a non-empty string"),
        (json.dumps(dict(GOOD, **{"1": 3})), "level 1: expected a non-empty string"),
        (json.dumps(dict(GOOD, **{"2": GOOD["3"]})), "not all different"),
        (json.dumps(dict(GOOD, **{"0": "<image1> a dog"})), "must not contain image markers"),
    ],
)
def test_malformed_caption_replies_are_rejected(reply, reason):
    with pytest.raises(MalformedReply) as err:
        parse_levels(reply, "caption")
    assert reason in err.value.reason


def _doc_reply(**over):
    base = {"0": "Noise <image2> words.", "1": "<image1>\n\nSparse text.", "2": "Facts wrong.\n\n<image1>",
            "3": "Intro.\n\n<image1>\n\nMiddle part.\n\n<image2>\n\nEnd."}
    base.update(over)
    return json.dumps(base)


def test_parse_document_reply_into_slots():
    out = parse_levels(_doc_reply(), "document", num_images=2)
    assert out[3] == ["Intro.", 0, "Middle part.", 1, "End."]
    assert out[0] == ["Noise", 1, "words."]
    assert out[1] == [0, "Sparse text."]


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"2": "Text <image3> more"}, "names no image"),
        ({"2": "<image1> a <image1> b"}, "used twice"),
        ({"2": "no images here"}, "no image marker"),
        ({"2": "<image1>"}, "no text"),
        ({"2": "text <image> more"}, "malformed image marker"),
    ],
)
def test_malformed_document_replies_are_rejected(over, reason):
    with pytest.raises(MalformedReply) as err:
        parse_levels(_doc_reply(**over), "document", num_images=2)
    assert reason in err.value.reason


def test_source_item_checks_its_shape():
    with pytest.raises(ValueError, match="exactly one image"):
        SourceItem("x", "caption", [photo("coffee", 8), photo("rocket", 8)])
    with pytest.raises(ValueError, match="image slots"):
        SourceItem("x", "document", [photo("coffee", 8)], reference=["a", None, "b", None])
    item = _doc_item(["a", None, "b", None])
    assert item.reference_slots() == ["a", 0, "b", 1]
    assert item.image_ids == ["t/doc#0", "t/doc#1"]


def test_records_round_trip_validate_and_become_samples(tmp_path):
    photo("coffee", 16).save(tmp_path / "a.png")
    prov = Provenance("rule-based", None, PROMPT_VERSION, 0, {"edits": [{"type": "color"}]})
    cap = SynthRecord.caption("g/L2", "g", 2, "a.png", "a red cup", prov)
    doc = SynthRecord.document("d/L3", "d", 3, ["Intro.", None, "End."], [None, "a.png", None], prov)
    for rec in (cap, doc):
        rec.validate()
        data = json.loads(json.dumps(rec.to_dict()))
        assert SynthRecord.from_dict(data) == rec
    assert cap.to_dict()["label"] == "hard_negative"
    assert cap.to_dict()["provenance"] == {"generator": "rule-based", "model": None, "prompt_version": PROMPT_VERSION,
                                           "seed": 0, "extra": {"edits": [{"type": "color"}]}}
    sample = record_to_sample(cap, tmp_path)
    assert sample.kind == "caption" and sample.texts == ["a red cup"] and sample.images[0].size == (16, 11)
    sample = record_to_sample(doc.to_dict(), tmp_path)
    assert sample.kind == "document" and sample.num_images == 1 and sample.meta["level"] == 3

    bad = [
        SynthRecord.document("x", "x", 1, ["a", "b"], [None, "a.png", None], prov),
        SynthRecord.document("x", "x", 1, ["a", "b"], ["a.png", "a.png"], prov),
        SynthRecord.document("x", "x", 1, ["a", "b"], [None, None], prov),
        SynthRecord.caption("x", "x", 5, "a.png", "t", prov),
        SynthRecord.caption("x", "x", 1, "a.png", "  ", prov),
    ]
    for rec in bad:
        with pytest.raises(ValueError):
            rec.validate()


def test_old_records_with_kind_interleaved_read_as_document(tmp_path):
    # a records.jsonl line as written before "interleaved" was renamed "document"
    old = {"id": "d/L3", "group_id": "d", "kind": "interleaved", "level": 3, "label": "positive",
           "images": [None, "a.png"], "texts": ["Intro.", None],
           "provenance": {"generator": "rule-based", "model": None, "prompt_version": "uf-rules-v1", "seed": 0,
                          "extra": {}}}
    (tmp_path / "records.jsonl").write_text(json.dumps(old) + "\n")
    [rec] = read_records(tmp_path / "records.jsonl")
    assert rec.kind == "document" and rec.texts == ["Intro.", None] and rec.images == [None, "a.png"]
    rec.validate()
    assert rec.to_dict()["kind"] == "document"


def test_interleaved_is_an_alias_of_document():
    assert canonical_kind("interleaved") == "document" and canonical_kind("caption") == "caption"
    assert requirement(1, "interleaved") == requirement(1, "document")
    item = SourceItem("x", "interleaved", [photo("coffee", 8)])
    assert item.kind == "document"
    assert {it.kind for it in bundled_items("interleaved")} == {"document"}
