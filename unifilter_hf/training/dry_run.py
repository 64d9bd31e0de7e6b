"""Validate a recipe without training: parse it, build the model on the meta device, count parameters.

Used for the full-size recipe on a machine without GPUs (``unifilter-hf train CONFIG --dry_run``): no
weights are allocated or downloaded, and ``use_cpu`` is forced only so that ``bf16: true`` parses on CPU.

Example:
    >>> info = dry_run(["--config", "recipes/quickstart/train.yaml", "--output_dir", "out/dry"])  # doctest: +SKIP
    >>> info["parameters"]["total"] > 0  # doctest: +SKIP
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .arguments import parse_train_args
from .model_setup import apply_lora, build_model, parameter_counts


def dry_run(argv: Sequence[str]) -> dict[str, Any]:
    """Parse ``argv`` like :func:`~unifilter_hf.training.run.train`, build on ``meta``, print and return counts.

    Returns the parsed argument groups, the model (on meta) and the parameter counts, total and per part.
    """
    data, model_args, train_args = parse_train_args([*argv, "--use_cpu", "true"])
    model = apply_lora(build_model(model_args, None, device="meta"), model_args)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    parts = {name: sum(p.numel() for p in module.parameters()) for name, module in base.named_children()}
    counts = parameter_counts(model)
    print(f"parameters: {counts['total']:,} total, {counts['trainable']:,} trainable "
          + ", ".join(f"{k} {v:,}" for k, v in parts.items()))
    return {"data": data, "model_args": model_args, "train_args": train_args, "model": model,
            "parameters": {**counts, "parts": parts}}
