"""The offline rule-based backend and the bundled mini set it runs on."""

import difflib
import random
import re

import pytest

from unifilter_hf.synthesis import RuleBasedBackend, SourceItem, bundled_items, bundled_photo
from unifilter_hf.synthesis.backends.rule_based import word_overlap
from unifilter_hf.synthesis.bundled import bundled_documents, bundled_photos
from unifilter_hf.synthesis.edits import Edit, apply_edits, choose_edits, property_candidates, writing_edits

PROPERTY = {"color", "count", "spatial", "size", "object"}


@pytest.fixture(scope="module")
def items():
    return bundled_items("both")


@pytest.fixture(scope="module")
def results(items):
    backend = RuleBasedBackend(seed=0)
    backend.prepare(items)
    return {r.item.id: r for r in backend.generate(items)}


def _words(text):
    return re.findall(r"\S+", text)


def test_bundled_set_loads_offline_with_real_photographs():
    photos = bundled_photos()
    assert len(photos) >= 20
    assert len({p["name"] for p in photos}) == len(photos)
    for p in photos:
        image = bundled_photo(p["name"])
        assert image.mode == "RGB" and min(image.size) >= 100, p["name"]
        assert len(p["caption"].split()) >= 20, f"{p['name']}: captions must be detailed"
        assert len(property_candidates(p["caption"])) >= 3, f"{p['name']}: too few editable properties"
    docs = bundled_documents()
    assert len(docs) >= 4
    names = {p["name"] for p in photos}
    for doc in docs:
        images = [s["image"] for s in doc["slots"] if "image" in s]
        assert len(images) >= 2 and set(images) <= names
        assert sum("text" in s for s in doc["slots"]) >= 2


def test_every_bundled_source_yields_four_levels(results, items):
    assert len(results) == len(items) == 21 + len(bundled_documents())
    for rid, res in results.items():
        assert res.ok, (rid, res.error)
        assert res.provenance.generator == "rule-based" and res.provenance.seed == 0


def test_deterministic_for_a_seed_and_independent_of_batching(items, results):
    again = RuleBasedBackend(seed=0)
    again.prepare(list(reversed(items)))
    one_by_one = {it.id: again.generate([it])[0] for it in items[::3]}
    for rid, res in one_by_one.items():
        for lvl in range(4):
            a, b = results[rid].outputs[lvl], res.outputs[lvl]
            assert (a.text, a.slots, a.edits) == (b.text, b.slots, b.edits)
    other = RuleBasedBackend(seed=1)
    other.prepare(items)
    changed = [it.id for it in items if other.generate([it])[0].outputs[2].text != results[it.id].outputs[2].text]
    assert changed, "a different seed should change some hard negatives"


def test_hard_negative_differs_by_exactly_one_property(items, results):
    for item in items:
        if item.kind != "caption":
            continue
        out = results[item.id].outputs
        positive, hard = out[3].text, out[2].text
        assert positive == item.reference
        [edit] = out[2].edits  # exactly one structured edit record
        assert edit["type"] in PROPERTY
        assert positive[edit["start"]:edit["end"]] == edit["before"] and edit["before"] != edit["after"]
        assert apply_edits(positive, [Edit(**edit)]) == hard
        # and the texts themselves differ in exactly one contiguous span of words
        ops = [op for op in difflib.SequenceMatcher(a=_words(positive), b=_words(hard)).get_opcodes()
               if op[0] != "equal"]
        assert len(ops) == 1 and ops[0][0] == "replace", (item.id, ops)
        assert ops[0][2] - ops[0][1] <= 3  # a word, or an article + word, or "in front of"


def test_medium_negative_has_several_errors(items, results):
    for item in items:
        if item.kind == "caption":
            out = results[item.id].outputs
            assert len(out[1].edits) >= 2 and {e["type"] for e in out[1].edits} <= PROPERTY
            assert out[1].text != out[2].text
            assert apply_edits(out[3].text, [Edit(**e) for e in out[1].edits]) == out[1].text


