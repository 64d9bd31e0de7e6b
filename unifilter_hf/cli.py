"""The `unifilter-hf` command: `demo`, `score`, `convert`, `synth`, `train`, `curate`, `report`, `push`, `ablate`.

Wrong arguments and inputs end with one line on stderr naming the fix and exit status 2; `--debug` shows the
traceback instead.

Example:
    $ unifilter-hf demo --output out/demo
    $ unifilter-hf score data.parquet --model weizhiwang/UniFilter-Qwen2.5-1.5B --output scored.parquet
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from .errors import UniFilterError


def _demo(args: argparse.Namespace) -> int:
    from .demo import DemoSizes, run_demo

    print("unifilter-hf demo: four-level data -> train the quickstart scorer -> curate a mixed pool -> ablation "
          f"-> publish (offline, CPU; output in {args.output}{', rebuilt from scratch' if args.fresh else ''})")
    run_demo(args.output, fresh=args.fresh, sizes=DemoSizes.quick() if args.quick else None)  # DemoError: exit 2
    return 0


def _score(args: argparse.Namespace) -> int:
    from .curation.score_files import score_table
    from .scoring_settings import ScoringSettings

    counts = score_table(
        args.input, args.output, threshold=args.threshold, keep_errors=args.keep_errors, config=args.config,
        split=args.split, revision=args.revision, scoring=ScoringSettings.from_args(args),
    )
    print(f"scored {counts['rows']} rows ({counts['errors']} errors); wrote {counts['written']} to {args.output}")
    return 0


def _add_convert(subparsers: argparse._SubParsersAction) -> None:
    """The `convert` subcommand (`unifilter-hf convert SRC DST`)."""
    from .official import OFFICIAL_CAPTION_MAX_IDS

    parser = subparsers.add_parser(
        "convert",
        help="convert an official UniFilter checkpoint (LLaVA layout) to a native unifilter-hf checkpoint",
        description="Convert an official UniFilter checkpoint (local folder or Hub id, model_type llava_qwen / "
        "llava_qwen3) to a native unifilter-hf checkpoint with exact score parity.",
    )
    parser.add_argument("src", help="local folder or Hub id of the official checkpoint")
    parser.add_argument("dst", help="output folder for the native checkpoint")
    parser.add_argument(
        "--vision-config",
        help="SigLIP settings when mm_vision_tower is neither a local folder nor a known tower: a JSON object "
        "(e.g. '{\"num_attention_heads\": 16, \"image_size\": 384}'), a path to a config.json, or a known tower id",
    )
    parser.add_argument(
        "--official-caption-cut",
        action="store_true",
        help=f"cut caption ids to {OFFICIAL_CAPTION_MAX_IDS} as the official caption scorer does (can drop EOS on "
        "long captions; off by default)",
    )
    parser.add_argument(
        "--pad-to-square",
        action="store_true",
        help="pad images to a square before resizing (official training); the official scorer resizes directly",
    )
    parser.add_argument(
        "--allow-pickle", action="store_true", help="accept *.bin pickle weights (trusted sources only)"
    )
    parser.add_argument("--revision", help="Hub revision of SRC")
    parser.add_argument("--source-id", help="Hub id to name in the model card when SRC is a local copy")
    parser.add_argument("--overwrite", action="store_true", help="replace the files of a non-empty DST")
    from .publishing.hub import add_push_flags

    add_push_flags(parser)
    parser.set_defaults(func=_convert)


def _convert(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .official import OFFICIAL_CAPTION_MAX_IDS, convert_official_checkpoint
    from .publishing.hub import check_can_push, push_checkpoint

    check_can_push(args.push_to_hub)  # before any download or conversion
    dst = Path(args.dst)
    if dst.is_dir() and any(dst.iterdir()) and not args.overwrite:
        raise UsageError(f"{dst} is not empty: choose an empty folder, or pass --overwrite to replace its files")
    convert_official_checkpoint(
        args.src,
        dst,
        source_id=args.source_id,
        vision_config=args.vision_config,
        allow_pickle=args.allow_pickle,
        caption_max_ids=OFFICIAL_CAPTION_MAX_IDS if args.official_caption_cut else None,
        pad_to_square=args.pad_to_square,
        revision=args.revision,
    )
    print(f"converted {args.src} -> {dst}")
    if args.push_to_hub:
        revision = f" (revision {args.revision})" if args.revision else ""
        url = push_checkpoint(dst, args.push_to_hub, private=bool(args.private), revision=args.hub_revision,
                              commit_message=f"unifilter-hf convert: official {args.src}{revision} -> native "
                              "unifilter checkpoint (weights renamed, not retrained)")
        print(f"pushed: {url}")
    return 0


class _Parser(argparse.ArgumentParser):
    """Argument errors in one line that points at `--help`, not the whole usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="unifilter-hf", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="offline end to end: make data, train a scorer, curate a pool, publish")
    demo.add_argument("--output", default="out/demo", help="folder for everything (default: out/demo)")
    demo.add_argument("--fresh", action="store_true", help="rebuild everything instead of reusing data and model")
    demo.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)  # tests: tiny sizes, 2 steps
    demo.set_defaults(func=_demo)

    score = sub.add_parser("score", help="score (and optionally filter) a table: file, folder of shards, Hub id")
    score.add_argument("input", help="a data file (.parquet/.arrow/.jsonl/.json/.csv/.tar), a folder (img2dataset, "
                       "save_to_disk, or of data files) or glob, or a Hub dataset id (docs/inputs.md)")
    score.add_argument("--output", required=True, help="file to write: .parquet, .jsonl or .csv")
    score.add_argument("--threshold", type=float, default=None, help="keep rows scoring at least this")
    score.add_argument("--keep-errors", action="store_true", help="with --threshold: also keep unscorable rows")
    score.add_argument("--config", default=None, help="Hub dataset config")
    score.add_argument("--split", default="train", help="Hub dataset split (or split of a DatasetDict folder)")
    score.add_argument("--revision", default=None, help="Hub dataset revision")
    from .scoring_settings import add_scoring_arguments

    add_scoring_arguments(score)  # --model, --device, --batch-size, --columns, ... (shared with curate)
    score.set_defaults(func=_score)

    from .ablation.cli import register as register_ablate
    from .curation.cli import register as register_curate
    from .publishing.hub import register as register_push
    from .report.cli import register as register_report
    from .synthesis.cli import register as register_synth
    from .training.cli import register as register_train

    _add_convert(sub)
    register_synth(sub)
    register_curate(sub)
    register_report(sub)
    register_ablate(sub)
    register_train(sub)
    register_push(sub)
    for command in sub.choices.values():
        command.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return parser


