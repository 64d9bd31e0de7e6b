"""The `unifilter-hf` command: `demo`, `score`, `convert`, `synth`.

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

    from .convert_official import register as register_convert
    from .synthesis.cli import register as register_synth

    register_convert(sub)
    register_synth(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
