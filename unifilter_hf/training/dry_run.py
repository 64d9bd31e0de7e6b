"""Validate a recipe without training: parse it, build the model on the meta device, print its settings.

Used for the full-size recipes on a machine without GPUs (``unifilter-hf train CONFIG --dry_run``): no
weights are allocated or downloaded, and ``use_cpu`` is forced only so that ``bf16: true`` parses on CPU.
``CONFIG`` may be a folder: each ``stage*.yaml`` in it is resolved in turn (stage 1, then stage 2).

Example:
    >>> info = dry_run(["--config", "recipes/quickstart/train.yaml", "--output_dir", "out/dry"])  # doctest: +SKIP
    >>> info["parameters"]["total"] > 0  # doctest: +SKIP
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .arguments import parse_train_args
from .model_setup import apply_lora, build_model, parameter_counts

# The settings a reader compares with the official recipe, per argument group.
_SHOWN = {
    "data": ("dataset", "dataset_layout", "validation_file", "validation_fraction", "image_folder"),
    "model": ("tokenizer_name_or_path", "vision_weights", "text_weights", "projector_weights", "official_bos",
              "num_image_tokens", "max_length", "truncation", "pad_to_square", "freeze_vision", "use_peft"),
    "train": ("stage", "loss", "pairwise_weight", "learning_rate", "lr_scheduler_type", "warmup_steps",
              "num_train_epochs", "weight_decay", "max_grad_norm", "optim", "bf16", "tf32", "seed",
              "activation_checkpointing", "eval_strategy", "metric_for_best_model"),
}


def resolved_settings(data, model_args, train_args) -> dict[str, Any]:
    """The settings of one stage that matter for reproducing a recipe, plus the global batch it implies."""
    groups = {"data": data, "model": model_args, "train": train_args}
    out = {name: getattr(groups[g], name) for g, names in _SHOWN.items() for name in names}
    out = {k: getattr(v, "value", v) for k, v in out.items()}  # enums as their values
    per_step = train_args.per_device_train_batch_size * train_args.gradient_accumulation_steps
    processes = (train_args.global_batch_size // per_step if train_args.global_batch_size else 1)
    out["global_batch"] = (f"{processes * per_step} = {processes} processes x "
                           f"{train_args.per_device_train_batch_size} rows x "
                           f"{train_args.gradient_accumulation_steps} accumulation steps")
    return out


def _recipe_tf32(argv: list[str]) -> bool | None:
    if "--tf32" in argv:
        return str(argv[argv.index("--tf32") + 1]).lower() in ("1", "true", "yes")
    if "--config" not in argv:
        return None
    import yaml

    return (yaml.safe_load(Path(argv[argv.index("--config") + 1]).read_text()) or {}).get("tf32")


def dry_run(argv: Sequence[str]) -> dict[str, Any]:
    """Parse ``argv`` like :func:`~unifilter_hf.training.run.train`, build on ``meta``, print and return counts.

    Returns the parsed argument groups, the resolved settings, the model (on meta) and the parameter counts,
    total and per part. With a folder as ``--config``, returns ``{"stages": [one such dict per stage file]}``.
    """
    argv = list(argv)
    if "--config" in argv and Path(argv[argv.index("--config") + 1]).is_dir():
        k = argv.index("--config")
        stages = sorted(Path(argv[k + 1]).glob("stage*.yaml"))
        if not stages:
            raise ValueError(f"{argv[k + 1]} holds no stage*.yaml recipe")
        return {"stages": [dry_run([*argv[:k + 1], str(s), *argv[k + 2:]]) for s in stages]}
    tf32 = _recipe_tf32(argv)  # parsing tf32: true needs an Ampere GPU; report the recipe's value instead
    data, model_args, train_args = parse_train_args([*argv, "--use_cpu", "true", "--tf32", "false"])
    train_args.tf32 = tf32
    model = apply_lora(build_model(model_args, None, device="meta"), model_args)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    parts = {name: sum(p.numel() for p in module.parameters()) for name, module in base.named_children()}
    counts = parameter_counts(model)
    if train_args.stage == 1:  # only the projector trains in stage 1
        counts["trainable"] = parts["projector"]
    settings = resolved_settings(data, model_args, train_args)
    recipe = argv[argv.index("--config") + 1] if "--config" in argv else "(command line)"
    print(f"== {recipe}: stage {train_args.stage}")
    for key, value in settings.items():
        print(f"  {key}: {value}")
    print(f"  parameters: {counts['total']:,} total, {counts['trainable']:,} trainable "
          + ", ".join(f"{k} {v:,}" for k, v in parts.items()))
    return {"data": data, "model_args": model_args, "train_args": train_args, "model": model,
            "settings": settings, "parameters": {**counts, "parts": parts}}