class UsageError(UniFilterError, ValueError):
    """A wrong argument or input: reported in one line with exit status 2."""


#: Exit statuses of ``unifilter-hf``: decided here only (:func:`exit_status`).
EXIT_UNEXPECTED, EXIT_USER_ERROR, EXIT_INTERRUPTED = 1, 2, 130


def exit_status(err: BaseException) -> int:
    """The exit status for an error a command raised: 2 for anything the user can fix (every
    :class:`UniFilterError`, a missing file, a bad value), 130 for Ctrl-C, 1 for a bug."""
    if isinstance(err, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(err, UniFilterError | FileNotFoundError | ValueError):
        return EXIT_USER_ERROR
    return EXIT_UNEXPECTED


def _one_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return " ".join(text.split())


def run_command(command: str, call: Callable[[], int], debug: bool = False) -> int:
    """``call()``'s exit status, or an error's (:func:`exit_status`) after printing it in one line.

    Every entry point goes through here (``unifilter-hf``, ``python -m unifilter_hf.training``, ...).
    """
    try:
        return call()
    except (Exception, KeyboardInterrupt) as err:
        if debug:
            raise
        status = exit_status(err)
        if status == EXIT_INTERRUPTED:
            print(f"unifilter-hf {command}: interrupted", file=sys.stderr)
            return status
        hint = ""
        if type(err).__name__ == "SchemaError":
            hint = " (CLI: --columns image=COLUMN,text=COLUMN or images=COLUMN,texts=COLUMN)"
        print(f"unifilter-hf {command}: error: {_one_line(err)}{hint}", file=sys.stderr)
        if status == EXIT_UNEXPECTED:
            print("(an unexpected error: rerun with --debug for the traceback)", file=sys.stderr)
        return status


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return run_command(args.command, lambda: args.func(args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
