"""``unifilter-hf curate``: argument wiring only (the job lives in :mod:`unifilter_hf.curation.job`).

Example:
    $ unifilter-hf curate shards/ --output out/hq --top-fraction 0.3
    $ unifilter-hf curate --config recipes/curate-obelics.yaml --output out/obelics-hq
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..publishing.hub import add_push_flags
from ..scoring_settings import ScoringSettings, add_scoring_arguments
from .settings import CurateConfig, CurationError, load_recipe

_RECIPE_SUFFIXES = (".yaml", ".yml")


def register(sub) -> None:
    """Add the ``curate`` subcommand to the ``unifilter-hf`` parser."""
    p = sub.add_parser("curate", help="score, select and write a curated dataset (sharded, resumable)")
    p.add_argument("source", nargs="?", help="Hub dataset id, folder or glob of .parquet/.jsonl/.tar shards")
    p.add_argument("--output", help="job folder (sidecars, curated data, summary)")
    p.add_argument("--config", help="a recipe .yaml; any other value is the Hub dataset config name")
    p.add_argument("--dataset-config", help="Hub dataset config name (when --config is a recipe)")
    p.add_argument("--split")
    p.add_argument("--revision")
    add_scoring_arguments(p)  # --model, --device, --batch-size, --columns, ... (the same as `score`'s)
    p.add_argument("--window", type=int, help="rows bucketed by length together (default: 8 batches)")
    p.add_argument("--workers", type=int, help="image-decoding processes (default 0: in the main process)")
    p.add_argument("--threads", type=int, help="torch threads (local process and each Ray actor)")
    p.add_argument("--threshold", type=float)
    p.add_argument("--top-fraction", type=float, help="keep this fraction per kind, exact over the job")
    p.add_argument("--keep-errors", action="store_true", default=None)
    p.add_argument("--select-only", action="store_true", default=None, help="reuse sidecars; never score")
    p.add_argument("--engine", choices=["local", "ray"])
    p.add_argument("--ray-address")
    p.add_argument("--num-actors", type=int)
    p.add_argument("--gpus-per-actor", type=float)
    p.add_argument("--quiet", action="store_true", default=None)
    p.add_argument("--overwrite", action="store_true", default=None, help="delete --output and start over")
    p.add_argument("--no-report", dest="report", action="store_false", default=None,
                   help="skip report/report.html (write it later with `unifilter-hf report DIR`)")
    add_push_flags(p, license=True)
    p.add_argument("--push-scores-only", action="store_true", default=None,
                   help="with --push-to-hub: upload the score sidecars, not the curated rows")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> CurateConfig:
    """Recipe values first, then every flag given on the command line."""
    values: dict = {}
    recipe = args.config
    if recipe and recipe.lower().endswith(_RECIPE_SUFFIXES):
        values.update(load_recipe(recipe))
    elif recipe:
        values["dataset_config"] = recipe
    # A recipe's scoring keys (flat, or under `scoring:`), then the scoring flags given
    flat = {name: values.pop(name) for name in ScoringSettings.names() if name in values}
    try:
        base = ScoringSettings(**(values.pop("scoring", None) or {})).replace(**flat)
    except (TypeError, ValueError) as err:
        raise CurationError(f"recipe {recipe}: {err}") from None
    skip = ("config", "func", "command", "debug", *ScoringSettings.names())
    flags = {k: v for k, v in vars(args).items() if k not in skip and v is not None}
    values.update(flags)
    return CurateConfig(scoring=ScoringSettings.from_args(args, base=base), **values)


def _silence() -> None:
    """--quiet: errors only, and no progress bars from transformers or datasets either."""
    logging.getLogger().setLevel(logging.ERROR)
    import datasets
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()


def run(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
        if config.quiet:
            _silence()
        from ..publishing.curation_run import finish_curation
        from ..publishing.hub import check_can_push
        from .job import curate

        check_can_push(config.push_to_hub)  # before the source, the model or any file: one line, exit 2
        finish_curation(curate(config), config)
    except CurationError as err:
        print(f"unifilter-hf curate: error: {err}", file=sys.stderr)
        return 2
    return 0
