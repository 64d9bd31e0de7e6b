"""The `unifilter-hf` command: `demo`, `score`, `convert`, `synth`, `train`.

Example:
    $ unifilter-hf demo --output out/demo
    $ unifilter-hf score data.parquet --model weizhiwang/UniFilter-Qwen2.5-1.5B --output scored.parquet
"""

from __future__ import annotations

import argparse
import logging
import sys


def _demo(args: argparse.Namespace) -> int:
    from .demo import format_summary, run_demo

    print("unifilter-hf demo: scoring the bundled four-level set with a TINY RANDOM model (offline).")
    print("The scores below exercise the real pipeline but carry no meaning; use a trained checkpoint")
    print("(e.g. --model weizhiwang/UniFilter-Qwen2.5-1.5B with `unifilter-hf score`) for real curation.\n")
    summary = run_demo(args.output, threshold=args.threshold, seed=args.seed)
    print(format_summary(summary))
    print(f"\nwrote {args.output}/synthetic (four-level set), *_scores.parquet and *_kept.parquet")
    return 0


def _score(args: argparse.Namespace) -> int:
    import datasets

    from .filtering import unifilter_keep, unifilter_score

    fmt = args.input.rsplit(".", 1)[-1]
    builder = {"jsonl": "json", "json": "json", "parquet": "parquet", "csv": "csv"}.get(fmt)
    if builder is None:
        raise SystemExit(f"unsupported input {args.input!r}: use .parquet, .jsonl/.json or .csv")
    ds = datasets.load_dataset(builder, data_files=args.input, split="train")
    settings = {"model": args.model, "batch_size": args.batch_size}
    ds = ds.map(unifilter_score(**settings), batched=True, batch_size=args.batch_size * 4)
    if args.threshold is not None:
        ds = ds.filter(unifilter_keep(**settings, threshold=args.threshold), batched=True)
    ds.to_parquet(args.output)
    print(f"wrote {len(ds)} rows to {args.output}")
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
    parser.set_defaults(func=_convert)


def _convert(args: argparse.Namespace) -> int:
    from .official import OFFICIAL_CAPTION_MAX_IDS, OfficialCheckpointError, convert_official_checkpoint

    try:
        dst = convert_official_checkpoint(
            args.src,
            args.dst,
            source_id=args.source_id,
            vision_config=args.vision_config,
            allow_pickle=args.allow_pickle,
            caption_max_ids=OFFICIAL_CAPTION_MAX_IDS if args.official_caption_cut else None,
            pad_to_square=args.pad_to_square,
            revision=args.revision,
        )
    except OfficialCheckpointError as err:
        print(f"unifilter-hf convert: error: {err}", file=sys.stderr)
        return 2
    print(f"converted {args.src} -> {dst}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unifilter-hf", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="offline end-to-end run on the bundled set (tiny random model)")
    demo.add_argument("--output", default="out/demo")
    demo.add_argument("--threshold", type=float, default=None, help="default: each set's median score")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)

    score = sub.add_parser("score", help="score (and optionally filter) a parquet/jsonl/csv file")
    score.add_argument("input")
    score.add_argument("--output", required=True, help="parquet file to write")
    score.add_argument("--model", default=None, help="Hub id or folder (default: $UNIFILTER_MODEL or official)")
    score.add_argument("--threshold", type=float, default=None, help="keep rows scoring at least this")
    score.add_argument("--batch-size", type=int, default=8)
    score.set_defaults(func=_score)

    from .synthesis.cli import register as register_synth
    from .training.cli import register as register_train

    _add_convert(sub)
    register_synth(sub)
    register_train(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
