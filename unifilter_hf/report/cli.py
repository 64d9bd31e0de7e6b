"""``unifilter-hf report RUN_DIR``: (re)write the HTML report of a curation run (argument wiring only).

Example:
    $ unifilter-hf report out/curated --examples 4
"""

from __future__ import annotations

import argparse
import sys


def register(sub) -> None:
    """Add the ``report`` subcommand to the ``unifilter-hf`` parser."""
    p = sub.add_parser("report", help="write RUN_DIR/report/report.html for a finished curation run")
    p.add_argument("run_dir", help="the --output folder of a `unifilter-hf curate` run")
    p.add_argument("--examples", type=int, default=3, help="example rows per kind and score band (default 3)")
    p.add_argument("--explain-bands", default="0,1",
                   help="score bands whose example documents get attribution (default 0,1; '' for none)")
    p.add_argument("--no-attribution", action="store_true", help="do not load the model (no attribution)")
    p.add_argument("--device", help="device for attribution (default: CUDA if available)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .page import write_report

    try:
        bands = tuple(int(b) for b in args.explain_bands.split(",") if b.strip())
        if not set(bands) <= {0, 1, 2, 3}:
            raise ValueError
    except ValueError:
        print(f"unifilter-hf report: error: --explain-bands takes bands 0..3 like 0,1, got {args.explain_bands!r}",
              file=sys.stderr)
        return 2
    # A ReportError (not a finished run) is a UniFilterError: unifilter_hf.cli.main prints it and exits 2.
    path = write_report(args.run_dir, examples_per_band=args.examples, explain_bands=bands,
                        attribution=not args.no_attribution, device=args.device)
    print(f"wrote {path}")
    return 0
