"""Peak memory of a curation job's selection and output steps, by source size: bounded, or per row?

Run: `.venv/bin/python benchmarks/bench_job_memory.py [--rows 100000 1000000] [--shards 1 10]`

For each (rows, shards) a Parquet source of caption rows is written (a uid, a caption and one small PNG each)
with score sidecars shaped as the engine writes them (`sidecar_table` over real `ScoreRecord`s: scores on a
0.001 grid so ties exist, four-level probabilities, 2% error rows). Scoring is the model's work and is
measured by `bench_scoring.py`; here the sidecars exist, so `curate` (a tiny model, `--top-fraction 0.035`,
the OBELICS recipe's) runs what comes after scoring: read the sidecars, the global cut, the curated and
rejected files of every shard, the summary. Each size runs in a fresh process that resets its peak RSS
(`/proc/self/clear_refs`) right before `curate` and prints the growth of the peak over the RSS at that moment.

Measured on the 2-core CI machine (2026-12-05, load ~1), `--top-fraction 0.035`:

    rows        shards  seconds  peak growth MiB  bytes a row    kept
    200,000          1      1.5              129          677   6,861
    200,000         10      2.0              101          532   6,863
    1,000,000        1      7.0              218          228  34,299
    1,000,000       10      7.2              142          148  34,299
    3,000,000        1     21.8              446          156 102,898
    3,000,000       10     20.7              207           72 102,893

Before the sidecars were streamed (a Python dict per sidecar row and per rejected row, every shard's selection
columns held at once): 200,000 rows 267 / 77 MiB (1 / 10 shards), 1,000,000 rows 1,175 / 207 MiB.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOP_FRACTION = 0.035


def _png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 40, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_source(source: Path, rows: int, shards: int) -> None:
    """A folder of `shards` Parquet files of caption rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    png = _png()
    source.mkdir()
    per = rows // shards
    for s in range(shards):
        image = pa.array([{"bytes": png, "path": None}] * per,
                         pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
        pq.write_table(pa.table({"uid": [f"{s}-{i:09d}" for i in range(per)],
                                 "text": [f"a red square, photo {i}" for i in range(per)], "image": image}),
                       source / f"part-{s:05d}.parquet")


def _write_sidecars(job: Path, rows: int, shards: int) -> None:
    """The sidecars a finished scoring run of `_write_source`'s rows leaves."""
    import numpy as np

    from unifilter_hf.curation.manifest import Layout
    from unifilter_hf.curation.sidecars import sidecar_table, write_sidecar
    from unifilter_hf.scoring import ScoreRecord

    rng = np.random.default_rng(0)
    layout = Layout(job)
    per = rows // shards
    for s in range(shards):
        name = f"part-{s:05d}"
        scores = np.round(rng.normal(1.5, 0.8, per), 3)
        failed = rng.random(per) < 0.02
        records = [ScoreRecord(score=float("nan"), error="image: truncated file") if bad else
                   ScoreRecord(score=float(x), level=int(min(3, max(0, round(x)))), probs=[0.25] * 4)
                   for x, bad in zip(scores, failed)]
        uids = [f"{s}-{i:09d}" for i in range(per)]
        write_sidecar(layout.sidecar(name), sidecar_table(name, range(per), uids, ["caption"] * per, records))


def _rss_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _config_and_scorer(root: Path):
    from unifilter_hf.curation import CurateConfig
    from unifilter_hf.scoring import QualityScorer
    from unifilter_hf.tiny import tiny_model_and_processor

    model, processor = tiny_model_and_processor()  # seeded: the same fingerprint in both processes
    config = CurateConfig(source=str(root / "source"), output=str(root / "job"), top_fraction=TOP_FRACTION,
                          quiet=True)
    return config, QualityScorer(model, processor, device="cpu")


def _prepare(rows: int, shards: int, root: Path) -> None:
    """In a child process: the source, the job's manifest and the sidecars."""
    from unifilter_hf.curation import CurationError, curate

    _write_source(root / "source", rows, shards)
    config, scorer = _config_and_scorer(root)
    config.select_only = True
    try:  # writes the job's manifest, then stops: nothing is scored yet
        curate(config, scorer=scorer)
    except CurationError:
        pass
    _write_sidecars(root / "job", rows, shards)


def _measure(rows: int, shards: int, root: Path) -> dict:
    """In a fresh child process (no freed memory of the preparation to reuse): time `curate` and its peak."""
    import gc

    from unifilter_hf.curation import curate, load_summary

    config, scorer = _config_and_scorer(root)
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    base = _rss_mib("VmRSS")
    start = time.perf_counter()
    summary = load_summary(curate(config, scorer=scorer))
    seconds = time.perf_counter() - start
    growth = _rss_mib("VmHWM") - base
    if summary["total"]["in"] != rows or summary["throughput"]["rows_scored_this_run"]:
        raise RuntimeError(f"the job did not run on the written sidecars: {summary['total']}")
    return {"rows": rows, "shards": shards, "seconds": seconds, "peak_growth_mib": growth,
            "kept": summary["total"]["kept"]}


def _child(step: str, rows: int, shards: int, root: Path) -> str:
    return subprocess.run([sys.executable, __file__, f"--{step}", str(rows), str(shards), str(root)],
                          capture_output=True, text=True, check=True).stdout


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--prepare", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--json", help="write the rows here as JSON")
    args = parser.parse_args(argv)
    if args.prepare or args.measure:
        rows, shards, root = args.prepare or args.measure
        if args.prepare:
            _prepare(int(rows), int(shards), Path(root))
        else:
            print(json.dumps(_measure(int(rows), int(shards), Path(root))))
        return
    results = []
    print(f"{'rows':<11}{'shards':>7}{'seconds':>9}{'peak growth MiB':>17}{'bytes a row':>13}{'kept':>8}")
    for rows in args.rows:
        for shards in args.shards:
            with tempfile.TemporaryDirectory() as tmp:
                _child("prepare", rows, shards, Path(tmp))
                r = json.loads(_child("measure", rows, shards, Path(tmp)).strip().splitlines()[-1])
            results.append(r)
            print(f"{rows:<11,}{shards:>7}{r['seconds']:>9.1f}{r['peak_growth_mib']:>17.0f}"
                  f"{r['peak_growth_mib'] * 2**20 / rows:>13.0f}{r['kept']:>8,}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
