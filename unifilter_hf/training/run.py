"""One training run, end to end: data, model, Trainer, validation report, calibration, merge, artefacts.

``train(argv)`` is what ``unifilter-hf train CONFIG`` and ``python -m unifilter_hf.training CONFIG`` call.

Example:
    >>> out = train(["--config", "recipes/quickstart/train.yaml", "--output_dir", "out/q"])  # doctest: +SKIP
    >>> load_metrics(out)["eval_accuracy"]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..pipeline_unifilter import save_scoring_checkpoint
from .arguments import DataArguments, UniFilterModelConfig, UniFilterTrainingArguments, parse_train_args
from .card import render_card
from .collator import QualityCollator
from .data import load_training_data
from .metrics import make_compute_metrics
from .model_setup import apply_lora, build_model, build_processor, parameter_counts
from .plots import plot_confusion_matrix, plot_score_distribution, plot_training_curve
from .report import validation_report, write_metrics
from .trainer import UniFilterTrainer

logger = logging.getLogger(__name__)


def train(argv: Sequence[str] | None = None) -> Path:
    """Parse ``argv`` (``--config recipe.yaml`` and overrides), train, evaluate, save; return the output folder.

    The folder holds the checkpoint, its card and ``metrics.json`` (validation metrics, and the run's summary
    under ``"run"``). Pushing it is the entry point's job (``unifilter-hf train ... --push_to_hub REPO``).
    """
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    recipe = args[args.index("--config") + 1] if "--config" in args else None
    overrides = [a for k, a in enumerate(args) if a != "--config" and (k == 0 or args[k - 1] != "--config")]
    data_args, model_args, train_args = parse_train_args(args)
    return run_training(data_args, model_args, train_args, recipe=recipe, overrides=overrides)


def run_training(data_args: DataArguments, model_args: UniFilterModelConfig,
                 train_args: UniFilterTrainingArguments, recipe: str | None = None,
                 overrides: Sequence[str] | None = None) -> Path:
    """The run for already-parsed arguments (see :func:`train`)."""
    check_global_batch(train_args)
    started = time.perf_counter()
    torch.manual_seed(train_args.seed)
    if train_args.torch_num_threads:
        torch.set_num_threads(train_args.torch_num_threads)
    dd = load_training_data(data_args, seed=train_args.seed)
    data_s = time.perf_counter() - started

    processor = build_processor(model_args)
    if train_args.stage == 1:
        from .stage1 import run_stage1

        run_stage1(data_args, model_args, train_args, dd, processor, build_model(model_args, processor))
        return Path(train_args.output_dir)
    model = apply_lora(build_model(model_args, processor), model_args)
    counts = parameter_counts(model)
    print(f"parameters: {counts['total']:,} total, {counts['trainable']:,} trainable")
    trainer = UniFilterTrainer(
        model=model, args=train_args, train_dataset=dd["train"], eval_dataset=dd["validation"],
        data_collator=QualityCollator(processor, truncation=model_args.truncation), processing_class=processor,
        compute_metrics=make_compute_metrics(dd["validation"]),
    )
    t0 = time.perf_counter()
    train_result = trainer.train()
    train_s = time.perf_counter() - t0

    report, scores, labels = validation_report(trainer, dd["validation"], calibrate=train_args.calibrate)
    out = Path(train_args.output_dir)
    final = trainer.model.merge_and_unload() if model_args.use_peft else trainer.model
    if "calibration" in report:
        final.config.calibration = report["calibration"]
    if trainer.is_world_process_zero():
        # With the pipeline code, so the checkpoint runs as a pipeline where unifilter-hf is not installed.
        save_scoring_checkpoint(final.eval(), processor, out)
        _write_artefacts(out, report, scores, labels, trainer.state.log_history)
    summary = {
        "dataset": data_args.dataset, "loss": train_args.loss, "pairwise_weight": train_args.pairwise_weight,
        "total_params": counts["total"], "trainable_params": counts["trainable"],
        "train_rows": dd["train"].num_rows, "num_validation": dd["validation"].num_rows,
        "steps": trainer.state.global_step, "train_loss": train_result.training_loss,
        "data_seconds": round(data_s, 1), "train_seconds": round(train_s, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
        "loss_curve": [[h["step"], h["loss"]] for h in trainer.state.log_history if "loss" in h],
        "overrides": list(overrides or []),
    }
    report["run"] = summary
    if trainer.is_world_process_zero():
        write_metrics(report, out)
        recipe_text = Path(recipe).read_text() if recipe and Path(recipe).is_file() else ""
        if overrides:
            recipe_text += "\n# command-line overrides: " + " ".join(overrides)
        card_facts = _card_facts(data_args, model_args, train_args, final, summary)
        render_card(train_args.push_repo or out.name, recipe or "-", recipe_text, report, card_facts).save(
            out / "README.md")
    return out


def check_global_batch(args: UniFilterTrainingArguments) -> None:
    """Refuse to start when the launch does not give the recipe's global batch (a silently other recipe)."""
    actual = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
    if args.global_batch_size and actual != args.global_batch_size:
        raise ValueError(
            f"the recipe's global batch is {args.global_batch_size} but this launch gives {actual} "
            f"({args.world_size} processes x {args.per_device_train_batch_size} rows x "
            f"{args.gradient_accumulation_steps} accumulation steps); change gradient_accumulation_steps or "
            "per_device_train_batch_size, or pass --global_batch_size to mean another recipe")


