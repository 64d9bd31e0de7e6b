"""Peak memory of scoring long documents, with and without a token budget per micro-batch.

Run: `.venv/bin/python benchmarks/bench_memory.py [--docs 2 8] [--budget 8192] [--size bench]` (a few minutes
on 2 cores at `bench` size; `--size tiny` for a smoke test).

Each setting runs in a fresh process (peak RSS only grows within a process): build the random-weight model,
make N documents of ~8,000 positions (4 images and ~7,400 text tokens at `bench` size), note the resident
memory, score them all in one call with `batch_size=N` (they are of one length, so length planning alone puts
them in one micro-batch), and report the peak resident set size (`ru_maxrss`) and its rise over the memory
before scoring. With `max_batch_tokens`, no micro-batch holds more positions than the budget, so the rise
should not depend on N.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def one(size: str, docs: int, budget: int | None, positions: int) -> dict:
    """Score `docs` long documents in this process; memory and time."""
    from bench_scoring import _document, _jpegs, build

    from unifilter_hf.row_layouts import try_to_sample
    from unifilter_hf.scoring import QualityScorer, batch_plan

    model, processor = build(size)
    rng = random.Random(0)
    images = 4 if size == "bench" else 2
    text = positions - images * processor.num_image_tokens
    samples = [try_to_sample(_document(rng, _jpegs(), images, text))[0] for _ in range(docs)]
    lengths = processor.sequence_lengths(samples)
    scorer = QualityScorer(model, processor, batch_size=docs, read_workers=1, max_batch_tokens=budget)
    before = _rss_mib()
    start = time.perf_counter()
    records = scorer.score_samples(samples)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    assert all(r.ok for r in records), [r.error for r in records]
    return {"docs": docs, "budget": budget, "positions": lengths, "rss_before_mib": before, "peak_rss_mib": peak,
            "rise_mib": peak - before, "seconds": seconds,
            "micro_batches": len(batch_plan(lengths, docs, scorer.max_padding, budget))}


def main(argv: Sequence[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="bench", choices=["tiny", "bench"])
    parser.add_argument("--docs", type=int, nargs="+", default=[2, 8])
    parser.add_argument("--budget", type=int, default=None, help="default 8192 (tiny: 512)")
    parser.add_argument("--positions", type=int, default=None, help="per document (default ~8,000; tiny: 400)")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # the child process
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    budget = args.budget if args.budget is not None else (8192 if args.size == "bench" else 512)
    positions = args.positions or (8000 if args.size == "bench" else 400)
    if args.one:
        print(json.dumps(one(args.size, args.docs[0], budget if budget > 0 else None, positions)))
        return []
    results = []
    for docs in args.docs:
        for setting in (0, budget):  # 0: no budget
            command = [sys.executable, str(HERE / "bench_memory.py"), "--one", "--size", args.size, "--docs",
                       str(docs), "--budget", str(setting), "--positions", str(positions)]
            out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=HERE)
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"  {docs} docs, budget {setting or 'none'}: {results[-1]['seconds']:.1f} s", file=sys.stderr,
                  flush=True)
    print(f"{'docs':>5}{'positions':>10}{'budget':>8}{'batches':>8}{'RSS before MiB':>16}{'peak RSS MiB':>14}"
          f"{'rise MiB':>10}{'seconds':>9}")
    for r in results:
        print(f"{r['docs']:>5}{max(r['positions']):>10}{r['budget'] or '-':>8}{r['micro_batches']:>8}"
              f"{r['rss_before_mib']:>16.0f}"
              f"{r['peak_rss_mib']:>14.0f}{r['rise_mib']:>10.0f}{r['seconds']:>9.1f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
