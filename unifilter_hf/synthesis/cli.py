"""``unifilter-hf synth``: generate a four-level set into a folder (JSONL + images), resumably.

Examples::

    unifilter-hf synth --bundled --output out/synth                        # offline, rule-based
    unifilter-hf synth --images-dir photos/ --backend openai --base-url http://127.0.0.1:8000/v1 \\
        --model Qwen/Qwen2.5-VL-7B-Instruct --output out/synth
    unifilter-hf synth --dataset my-org/captions --text-column caption --backend transformers \\
        --model Qwen/Qwen2.5-1.5B-Instruct --mode rewrite --output out/synth

The subcommand is added to the top-level parser by :func:`register`; the exit code is 0 when every source
succeeded, 1 when some failed (see ``errors.jsonl``), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import UniFilterError
from .backends.base import SourceItem, SynthesisBackend
from .levels import KINDS, canonical_kind


def register(subparsers) -> None:
    """Add the ``synth`` subcommand to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "synth",
        help="generate four-level semi-synthetic caption/document data",
        description="Generate texts at four quality levels for real images and write JSONL + images.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--bundled", action="store_true", help="the bundled scikit-image/scikit-learn photographs")
    src.add_argument("--images-dir", help="a folder of images (captions) or of document sub-folders")
    src.add_argument("--dataset", help="a Hub dataset id or local dataset folder (datasets.load_dataset)")
    p.add_argument("--output", "-o", required=True, help="output folder (records.jsonl, images/, ...)")
    # type= runs before choices are checked, so the old word "interleaved" still works (not shown in help)
    p.add_argument("--kind", type=canonical_kind, choices=["caption", "document", "both"], default=None,
                   help="source kind (default: both for --bundled, caption otherwise)")
    p.add_argument("--split", default="train", help="dataset split (--dataset)")
    p.add_argument("--image-column", default="image")
    p.add_argument("--text-column", default=None, help="reference caption column (--dataset, captions)")
    p.add_argument("--images-column", default="images")
    p.add_argument("--texts-column", default="texts")
    p.add_argument("--id-column", default=None)
    p.add_argument("--limit", type=int, default=None, help="use at most this many sources")

    p.add_argument("--backend", choices=["rule-based", "openai", "transformers"], default="rule-based")
    p.add_argument("--model", help="model name (openai) or Hub id / path (transformers)")
    p.add_argument("--mode", choices=["vision", "rewrite"], default="vision",
                   help="vision: the model sees the images; rewrite: a text LLM rewrites reference texts")
    p.add_argument("--base-url", default="http://127.0.0.1:8000/v1", help="OpenAI-compatible server (openai)")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    p.add_argument("--max-retries", type=int, default=5, help="retries of a failed request")
    p.add_argument("--max-attempts", type=int, default=3, help="requests per source when replies are malformed")
    p.add_argument("--cache-dir", default=None, help="reply cache (default: OUTPUT/.cache)")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--max-new-tokens", type=int, default=2048)
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default=None, help="e.g. bfloat16 (transformers)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--no-resume", action="store_true", help="start over instead of skipping finished sources")
    from ..publishing.hub import add_push_flags

    add_push_flags(p, license=True)
    p.set_defaults(func=run_synth)


def load_items(args: argparse.Namespace) -> list[SourceItem]:
    """The sources selected by the command-line arguments."""
    if args.bundled:
        from .bundled import bundled_items

        items = bundled_items(args.kind or "both")
    elif args.images_dir:
        from .sources import folder_items

        kinds = list(KINDS) if args.kind == "both" else [args.kind or "caption"]
        items = [it for k in kinds for it in folder_items(args.images_dir, k)]
    else:
        from .sources import dataset_items

        kinds = list(KINDS) if args.kind == "both" else [args.kind or "caption"]
        items = [
            it for k in kinds for it in dataset_items(
                args.dataset, split=args.split, kind=k, image_column=args.image_column,
                text_column=args.text_column, images_column=args.images_column, texts_column=args.texts_column,
                id_column=args.id_column, limit=args.limit,
            )
        ]
    return items[: args.limit] if args.limit is not None else items


def make_backend(args: argparse.Namespace) -> SynthesisBackend:
    """The generator backend selected by the command-line arguments."""
    import os
    from pathlib import Path

    if args.backend == "rule-based":
        from .backends.rule_based import RuleBasedBackend

        return RuleBasedBackend(seed=args.seed)
    if not args.model:
        raise UniFilterError("--model is required for the openai and transformers backends")  # exit status 2
    if args.backend == "openai":
        from .backends.openai_http import OpenAIChatBackend

        return OpenAIChatBackend(
            args.base_url, args.model, api_key=os.environ.get(args.api_key_env), mode=args.mode,
            concurrency=args.concurrency, timeout=args.timeout, max_retries=args.max_retries,
            max_attempts=args.max_attempts, cache_dir=args.cache_dir or Path(args.output) / ".cache",
            temperature=args.temperature, max_tokens=args.max_new_tokens, seed=args.seed,
        )
    from .backends.transformers_local import TransformersBackend

    return TransformersBackend(
        args.model, mode=args.mode, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
        device=args.device, dtype=args.dtype, max_attempts=args.max_attempts, seed=args.seed,
    )


def run_synth(args: argparse.Namespace) -> int:
    """Entry point of ``unifilter-hf synth``; returns the exit code."""
    from ..publishing.hub import check_can_push
    from .runner import synthesize

    push_to = getattr(args, "push_to_hub", None)
    check_can_push(push_to)  # before reading sources or loading a generator
    try:
        items = load_items(args)
    except (FileNotFoundError, ValueError) as err:
        print(f"synth: {err}", file=sys.stderr)
        return 2
    backend = make_backend(args)

    def progress(done: int, total: int) -> None:
        print(f"\r{done}/{total} sources", end="", file=sys.stderr, flush=True)

    report = synthesize(items, backend, args.output, resume=not args.no_resume, batch_size=args.batch_size,
                        progress=progress)
    print(file=sys.stderr)
    print(f"generated {report.generated}, skipped {report.skipped} (already done), failed {report.failed}"
          f" -> {args.output}")
    for err in report.errors[:10]:
        print(f"  failed {err['group_id']}: {err['error']}", file=sys.stderr)
    from ..publishing.dataset_cards import write_synthetic_card

    write_synthetic_card(args.output, license=getattr(args, "license", None))
    if push_to:  # the complete groups only (failed sources are never data); one commit
        from ..publishing.hub import push_synthetic_set

        url = push_synthetic_set(args.output, push_to, private=bool(args.private), revision=args.hub_revision,
                                 license=args.license)
        print(f"pushed: {url}")
    return 1 if report.failed else 0


def main(argv: list[str] | None = None) -> int:
    """Run ``synth`` on its own: ``python -m unifilter_hf.synthesis.cli synth --bundled -o out``."""
    parser = argparse.ArgumentParser(prog="unifilter-hf")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    import runpy

    # The same command through `unifilter-hf` itself, which decides error messages and exit statuses (run by
    # name: unifilter_hf.cli imports this module, so importing it back would make a cycle).
    runpy.run_module("unifilter_hf.cli", run_name="__main__")
