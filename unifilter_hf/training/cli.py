"""The ``train`` subcommand: ``unifilter-hf train CONFIG [--key value ...]``.

Every ``--key value`` overrides the recipe (any field of the data, model or ``TrainingArguments`` groups);
``--push_to_hub REPO`` uploads the checkpoint, processor and card at the end; ``--dry_run`` only parses the
recipe and builds the model on the meta device (no weights, no data, no GPU needed).

Example:
    $ unifilter-hf train recipes/quickstart/train.yaml --output_dir out/quickstart --seed 1
    $ unifilter-hf train recipes/unifilter-qwen2.5-1.5b/ --output_dir out/big --dry_run   # each stage
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """``CONFIG [--key value ...]`` -> one training run (``python -m unifilter_hf.training`` too)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and not args[0].startswith("-"):
        args = ["--config", *args]
    if "--dry_run" in args:  # validate the recipe only: parse, build on the meta device, count parameters
        from .dry_run import dry_run

        dry_run([a for a in args if a != "--dry_run"])
        return 0
    from ..publishing.hub import check_can_push, push_checkpoint
    from .arguments import parse_train_args
    from .run import commit_message, load_metrics, train

    train_args = parse_train_args(args)[2]
    check_can_push(train_args.push_repo)  # before any expensive step
    out = train(args)
    if train_args.stage == 1:
        run = load_metrics(out, stage=1)
        result = f"eval_loss_before={run['eval_loss_before']:.4f} eval_loss_after={run['eval_loss_after']:.4f}"
    else:
        metrics = load_metrics(out)
        run = metrics["run"]
        result = f"eval_accuracy={metrics.get('eval_accuracy')}"
    print(f"{result} train_seconds={run['train_seconds']} total_seconds={run['total_seconds']}")
    if train_args.push_repo:
        recipe = args[args.index("--config") + 1] if "--config" in args else None
        url = push_checkpoint(out, train_args.push_repo, private=bool(train_args.hub_private_repo),
                              revision=train_args.hub_revision, commit_message=commit_message(recipe, metrics))
        print(f"pushed: {url}")
    return 0


def _train(args: argparse.Namespace) -> int:
    return main([args.config, *args.overrides])


def register(subparsers) -> None:
    """Add ``train`` to the ``unifilter-hf`` command."""
    parser = subparsers.add_parser(
        "train", help="train a UniFilter scorer from a YAML recipe (overrides: --key value)",
        description="Train from a YAML recipe; any --key value pair overrides the recipe.")
    parser.add_argument("config", help="recipe YAML, e.g. recipes/quickstart/train.yaml")
    parser.add_argument("overrides", nargs=argparse.REMAINDER, help="--key value pairs")
    parser.set_defaults(func=_train)
