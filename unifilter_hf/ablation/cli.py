"""``unifilter-hf ablate POOL RUN_DIR``: the downstream ablation of a curated pool (argument wiring only).

Example:
    $ unifilter-hf ablate out/demo/pool out/demo/curation --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json


def register(sub) -> None:
    """Add the ``ablate`` subcommand to the ``unifilter-hf`` parser."""
    p = sub.add_parser("ablate", help="train a small CLIP on what UniFilter / random / CLIP-score / oracle keep "
                                      "and compare retrieval (docs/ablation.md)")
    p.add_argument("pool", help="the pool folder (pool.parquet, the demo's layout) or the file")
    p.add_argument("run_dir", help="the `unifilter-hf curate` run that scored the pool (its scores/ sidecars)")
    p.add_argument("--output", help="where ablation.json goes (default: RUN_DIR, where the report finds it)")
    p.add_argument("--budget", type=int,
                   help="rows per training set (default: --top-fraction of the captions, at most the distinct images)")
    p.add_argument("--top-fraction", type=float, default=0.25, help="budget as a share of the caption rows")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--steps", type=int, default=300, help="training steps per model (default 300)")
    p.add_argument("--eval-pairs", type=int, default=250, help="held-out clean pairs (default 250)")
    p.add_argument("--eval-seed", type=int, default=1000,
                   help="shapes-world generator seed of the held-out pairs (scenes in the pool are skipped)")
    p.add_argument("--all-captions", action="store_true",
                   help="let a set take several captions of one image (default: each filter's best one per image)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .clip_model import ClipRecipe
    from .run import ABLATION_FILE, AblationError, AblationSettings, ablate, format_table

    try:
        seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
    except ValueError as err:
        raise AblationError(f"--seeds takes integers like 0,1,2, got {args.seeds!r}") from err
    settings = AblationSettings(budget=args.budget, top_fraction=args.top_fraction, seeds=seeds,
                                eval_pairs=args.eval_pairs, eval_seed=args.eval_seed,
                                recipe=ClipRecipe(steps=args.steps), per_image=not args.all_captions)
    out = ablate(args.pool, args.run_dir, args.output, settings=settings, echo=print)
    print(format_table(json.loads((out / ABLATION_FILE).read_text())))
    print(f"wrote {out / ABLATION_FILE}")
    return 0
