"""``UniFilterTrainer``: the HF ``Trainer`` with the UniFilter losses and a group-keeping sampler.

TRL's ``RewardTrainer`` is not used: it is text-only, pairwise-only (chosen/rejected), needs a tokenizer as
``processing_class`` and rejects a 4-output head. Its Bradley-Terry loss is here as
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

from .losses import quality_loss
from .sampler import GroupedSampler


class UniFilterTrainer(Trainer):
    """A ``Trainer`` whose loss is ``args.loss`` (mse / ce / pairwise) plus ``args.pairwise_weight`` x pairwise.

    Batches come from :class:`~unifilter_hf.training.QualityCollator` (``labels`` and ``group_index``);
    ``group_index`` is removed before the forward pass. With ``args.group_batches`` the training sampler keeps
    the versions of a source together so that the pairwise term sees whole groups.
    """

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        levels = inputs.pop("labels")
        groups = inputs.pop("group_index", None)
        outputs = model(**inputs)
        loss = quality_loss(self.args.loss, outputs.logits, outputs.scores, levels, groups,
                            self.args.pairwise_weight)
        return (loss, outputs) if return_outputs else loss

    def _get_train_sampler(self, train_dataset=None) -> torch.utils.data.Sampler | None:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.group_batches and dataset is not None and "group_id" in dataset.column_names:
            return GroupedSampler(dataset["group_id"], seed=self.args.seed)
        return super()._get_train_sampler(train_dataset)