def test_easy_negative_never_describes_its_own_image(items, results):
    by_id = {it.id: it for it in items}
    for item in items:
        if item.kind != "caption":
            continue
        easy = results[item.id].outputs[0]
        [record] = easy.edits
        other = by_id[record["source"]]
        assert other.id != item.id and easy.text == other.reference
        assert easy.text != item.reference
        assert not set(other.image_ids) & set(item.image_ids)
        assert not set(other.tags) & set(item.tags)
        assert word_overlap(easy.text, item.reference) < 0.2  # not a rewrite of its own caption


def test_document_levels(items, results):
    for item in items:
        if item.kind != "document":
            continue
        res = results[item.id]
        own = list(range(item.num_images))
        out = res.outputs
        assert out[3].slots == item.reference_slots()
        # 2: same images in the same places, factual edits plus writing errors in the text
        assert [s if isinstance(s, int) else None for s in out[2].slots] == \
               [s if isinstance(s, int) else None for s in out[3].slots]
        types = [e["type"] for e in out[2].edits]
        assert sum(t in PROPERTY for t in types) >= 2 and len(types) > sum(t in PROPERTY for t in types)
        for e in out[2].edits:
            assert out[3].slots[e["slot"]][e["start"]:e["end"]] == e["before"]
        # 1: own images only, moved away from their paragraphs; writing errors; fewer sentences
        l1_images = [s for s in out[1].slots if isinstance(s, int)]
        assert sorted(l1_images) == own
        assert any(e["type"] == "image_misplaced" and e["from_boundary"] != e["to_boundary"] for e in out[1].edits)
        assert sum(e["type"] in ("typo", "repeated_word", "homophone", "capitalization") for e in out[1].edits) >= 4
        text1 = " ".join(s for s in out[1].slots if isinstance(s, str))
        text3 = " ".join(s for s in out[3].slots if isinstance(s, str))
        assert len(text1) < 0.8 * len(text3)
        # 0: unrelated images only (none of the document's own), many writing errors
        l0_images = [s for s in out[0].slots if isinstance(s, int)]
        assert l0_images and all(i >= item.num_images for i in l0_images)
        assert not {res.image_ids[i] for i in l0_images} & set(item.image_ids)
        assert sum(e["type"] != "shuffled_sentences" for e in out[0].edits) >= 10
        # every level is a valid slot list with text and images
        for lvl in range(4):
            assert any(isinstance(s, str) for s in out[lvl].slots)
            assert any(isinstance(s, int) for s in out[lvl].slots)


def test_failures_are_reported_not_written():
    img = bundled_photo("coffee")
    backend = RuleBasedBackend(seed=0)
    no_ref = SourceItem("x/noref", "caption", [img])
    flat = SourceItem("x/flat", "caption", [img], reference="Something pleasant happened here today.")
    res = backend.generate([no_ref, flat])
    assert [r.ok for r in res] == [False, False]
    assert "reference" in res[0].error and "editable" in res[1].error
    assert all(r.outputs == {} for r in res)


def test_edit_primitives():
    text = "An orange cat sits to the left of two blue cups."
    edits = choose_edits(text, 10, random.Random(3))
    assert len(edits) >= 4 and len({(e.start, e.end) for e in edits}) == len(edits)
    assert all(text[e.start:e.end] == e.before for e in edits)
    art = [c for c in property_candidates(text) if c.before == "orange"]
    assert art and art[0].type == "color"
    # the article follows the new word ("An orange" -> "A blue"), inside the same edit span
    for seed in range(20):
        for e in choose_edits(text, 1, random.Random(seed), types=("color",)):
            if e.start == 0:
                assert e.before == "An orange" and e.after.startswith("A ")
    protected = "A black-and-white photo of 1995 and STS-63 with 5,500 stars."
    assert all(c.type not in ("color", "count") for c in property_candidates(protected))
    typos = writing_edits(text, 3, random.Random(0))
    assert len(typos) == 3 and apply_edits(text, typos) != text
