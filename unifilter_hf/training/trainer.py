"""``UniFilterTrainer``: the HF ``Trainer`` with the UniFilter losses and a group-keeping sampler.

TRL's ``RewardTrainer`` is not used: it is text-only, pairwise-only (chosen/rejected), needs a tokenizer as
``processing_class`` and rejects a 4-output head (ECOSYSTEM.md section 4). Its Bradley-Terry loss is here as
the ``pairwise`` term, over all ordered pairs of a group rather than one chosen/rejected pair.

Example:
    >>> from unifilter_hf.tiny import tiny_model_and_processor
    >>> from unifilter_hf.training import QualityCollator, UniFilterTrainingArguments
    >>> model, processor = tiny_model_and_processor()
    >>> args = UniFilterTrainingArguments("out/doctest", loss="mse", pairwise_weight=0.5, use_cpu=True)
    >>> trainer = UniFilterTrainer(model=model, args=args, data_collator=QualityCollator(processor))
    >>> trainer.args.group_batches
    True
"""

from __future__ import annotations

import torch
from transformers import Trainer

from .losses import count_pairs, quality_loss
from .sampler import GroupedSampler


class UniFilterTrainer(Trainer):
    """A ``Trainer`` whose loss is ``args.loss`` (mse / ce / pairwise) plus ``args.pairwise_weight`` x pairwise.

    Batches come from :class:`~unifilter_hf.training.QualityCollator` (``labels`` and ``group_index``);
    ``group_index`` is removed before the forward pass. With ``args.group_batches`` the training sampler keeps
    the versions of a source together so that the pairwise term sees whole groups.

    Accumulation-invariant: each micro-batch loss is a sum divided by the rows (and ordered pairs) of the whole
    optimizer step, all micro-batches and processes, so the micro-batch losses add up to the loss of one big
    batch and the Trainer must not divide again (``loss_is_scaled_for_ga``).
    """

    # compute_loss divides by the step's counts itself; the Trainer must not also divide by the accumulation.
    loss_is_scaled_for_ga = True

    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device) -> torch.Tensor | None:
        """``[rows, ordered pairs]`` of one optimizer step, summed over processes (the Trainer's counting hook).

        Counted always, not only when the model "accepts loss kwargs": our loss needs them in every case.
        """
        counts = [torch.stack([torch.tensor(b["labels"].numel()),
                               count_pairs(b["labels"], b["group_index"]).cpu() if "group_index" in b
                               else torch.tensor(0)])
                  for b in batch_samples if "labels" in b]
        if not counts:
            return None
        total = torch.stack(counts).sum(0).to(device)
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            total = self.accelerator.gather(total).view(-1, 2).sum(0)
        return total

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        levels = inputs.pop("labels")
        groups = inputs.pop("group_index", None)
        outputs = model(**inputs)
        rows = pairs = None
        if torch.is_tensor(num_items_in_batch) and num_items_in_batch.numel() == 2:
            rows, pairs = num_items_in_batch[0], num_items_in_batch[1]
        elif num_items_in_batch is not None:  # a plain row count from another caller
            rows = num_items_in_batch
        loss = quality_loss(self.args.loss, outputs.logits, outputs.scores, levels, groups,
                            self.args.pairwise_weight, num_items_in_batch=rows, num_pairs=pairs)
        if num_items_in_batch is not None and self.args.average_tokens_across_devices:
            # DDP averages gradients over processes while the counts were summed over them: undo the average.
            loss = loss * self.accelerator.num_processes
        return (loss, outputs) if return_outputs else loss

    def _get_train_sampler(self, train_dataset=None) -> torch.utils.data.Sampler | None:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.group_batches and dataset is not None and "group_id" in dataset.column_names:
            return GroupedSampler(dataset["group_id"], seed=self.args.seed)
        return super()._get_train_sampler(train_dataset)
