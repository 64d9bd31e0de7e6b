"""Scoring throughput: rows/s and padding overhead by batch size, with and without length bucketing.

Run: `.venv/bin/python benchmarks/scoring_throughput.py [--model PATH_OR_ID] [--rows 64]`
(default: the tiny random model, so it runs offline; pass a real checkpoint for real numbers).
Prints one table row per (batch size, bucketing) setting.
"""

from __future__ import annotations

import argparse
import random
import time

import torch

from unifilter_hf import Sample
from unifilter_hf.scoring import QualityScorer
from unifilter_hf.synthesis.bundled import bundled_photo, bundled_photos


def _rows(n: int, seed: int = 0) -> list[Sample]:
    """Captions and documents of very different lengths over the bundled photographs."""
    rng = random.Random(seed)
    photos = bundled_photos()
    samples = []
    for i in range(n):
        entry = photos[i % len(photos)]
        image = bundled_photo(entry["name"])
        if i % 3:
            samples.append(Sample.caption(image, entry["caption"][: rng.randint(20, len(entry["caption"]))]))
        else:
            k = rng.randint(1, 4)
            texts, images = [], []
            for j in range(k):
                texts += [photos[(i + j) % len(photos)]["caption"], None]
                images += [None, bundled_photo(photos[(i + j) % len(photos)]["name"])]
            samples.append(Sample.document(texts, images))
    return samples


def _padding_fraction(scorer: QualityScorer, samples: list[Sample], bucketed: bool) -> float:
    order = (
        sorted(range(len(samples)), key=lambda i: scorer._estimated_length(samples[i]))
        if bucketed
        else list(range(len(samples)))
    )
    real = padded = 0
    for start in range(0, len(order), scorer.batch_size):
        batch = scorer.processor([samples[i] for i in order[start : start + scorer.batch_size]])
        real += int(batch["attention_mask"].sum())
        padded += batch["attention_mask"].numel()
    return 1 - real / padded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="Hub id or folder; default: tiny random model")
    parser.add_argument("--rows", type=int, default=48)
    args = parser.parse_args()
    if args.model:
        scorer = QualityScorer.from_pretrained(args.model)
    else:
        from unifilter_hf.tiny import tiny_model_and_processor

        scorer = QualityScorer(*tiny_model_and_processor())
    samples = _rows(args.rows)
    scorer.score_samples(samples[:8])  # warm-up: allocator, kernels, lazy imports
    print(f"model: {args.model or 'tiny random'}  device: {scorer.device}  rows: {len(samples)}")
    print(f"{'batch':>5} {'bucketed':>8} {'rows/s':>8} {'padding':>8}")
    for batch_size in (1, 4, 16):
        for bucketed in (False, True):
            scorer.batch_size = batch_size
            start = time.perf_counter()
            if bucketed:
                scorer.score_samples(samples)
            else:  # the same micro-batches in input order
                for i in range(0, len(samples), batch_size):
                    scorer._score_batch(samples[i : i + batch_size])
            elapsed = time.perf_counter() - start
            pad = _padding_fraction(scorer, samples, bucketed)
            print(f"{batch_size:>5} {str(bucketed):>8} {len(samples) / elapsed:>8.1f} {pad:>8.1%}")


if __name__ == "__main__":
    torch.set_num_threads(max(1, torch.get_num_threads()))
    main()
