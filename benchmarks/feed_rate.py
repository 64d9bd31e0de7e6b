"""Host-side feed rate: how many CPU cores decoding and preprocessing need to keep one GPU busy.

Run: `.venv/bin/python benchmarks/feed_rate.py` (a few seconds; `bench_scoring.py` runs it too).

Rows are real photographs (scikit-image / scikit-learn, through `unifilter_hf.synthesis.bundled`) resized to
about 500 px on the long side and JPEG-encoded in memory, the size of a typical web image. Per row, on one
thread, it times the scorer's two host steps: reading the row (`try_to_sample`: JPEG decode to RGB) and the
processor (tokenization, 384 px bicubic resize, rescale, normalize). The processor's image step is the same
at every model size (SigLIP 384 px); tokenization uses the tiny offline tokenizer here, so the text part of a
document is a lower bound for Qwen's tokenizer. Cores per GPU = the GPU's projected rows/s (`gpu_check.py`'s
method: model FLOPs / (bf16 peak x fraction reached)) x host seconds per row.

It also times the scorer's preparation of micro-batches on 0, 1, 2, ... threads
(`unifilter_hf.host_threads.prepared_ahead`, what `prepare_workers` runs), the rows/s the host feeds one GPU.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import time
from collections.abc import Sequence

WEB_SIDE = 500  # px on the long side: a typical web photo
CAPTION_ROWS = 24
IMAGES_PER_DOCUMENT = 2.5  # OBELICS: 353M images in 141M documents


def web_jpegs(long_side: int = WEB_SIDE, quality: int = 85) -> list[bytes]:
    """Every bundled RGB photograph, resized to `long_side` px (aspect kept) and encoded as JPEG bytes."""
    from PIL import Image

    from unifilter_hf.synthesis.bundled import bundled_photo, bundled_photos

    out = []
    for entry in bundled_photos():
        image = bundled_photo(entry["name"])
        scale = long_side / max(image.size)
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=quality)
        out.append(buf.getvalue())
    return out


def released_image_processor():
    """A processor with the released models' image step (SigLIP, 384 px) and the offline tiny tokenizer."""
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    from unifilter_hf import UniFilterProcessor
    from unifilter_hf.tiny import tiny_tokenizer

    return UniFilterProcessor(SiglipImageProcessorPil(size={"height": 384, "width": 384}), tiny_tokenizer(),
                              num_image_tokens=144, max_length=8192)


def web_caption_rows(jpegs: Sequence[bytes], rows: int, seed: int = 0) -> list[dict]:
    """`rows` caption rows over `jpegs` in turn, each with a 12-word caption; sets the tokenizer to run without
    a thread pool per call, as `make` does."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    rng = random.Random(seed)
    return [{"image": {"bytes": jpegs[i % len(jpegs)], "path": None},
             "text": "A photograph of " + " ".join(rng.choice(["a", "red", "cat", "on", "the", "old", "table"])
                                                   for _ in range(12))}
            for i in range(rows)]


def measure(processor, rows: int = CAPTION_ROWS, repeats: int = 3, seed: int = 0) -> dict:
    """Median milliseconds per caption row for decoding and for preprocessing, on one thread."""
    from unifilter_hf.row_layouts import try_to_sample

    jpegs = web_jpegs()
    caption_rows = web_caption_rows(jpegs, rows, seed)
    decode, preprocess = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        samples = [try_to_sample(row)[0] for row in caption_rows]
        decode.append((time.perf_counter() - start) / rows)
        start = time.perf_counter()
        for sample in samples:  # one row at a time: the cost of a row, not of a batch's shared overhead
            processor([sample])
        preprocess.append((time.perf_counter() - start) / rows)
    sizes = sorted(len(j) for j in jpegs)
    return {"rows": rows, "photos": len(jpegs), "long_side_px": WEB_SIDE,
            "jpeg_kb_median": sizes[len(sizes) // 2] / 1e3,
            "decode_ms": 1e3 * statistics.median(decode), "preprocess_ms": 1e3 * statistics.median(preprocess)}


def threaded_rates(processor, workers: Sequence[int] = (0, 1, 2, 4), rows: int = 64, batch_size: int = 8,
                   repeats: int = 3) -> dict[int, float]:
    """Caption rows/s of the processor step with `prepared_ahead` on each number of threads (0: in line)."""
    from unifilter_hf.host_threads import prepared_ahead
    from unifilter_hf.row_layouts import try_to_sample

    samples = [try_to_sample(row)[0] for row in web_caption_rows(web_jpegs(), rows)]
    batches = [samples[i:i + batch_size] for i in range(0, rows, batch_size)]
    processor(batches[0])  # the tokenizer's settings fixed on this thread, as the scorer's planning does
    out = {}
    for count in workers:
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            for prepared in prepared_ahead(batches, processor, count):
                if isinstance(prepared, Exception):
                    raise prepared
            best = min(best, time.perf_counter() - start)
        out[count] = rows / best
    return out


def cores_per_gpu(feed: dict, rows_per_s: dict[str, float]) -> dict[str, float]:
    """Host cores one GPU needs: its rows/s x host seconds per row (documents: `IMAGES_PER_DOCUMENT` images)."""
    per_caption = (feed["decode_ms"] + feed["preprocess_ms"]) / 1e3
    out = {}
    for kind, rate in rows_per_s.items():
        out[kind] = rate * per_caption * (IMAGES_PER_DOCUMENT if kind == "document" else 1.0)
    return out


def report(feed: dict, rows_per_s: dict[str, float], label: str) -> list[str]:
    """Printable lines: the measured host cost and the cores per GPU it implies."""
    cores = cores_per_gpu(feed, rows_per_s)
    lines = [f"host feed (measured, 1 thread, {feed['photos']} photos ~{feed['long_side_px']} px JPEG, "
             f"median {feed['jpeg_kb_median']:.0f} kB): decode {feed['decode_ms']:.1f} ms + preprocess "
             f"{feed['preprocess_ms']:.1f} ms per caption row"]
    for kind, rate in rows_per_s.items():
        lines.append(f"  {kind}: {rate:.0f} rows/s per GPU ({label}) -> {cores[kind]:.1f} host cores per GPU")
    if feed.get("threaded_rows_per_s"):
        rates = ", ".join(f"{count or 'in line'}: {rate:.0f}" for count, rate in feed["threaded_rows_per_s"].items())
        lines.append(f"  caption rows/s prepared on prepare_workers threads (measured, {os.cpu_count()} cores): "
                     f"{rates}")
    return lines


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=CAPTION_ROWS)
    args = parser.parse_args(argv)
    from gpu_check import projected_rates  # the benchmarks folder is the script's folder

    processor = released_image_processor()
    feed = measure(processor, rows=args.rows)
    feed["threaded_rows_per_s"] = threaded_rates(processor)
    rates = projected_rates()
    for line in report(feed, rates, "projected, gpu_check.py's method"):
        print(line)
    return {"feed": feed, "projected_rows_per_s": rates, "cores_per_gpu": cores_per_gpu(feed, rates)}


if __name__ == "__main__":
    main()
