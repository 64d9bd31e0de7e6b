"""Curation throughput with and without image-decoding worker processes, on an image-heavy fixture.

Run: `.venv/bin/python benchmarks/bench_curation_decoding.py [--model PATH_OR_ID] [--rows 96] [--workers 0 1 2]`
(default: the tiny random model, so it runs offline; its forward pass is cheap, so decoding dominates as it
does for a real model on a GPU). Writes Parquet shards of full-size JPEG photos (and 3-image documents) to
a temporary folder, runs the same job for each worker count, alternating, `--repeats` times (the machine's
load varies), prints one table row per run and the median rows/s per worker count.

Measured (tiny model, 192 rows of 1024x768 JPEGs, half captions, half 3-image documents, window 16, batch 8;
a shared 2-core VM at load average 6-11, so single runs vary by 2x):

    median rows/s: 0 workers 9.78, 2 workers 11.04      (--repeats 3)
    one run each:  0 workers 10.27 / 11.90, 2 workers 12.01 / 8.56; earlier 0: 12.22 / 10.15, 1: 15.77 / 13.13

Workers win because they also resize to the model's input size (exactly as the processor, see
engine_local.shrink_spec): shipping full decoded photos back to the main process cost more than decoding.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def _fixture(folder: Path, rows: int) -> None:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from unifilter_hf.synthesis.bundled import bundled_photo, bundled_photos

    photos = []
    for entry in bundled_photos()[:8]:
        img = bundled_photo(entry["name"])
        buf = io.BytesIO()
        img.convert("RGB").resize((1024, 768)).save(buf, "JPEG", quality=92)
        photos.append(buf.getvalue())
    per_shard = rows // 4
    for s in range(4):
        if s % 2 == 0:
            table = [{"uid": f"c{s}-{i}", "image": {"bytes": photos[(s + i) % len(photos)], "path": None},
                      "text": "A photograph with a short caption."} for i in range(per_shard)]
        else:
            table = [{"uid": f"d{s}-{i}", "texts": ["Intro.", None, "Middle.", None, None],
                      "images": [None, photos[i % len(photos)], None, photos[(i + 1) % len(photos)],
                                 photos[(i + 2) % len(photos)]]} for i in range(per_shard)]
        pq.write_table(pa.Table.from_pylist(table), folder / f"part-{s}.parquet")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="default: a tiny random model saved to a temp folder")
    parser.add_argument("--rows", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--window", type=int, default=16, help="rows per window (several windows per shard)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs per setting; medians printed")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()

    from unifilter_hf.curation import CurateConfig, curate, load_summary

    tmp = Path(tempfile.mkdtemp(prefix="bench-curation-"))
    model = args.model
    if model is None:
        from unifilter_hf.tiny import tiny_model_and_processor

        m, p = tiny_model_and_processor()
        model = str(tmp / "model")
        m.save_pretrained(model)
        p.save_pretrained(model)
    (tmp / "src").mkdir()
    _fixture(tmp / "src", args.rows)

    print(f"{'workers':>8} {'rows':>6} {'seconds':>9} {'rows/s':>8} {'peak rows held':>15}")
    rates: dict[int, list[float]] = {w: [] for w in args.workers}
    for run, workers in enumerate(args.workers * args.repeats):
        start = time.perf_counter()
        config = CurateConfig(source=str(tmp / "src"), output=str(tmp / f"out-{run}-{workers}"), model=model,
                              batch_size=args.batch_size, window=args.window, workers=workers, threshold=0.0,
                              quiet=True)
        summary = load_summary(curate(config))
        seconds = time.perf_counter() - start
        t = summary["throughput"]
        rates[workers].append(t["rows_scored_this_run"] / seconds)
        print(f"{workers:>8} {t['rows_scored_this_run']:>6} {seconds:>9.2f} "
              f"{rates[workers][-1]:>8.2f} {t['peak_rows_in_flight']:>15}")
    print("\nmedian rows/s: " + ", ".join(f"{w} workers {statistics.median(r):.2f}" for w, r in rates.items()))


if __name__ == "__main__":
    main()
