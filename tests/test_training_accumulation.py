"""Gradient accumulation changes nothing: batch B x accumulation k == batch B*k x 1, for every loss.

Real ``UniFilterTrainer`` steps on a tiny model: the logged loss and the gradient the optimizer sees (read in
``on_pre_optimizer_step``, clipping off) must agree within 5e-5 relative.
"""

import datasets
import pytest
import torch
from transformers import TrainerCallback

from tests.kit import photo, tiny_model_and_processor
from unifilter_hf.training import QualityCollator, UniFilterTrainer, UniFilterTrainingArguments

# Two groups of four versions; group batching keeps each group inside one micro-batch of 4. The groups hold
# different numbers of ordered pairs (6 and 4), so averaging per micro-batch would not give the big batch's mean.
TEXTS = ["A cup of coffee on a saucer.", "A cup of tea.", "A bowl of soup.", "A rocket launch.",
         "A cat looks at the camera.", "A dog looks away.", "A red car.", "Stars in the sky."]
PHOTOS = ["coffee"] * 4 + ["chelsea"] * 4
LEVELS = [3, 2, 1, 0, 3, 3, 1, 1]


class _GradTap(TrainerCallback):
    def __init__(self):
        self.grads = None

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        self.grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _one_step(tmp_path, loss, batch, accumulation, weight=0.0):
    num_labels = 4 if loss == "ce" else 1
    model, processor = tiny_model_and_processor(num_labels=num_labels, seed=5)
    model.train()
    rows = [{"image": photo(p, 64), "text": t, "label": lvl, "group_id": p, "kind": "caption"}
            for p, t, lvl in zip(PHOTOS, TEXTS, LEVELS)]
    tap = _GradTap()
    args = UniFilterTrainingArguments(
        str(tmp_path / f"{loss}-{batch}x{accumulation}"), loss=loss, pairwise_weight=weight, use_cpu=True, max_steps=1,
        per_device_train_batch_size=batch, gradient_accumulation_steps=accumulation, learning_rate=0.0,
        max_grad_norm=0.0, logging_steps=1, report_to="none", save_strategy="no", group_batches=True,
        dataloader_num_workers=0, disable_tqdm=True, seed=0)
    trainer = UniFilterTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows),
                               data_collator=QualityCollator(processor), callbacks=[tap])
    trainer.train()
    logged = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(logged) == 1
    return logged[0], tap.grads


@pytest.mark.parametrize("loss,weight", [("mse", 0.0), ("ce", 0.0), ("pairwise", 0.0), ("mse", 0.5)])
def test_accumulation_gives_the_big_batch_loss_and_gradient(tmp_path, loss, weight):
    big_loss, big_grads = _one_step(tmp_path, loss, batch=8, accumulation=1, weight=weight)
    acc_loss, acc_grads = _one_step(tmp_path, loss, batch=4, accumulation=2, weight=weight)
    assert big_loss > 0
    assert acc_loss == pytest.approx(big_loss, rel=5e-5)
    assert big_grads.keys() == acc_grads.keys() and len(big_grads) > 10
    flat_big = torch.cat([g.flatten() for g in big_grads.values()])
    flat_acc = torch.cat([acc_grads[n].flatten() for n in big_grads])
    assert flat_big.norm() > 0
    assert float((flat_acc - flat_big).norm() / flat_big.norm()) < 5e-5
