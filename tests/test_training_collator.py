"""The collator (builder rows -> processor batches) and the group-keeping sampler."""

import pytest
import torch

from unifilter_hf import Sample
from unifilter_hf.training import GroupedSampler, QualityCollator


@pytest.fixture(scope="module")
def joint_rows():
    from unifilter_hf.datasets_builder import build_synthetic

    ds = build_synthetic("joint", source="bundled")["train"]
    kinds = ds["kind"]
    # a few captions and a few documents, mixed
    picks = [kinds.index("caption"), kinds.index("document")]
    picks += [i for i, k in enumerate(kinds) if i not in picks][:4]
    return [ds[i] for i in picks]


def test_joint_rows_become_processor_batches_with_labels(tiny, joint_rows):
    _, processor = tiny
    batch = QualityCollator(processor)(joint_rows)
    assert {r["kind"] for r in joint_rows} == {"caption", "document"}
    # the processor is the only path: same ids and pixels as encoding the samples directly
    samples = []
    for row in joint_rows:
        if row["kind"] == "caption":
            text = next(t for t in row["texts"] if t is not None)
            samples.append(Sample.caption(next(im for im in row["images"] if im is not None), text))
        else:
            samples.append(Sample.document(row["texts"], row["images"]))
    direct = processor(samples)
    assert torch.equal(batch["input_ids"], direct["input_ids"])
    assert torch.equal(batch["attention_mask"], direct["attention_mask"])
    assert torch.equal(batch["pixel_values"], direct["pixel_values"])
    assert "num_images" not in batch
    assert batch["labels"].tolist() == [float(r["label"]) for r in joint_rows]
    assert batch["labels"].dtype == torch.float32


def test_caption_kind_in_joint_layout_is_scored_as_a_caption(tiny, joint_rows):
    _, processor = tiny
    row = next(r for r in joint_rows if r["kind"] == "caption")
    sample = QualityCollator(processor).to_sample(row)
    assert sample.kind == "caption" and sample.texts == [next(t for t in row["texts"] if t is not None)]


def test_group_index_numbers_groups_of_the_batch(tiny):
    from tests.kit import photo

    _, processor = tiny
    rows = [{"image": photo("coffee", 32), "text": "a cup", "label": lvl, "group_id": g, "kind": "caption"}
            for lvl, g in [(3, "x"), (0, "y"), (2, "x"), (1, "z")]]
    assert QualityCollator(processor)(rows)["group_index"].tolist() == [0, 1, 0, 2]


def test_grouped_sampler_keeps_groups_whole_and_reshuffles_per_epoch():
    groups = [f"g{k // 4}" for k in range(40)]
    sampler = GroupedSampler(groups, seed=1)
    first = list(sampler)
    assert sorted(first) == list(range(40))
    for start in range(0, 40, 8):  # batches of 8 = two whole groups
        batch = first[start:start + 8]
        assert len({groups[i] for i in batch}) == 2
    sampler.set_epoch(1)
    assert list(sampler) != first
    assert list(GroupedSampler(groups, seed=1)) == first  # deterministic
