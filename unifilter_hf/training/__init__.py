"""Training a UniFilter scorer with the HF Trainer stack (see docs/training.md).

Modules: ``arguments`` (YAML + CLI via TRL's parser), ``data``, ``collator``, ``losses``, ``sampler``,
``trainer``, ``model_setup`` (build, freeze, LoRA), ``metrics``, ``validation_results`` (validation + calibration),
``plots``, ``card``, ``run`` (one run end to end), ``cli``.

Example:
    >>> from unifilter_hf.training import quality_loss
    >>> import torch
    >>> float(quality_loss("mse", torch.zeros(1, 1), torch.zeros(1), torch.ones(1)))
    1.0
"""

from .arguments import DataArguments, UniFilterModelConfig, UniFilterTrainingArguments, parse_train_args
from .collator import QualityCollator
from .losses import ce_loss, mse_loss, pairwise_loss, quality_loss
from .sampler import GroupedSampler
from .trainer import UniFilterTrainer

__all__ = [
    "DataArguments", "GroupedSampler", "QualityCollator", "UniFilterModelConfig", "UniFilterTrainer",
    "UniFilterTrainingArguments", "ce_loss", "mse_loss", "pairwise_loss", "parse_train_args", "quality_loss",
]
