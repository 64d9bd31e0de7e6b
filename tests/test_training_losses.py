"""Each training loss against a hand computation on a small batch, directly and through the trainer."""

import math

import pytest
import torch

from unifilter_hf.training import QualityCollator, UniFilterTrainer, UniFilterTrainingArguments
from unifilter_hf.training.losses import ce_loss, mse_loss, pairwise_loss, quality_loss

SCORES = torch.tensor([2.5, 1.0, 0.5, 3.2, 0.0])
LEVELS = torch.tensor([3.0, 2.0, 0.0, 3.0, 1.0])
GROUPS = torch.tensor([0, 0, 0, 1, 1])


def _bt(better: float, worse: float) -> float:
    return -math.log(1 / (1 + math.exp(-(better - worse))))


def test_mse_by_hand():
    expected = ((2.5 - 3) ** 2 + (1 - 2) ** 2 + 0.5**2 + 0.2**2 + 1) / 5
    assert mse_loss(SCORES, LEVELS).item() == pytest.approx(expected, rel=1e-6)


def test_ce_by_hand():
    logits = torch.tensor([[2.0, 0.0, 0.0, 1.0], [0.0, 3.0, 1.0, 0.0]])
    levels = torch.tensor([3, 2])

    def nll(row, k):
        return -(row[k] - math.log(sum(math.exp(v) for v in row)))

    expected = (nll([2.0, 0, 0, 1], 3) + nll([0, 3.0, 1, 0], 2)) / 2
    assert ce_loss(logits, levels).item() == pytest.approx(expected, rel=1e-6)


def test_pairwise_by_hand_only_within_groups():
    # Ordered pairs (better, worse) inside a group: (0,1), (0,2), (1,2) in group 0 and (3,4) in group 1.
    # Rows 0 and 3 are both level 3 but in different groups: never paired.
    pairs = [(2.5, 1.0), (2.5, 0.5), (1.0, 0.5), (3.2, 0.0)]
    expected = sum(_bt(b, w) for b, w in pairs) / len(pairs)
    assert pairwise_loss(SCORES, LEVELS, GROUPS).item() == pytest.approx(expected, rel=1e-6)


def test_pairwise_without_pairs_is_zero_but_differentiable():
    scores = torch.tensor([1.0, 2.0], requires_grad=True)
    loss = pairwise_loss(scores, torch.tensor([3.0, 3.0]), torch.tensor([0, 0]))
    loss.backward()
    assert loss.item() == 0.0 and scores.grad is not None


def test_combined_loss_adds_weighted_pairwise():
    logits = SCORES[:, None]
    combined = quality_loss("mse", logits, SCORES, LEVELS, GROUPS, pairwise_weight=0.5).item()
    expected = mse_loss(SCORES, LEVELS).item() + 0.5 * pairwise_loss(SCORES, LEVELS, GROUPS).item()
    assert combined == pytest.approx(expected, rel=1e-6)
    assert quality_loss("pairwise", logits, SCORES, LEVELS, GROUPS).item() == pytest.approx(
        pairwise_loss(SCORES, LEVELS, GROUPS).item())
    with pytest.raises(ValueError, match="group"):
        quality_loss("mse", logits, SCORES, LEVELS, None, pairwise_weight=1.0)


@pytest.mark.parametrize("loss,num_labels,weight", [("mse", 1, 0.0), ("ce", 4, 0.0), ("mse", 1, 2.0),
                                                     ("pairwise", 1, 0.0)])
def test_trainer_loss_is_the_hand_loss_of_the_model_outputs(tmp_path, loss, num_labels, weight):
    from tests.kit import photo, tiny_model_and_processor

    model, processor = tiny_model_and_processor(num_labels=num_labels, seed=3)
    rows = [{"image": photo(n, 64), "text": t, "label": lvl, "group_id": g, "kind": "caption"}
            for n, t, lvl, g in [("coffee", "A cup of coffee.", 3, "a"), ("coffee", "A cat.", 0, "a"),
                                 ("chelsea", "A cat looks.", 3, "b"), ("chelsea", "A rocket.", 1, "b")]]
    batch = QualityCollator(processor)(rows)
    args = UniFilterTrainingArguments(str(tmp_path), loss=loss, pairwise_weight=weight, use_cpu=True)
    trainer = UniFilterTrainer(model=model, args=args, data_collator=QualityCollator(processor))
    with torch.no_grad():
        got = trainer.compute_loss(model, batch).item()
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    pixel_values=batch["pixel_values"])
    s, levels = out.scores.tolist(), [3, 0, 3, 1]
    pair_term = (_bt(s[0], s[1]) + _bt(s[2], s[3])) / 2
    if loss == "mse":
        expected = sum((a - b) ** 2 for a, b in zip(s, levels)) / 4 + weight * pair_term
    elif loss == "ce":
        expected = sum(-torch.log_softmax(row, -1)[k].item() for row, k in zip(out.logits, levels)) / 4
    else:
        expected = pair_term
    assert got == pytest.approx(expected, rel=1e-5)