def load_metrics(out: str | Path, stage: int = 2) -> dict:
    """What a run wrote: stage 2's ``metrics.json`` (validation metrics, the run's summary under ``"run"``), or
    stage 1's ``stage1.json`` (caption LM losses before and after)."""
    import json

    return json.loads((Path(out) / ("stage1.json" if stage == 1 else "metrics.json")).read_text())


def commit_message(recipe: str | None, report: dict) -> str:
    """``unifilter-hf train: recipe R, loss mse, 40 steps, 64 train rows: eval_accuracy=0.8125``."""
    run = report.get("run", {})
    accuracy = report.get("eval_accuracy")
    return (f"unifilter-hf train: recipe {recipe or '-'}, loss {run.get('loss')}, {run.get('steps')} steps, "
            f"{run.get('train_rows')} train rows: eval_accuracy="
            + (f"{accuracy:.4f}" if isinstance(accuracy, float) else str(accuracy)))


def _write_artefacts(out: Path, report: dict, scores, labels, log_history) -> None:
    quality = report.get("quality_metrics", {})
    if quality.get("confusion_matrix") is not None:
        plot_confusion_matrix(quality["confusion_matrix"], out / "confusion_matrix.png")
    plot_score_distribution(scores, labels, out / "score_distribution.png")
    plot_training_curve(log_history, out / "training_curve.png")


def _card_facts(data_args, model_args, train_args, model, summary) -> dict[str, Any]:
    cfg = model.config
    v, t = cfg.vision_config, cfg.text_config
    if data_args.dataset == "shapes_world":
        description = (f"The shapes world (`unifilter_hf.synthesis.shapes_world`): {data_args.train_scenes} "
                       f"generated training scenes and {data_args.validation_scenes} held-out validation scenes, "
                       f"four captions each (levels 3, 2, 1, 0), {data_args.image_size} px images"
                       + (", **blank images** (text-only control)" if data_args.blank_images else "")
                       + f"; generator seed {train_args.seed + data_args.data_seed_offset}.")
    else:
        description = (f"`unifilter_hf.datasets_builder.build_synthetic({data_args.dataset_config!r}, "
                       f"source={data_args.dataset!r})`; each row's `provenance` says how it was generated.")
    lora = (f"LoRA r={model_args.lora_r}, alpha={model_args.lora_alpha} on the LLM (merged); projector and head "
            f"fully trained" if model_args.use_peft else "full fine-tuning")
    return {
        **summary, "dataset_description": description, "finetuning": lora
        + (", vision tower frozen" if model_args.freeze_vision else ", vision tower trained"),
        "vision": f"SigLIP {v.hidden_size} wide, {v.num_hidden_layers} layers, patch {v.patch_size}, "
                  f"{v.image_size} px" + (f" from `{model_args.vision_weights}`" if model_args.vision_weights else ""),
        "text": f"{t.model_type} {t.hidden_size} wide, {t.num_hidden_layers} layers"
                + (f" from `{model_args.text_weights}`" if model_args.text_weights else ""),
        "num_image_tokens": cfg.num_image_tokens, "learning_rate": train_args.learning_rate,
        "scheduler": str(getattr(train_args.lr_scheduler_type, "value", train_args.lr_scheduler_type)),
        "warmup": train_args.warmup_steps,
        "loss": train_args.loss + (f" + {train_args.pairwise_weight} x pairwise" if train_args.pairwise_weight else ""),
        "from_scratch": not (model_args.model_name_or_path or model_args.vision_weights or model_args.text_weights),
        "base_models": [m for m in (model_args.model_name_or_path, model_args.vision_weights,
                                    model_args.text_weights) if m],
    }
