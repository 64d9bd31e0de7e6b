"""Scoring speed: our scorer against the official scorer's structure, with FLOPs and the matmul peak.

Run: `make bench`, or `.venv/bin/python benchmarks/bench_scoring.py [--sizes tiny bench] [--quick]
[--json out/bench_scoring.json]`. Random-weight models built from configs (offline):

- `tiny`: `unifilter_hf.tiny` (84 px, 16 image tokens), for the smoke test in the suite (`--quick`);
- `bench`: SigLIP 6 layers x 384 (MLP 1536, 6 heads) on 384 px (729 patches, pooled to 144 tokens) and a
  Qwen2 decoder of 6 layers x 512 (8 heads, 2 KV heads, MLP 1536): about 26.5 GFLOP per caption.

Sets: captions; short documents (1-2 images, 100-500 text tokens); long documents (3 images, ~3,000 text
tokens); a mixed OBELICS-style set (1-8 images, 100-3,000 text tokens). Rows hold JPEG bytes, so image
decoding is part of the path. Each set runs through

- `ours`: `unifilter_hf.scoring.QualityScorer.score_rows` (threaded row reading, `batch_plan` micro-batches);
- `official`: the official scorer's structure (rows read one by one, every vision hidden state kept with
  `output_hidden_states=True`, image features spliced per sample in Python, no length sorting, documents at
  batch size 1),

alternating, `--repeats` times (medians reported; the machine may be shared). The table shows samples/s,
tokens/s (real decoder positions), model FLOPs per sample counted from the configs, achieved FLOP/s and its
ratio to the fp32 matmul peak measured right before each run (median of the runs' ratios), padding waste
(padded / real decoder positions - 1), the time split (image decode, preprocessing, vision, decoder), our
speed-up on median times and on best times ("best": the least disturbed run of each, on a shared machine).
The largest score difference between the two paths is checked (fp32: within 1e-5). Results go to `--json`.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from unifilter_hf.compilation import remove_compilation
from unifilter_hf.row_layouts import try_to_sample
from unifilter_hf.sample import Sample
from unifilter_hf.scoring import QualityScorer

SCORE_TOLERANCE = 1e-5
COMPILED_SCORE_TOLERANCE = 1e-4  # compiled kernels fuse and reorder float sums
BENCH_IMAGE_SIZE = 384
SPLIT_KEYS = ("decode", "preprocess", "vision", "llm")


# -- models --------------------------------------------------------------------------------------------------
def bench_config(image_token_id: int, vocab_size: int):
    """The `bench` size: SigLIP 6 x 384 on 384 px (729 patches) and a Qwen2 decoder of 6 x 512."""
    from transformers import Qwen2Config, SiglipVisionConfig

    from unifilter_hf import UniFilterConfig

    vision = SiglipVisionConfig(
        hidden_size=384, intermediate_size=1536, num_hidden_layers=6, num_attention_heads=6,
        image_size=BENCH_IMAGE_SIZE, patch_size=14, vision_use_head=False,
    )
    text = Qwen2Config(
        hidden_size=512, intermediate_size=1536, num_hidden_layers=6, num_attention_heads=8,
        num_key_value_heads=2, vocab_size=vocab_size, max_position_embeddings=8192,
    )
    return UniFilterConfig(vision_config=vision, text_config=text, num_image_tokens=144, image_token_id=image_token_id)


def build(size: str, seed: int = 0):
    """A random-weight model (eval, fp32) and its offline processor for `size` (`tiny` or `bench`)."""
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    from unifilter_hf import UniFilterForQualityScoring, UniFilterProcessor
    from unifilter_hf.tiny import tiny_model_and_processor, tiny_tokenizer

    if size == "tiny":
        return tiny_model_and_processor(seed=seed)
    if size != "bench":
        raise ValueError(f"unknown size {size!r}")
    image_processor = SiglipImageProcessorPil(size={"height": BENCH_IMAGE_SIZE, "width": BENCH_IMAGE_SIZE})
    processor = UniFilterProcessor(image_processor, tiny_tokenizer(), num_image_tokens=144, max_length=8192)
    torch.manual_seed(seed)
    config = bench_config(processor.image_token_id, vocab_size=processor.tokenizer.vocab_size)
    return UniFilterForQualityScoring(config).eval(), processor


# -- FLOPs counted from the configs ---------------------------------------------------------------------------
def vision_flops(config) -> float:
    """Multiply-adds x 2 of one image through the vision layers that run, the pool and the projector."""
    v = config.vision_config
    patches = (v.image_size // v.patch_size) ** 2
    depth = config.vision_feature_layer % (v.num_hidden_layers + 1)
    embed = 2 * patches * v.num_channels * v.patch_size**2 * v.hidden_size
    layer = 2 * patches * (4 * v.hidden_size**2 + 2 * v.hidden_size * v.intermediate_size)
    layer += 2 * 2 * patches**2 * v.hidden_size  # scores and weighted sum, full (bidirectional)
    return embed + depth * layer + projector_flops(config)


def projector_flops(config) -> float:
    """Multiply-adds x 2 of one image's pooled tokens through the projector (Linear, GELU, Linear)."""
    v, t = config.vision_config, config.text_config
    return 2 * config.num_image_tokens * (v.hidden_size * t.hidden_size + t.hidden_size**2)


def decoder_flops(config, length: int) -> float:
    """Multiply-adds x 2 of one sequence of `length` real tokens (causal attention: half the score matrix)."""
    t = config.text_config
    head_dim = getattr(t, "head_dim", None) or t.hidden_size // t.num_attention_heads
    q, kv = t.num_attention_heads * head_dim, t.num_key_value_heads * head_dim
    linear = 2 * length * (t.hidden_size * (q + 2 * kv) + q * t.hidden_size + 3 * t.hidden_size * t.intermediate_size)
    attention = 2 * 2 * q * length * (length + 1) / 2
    return t.num_hidden_layers * (linear + attention) + 2 * t.hidden_size * config.num_labels


def sample_flops(config, num_images: int, length: int) -> float:
    """Model FLOPs of one sample: its images through the vision path plus its sequence through the decoder."""
    return num_images * vision_flops(config) + decoder_flops(config, length)


def matmul_peak(dtype: torch.dtype = torch.float32, n: int = 2048, repeats: int = 7, device: str = "cpu") -> float:
    """Median FLOP/s of an `n x n` matmul: the practical peak this machine gives right now."""
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    times = []
    for i in range(repeats + 1):
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        if i:  # the first one warms up
            times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times)


def _sync(device: str | torch.device) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


# -- rows ----------------------------------------------------------------------------------------------------
def _jpegs(count: int = 8) -> list[bytes]:
    from unifilter_hf.synthesis.bundled import bundled_photo, bundled_photos

    out = []
    for entry in bundled_photos()[:count]:
        buf = io.BytesIO()
        bundled_photo(entry["name"]).convert("RGB").resize((640, 480)).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def _text(rng: random.Random, tokens: int) -> str:
    """About `tokens` tokens of the tiny tokenizer (~1.7 characters a token on these sentences)."""
    from unifilter_hf.tiny import _CORPUS

    words: list[str] = []
    chars = int(tokens * 1.7)
    while sum(len(w) + 1 for w in words) < chars:
        words.extend(rng.choice(_CORPUS[:8]).split())
    return " ".join(words)[:chars]


def _document(rng: random.Random, photos: list[bytes], images: int, tokens: int) -> dict:
    """An OBELICS row: text slots and image slots interleaved, the text split around the images."""
    texts: list[str | None] = []
    slots: list[bytes | None] = []
    per_text = max(1, tokens // (images + 1))
    for k in range(images + 1):
        texts.append(_text(rng, per_text))
        slots.append(None)
        if k < images:
            texts.append(None)
            slots.append(rng.choice(photos))
    return {"texts": texts, "images": slots}


def make_sets(quick: bool, seed: int = 0) -> dict[str, list[dict]]:
    """Caption rows and OBELICS-style documents of the four kinds (smaller with `quick`)."""
    rng = random.Random(seed)
    photos = _jpegs()
    n_captions, n_short, n_long, n_mixed = (8, 4, 2, 6) if quick else (16, 6, 2, 6)
    long_tokens = 400 if quick else 3000
    captions = [{"image": {"bytes": rng.choice(photos), "path": None}, "text": _text(rng, rng.randint(10, 40))}
                for _ in range(n_captions)]
    short = [_document(rng, photos, rng.randint(1, 2), rng.randint(100, 500)) for _ in range(n_short)]
    long = [_document(rng, photos, 3, long_tokens) for _ in range(n_long)]
    mixed = [_document(rng, photos, rng.randint(1, 8), rng.randint(100, 400 if quick else 3000))
             for _ in range(n_mixed)]
    return {"captions": captions, "short_documents": short, "long_documents": long, "mixed_documents": mixed}


# -- timing --------------------------------------------------------------------------------------------------
@dataclass
class Run:
    """What one pass over a set measured."""

    seconds: float = 0.0
    split: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SPLIT_KEYS, 0.0))
    real_positions: int = 0
    padded_positions: int = 0
    peak: float = math.nan  # FLOP/s of the matmul measured right before this run
    scores: list[float] = field(default_factory=list)

    def add(self, key: str, seconds: float) -> None:
        self.split[key] += seconds


def _timed(run: Run, key: str, fn: Callable) -> Callable:
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            run.add(key, time.perf_counter() - start)

    return wrapper


class _TimedProcessor:
    """The scorer's processor, its calls timed (every other attribute passes through)."""

    def __init__(self, processor, run: Run):
        self._processor, self._run = processor, run

    def __getattr__(self, name: str) -> Any:
        return getattr(self._processor, name)

    def __call__(self, *args, **kwargs):
        return _timed(self._run, "preprocess", self._processor)(*args, **kwargs)

    def sequence_lengths(self, *args, **kwargs) -> list[int]:  # the scorer's planning tokenizes too
        return _timed(self._run, "preprocess", self._processor.sequence_lengths)(*args, **kwargs)


def run_ours(model, processor, rows: Sequence[dict], batch_size: int, read_workers: int = 8,
             compile: bool = False) -> Run:
    """Score `rows` with `QualityScorer` as users do, timing decode, preprocessing, vision and the rest.

    `compile=True`: the scorer's compiled path; the model is uncompiled again afterwards, so that the official
    structure, which calls the model's modules itself, runs eagerly.
    """
    run = Run()
    scorer = QualityScorer(model, processor, batch_size=batch_size, read_workers=read_workers, compile=compile)
    scorer.processor = _TimedProcessor(processor, run)
    scorer._read = _timed(run, "decode", scorer._read)
    forward, features = model.forward, model.get_image_features

    def timed_forward(*args, **kwargs):
        mask = kwargs.get("attention_mask")
        if mask is not None:
            run.real_positions += int(mask.sum())
            run.padded_positions += mask.numel()
        start, vision_before = time.perf_counter(), run.split["vision"]
        try:
            return forward(*args, **kwargs)
        finally:  # the decoder's share: the forward pass less its vision part
            run.add("llm", time.perf_counter() - start - (run.split["vision"] - vision_before))

    model.forward, model.get_image_features = timed_forward, _timed(run, "vision", features)
    try:
        start = time.perf_counter()
        records = scorer.score_rows(rows)
        run.seconds = time.perf_counter() - start
    finally:  # drop the instance attributes: the class methods apply again
        del model.forward, model.get_image_features
        if compile:
            remove_compilation(model)
    run.scores = [r.score for r in records]
    return run


@torch.inference_mode()
def run_official(model, processor, rows: Sequence[dict], batch_size: int) -> Run:
    """The official scorer's structure over `rows`, in input order (documents should get `batch_size=1`).

    Rows are read one by one; the vision tower returns every hidden state (`output_hidden_states=True`)
    and the chosen one is projected; each sample's embedding sequence is assembled in Python (text pieces
    embedded, image features concatenated between them), then padded on the right for the decoder.
    """
    run = Run()
    config, embed = model.config, model.get_input_embeddings()
    image_id, per_image = config.image_token_id, config.num_image_tokens
    start_all = time.perf_counter()
    for start in range(0, len(rows), batch_size):
        t0 = time.perf_counter()
        samples: list[Sample] = []
        for row in rows[start : start + batch_size]:
            sample, reason = try_to_sample(row)
            if sample is None:
                raise ValueError(f"benchmark row failed to read: {reason}")
            samples.append(sample)
        t1 = time.perf_counter()
        inputs = processor(samples)
        t2 = time.perf_counter()
        features = None
        if "pixel_values" in inputs:
            states = model.vision_tower(pixel_values=inputs["pixel_values"], output_hidden_states=True).hidden_states
            features = model.projector(states[config.vision_feature_layer])
        t3 = time.perf_counter()
        sequences, image_index = [], 0
        for ids, mask in zip(inputs["input_ids"], inputs["attention_mask"]):
            ids = ids[mask.bool()].tolist()
            pieces, i = [], 0
            while i < len(ids):
                if ids[i] == image_id:
                    pieces.append(features[image_index])
                    image_index, i = image_index + 1, i + per_image
                else:
                    j = ids.index(image_id, i) if image_id in ids[i:] else len(ids)
                    pieces.append(embed(torch.tensor(ids[i:j])))
                    i = j
            sequences.append(torch.cat(pieces))
        width = max(len(s) for s in sequences)
        hidden_size = sequences[0].shape[-1]
        embeds = torch.stack([torch.cat([s, s.new_zeros(width - len(s), hidden_size)]) for s in sequences])
        lengths = torch.tensor([len(s) for s in sequences])
        attention_mask = (torch.arange(width)[None, :] < lengths[:, None]).long()
        hidden = model.language_model(inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False)
        pooled = hidden.last_hidden_state[torch.arange(len(sequences)), lengths - 1]
        run.scores += model.logits_to_scores(model.score(pooled)).tolist()
        t4 = time.perf_counter()
        run.real_positions += int(lengths.sum())
        run.padded_positions += attention_mask.numel()
        for key, seconds in zip(("decode", "preprocess", "vision", "llm"), (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            run.add(key, seconds)
    run.seconds = time.perf_counter() - start_all
    return run


# -- the benchmark -------------------------------------------------------------------------------------------
def _row_shape(processor, row: dict) -> tuple[int, int]:
    """(images, spliced length) of one row, as the processor encodes it."""
    sample, _ = try_to_sample(row)
    batch = processor([sample])
    return sample.num_images, int(batch["attention_mask"].sum())


def bench_set(model, processor, name: str, rows: list[dict], settings: list[tuple[str, int]], repeats: int,
              peak_n: int) -> list[dict]:
    """Time every (path, batch size) setting on one set, alternating, and return one result dict each.

    The matmul peak is measured right before each run: on a shared machine the load changes within
    minutes, and a run's FLOP/s is only comparable with the peak of the same moment.
    """
    shapes = [_row_shape(processor, r) for r in rows]
    flops = sum(sample_flops(model.config, n, length) for n, length in shapes)
    tokens = sum(length for _, length in shapes)
    runs: dict[tuple[str, int], list[Run]] = {s: [] for s in settings}
    for path, batch_size in settings:  # compile every shape once, outside the timed runs
        if path == "compiled":
            start = time.perf_counter()
            run_ours(model, processor, rows, batch_size, compile=True)
            print(f"  {name} compiled bs={batch_size}: first run (compiling) {time.perf_counter() - start:.1f} s",
                  file=sys.stderr, flush=True)
    for _ in range(repeats):
        for path, batch_size in settings:
            peak = matmul_peak(n=peak_n, repeats=3)
            if path == "official":
                run = run_official(model, processor, rows, batch_size)
            else:
                run = run_ours(model, processor, rows, batch_size, compile=path == "compiled")
            runs[(path, batch_size)].append(run)
            runs[(path, batch_size)][-1].peak = peak
            print(f"  {name} {path} bs={batch_size}: {runs[(path, batch_size)][-1].seconds:.1f} s", file=sys.stderr,
                  flush=True)
    official = [runs[s] for s in settings if s[0] == "official"]
    baseline = statistics.median(r.seconds for r in official[0]) if official else None
    baseline_best = min(r.seconds for r in official[0]) if official else None
    reference = next((runs[s][0].scores for s in settings if s[0] == "official"), None)
    results = []
    for (path, batch_size), measured in runs.items():
        seconds = statistics.median(r.seconds for r in measured)
        last = measured[-1]
        split_total = sum(last.split.values()) or 1.0
        diff = max((abs(a - b) for a, b in zip(last.scores, reference)), default=0.0) if reference else None
        results.append({
            "set": name, "path": path, "batch_size": batch_size, "samples": len(rows),
            "seconds": seconds, "seconds_all": [r.seconds for r in measured],
            "seconds_best": min(r.seconds for r in measured), "peaks_all": [r.peak for r in measured],
            "samples_per_s": len(rows) / seconds, "tokens_per_s": tokens / seconds,
            "gflop_per_sample": flops / len(rows) / 1e9, "gflop_per_s": flops / seconds / 1e9,
            "peak_ratio": statistics.median(flops / r.seconds / r.peak for r in measured),
            "padding_waste": last.padded_positions / max(1, last.real_positions) - 1,
            "split": {k: v / split_total for k, v in last.split.items()},
            "speedup": baseline / seconds if baseline else None,
            "speedup_best": baseline_best / min(r.seconds for r in measured) if baseline_best else None,
            "max_score_diff": diff, "skipped": sum(1 for s in last.scores if math.isnan(s)),
        })
    return results


def settings_for(name: str, quick: bool, compiled: bool = False) -> list[tuple[str, int]]:
    """(path, batch size) pairs per set: the official structure, ours, and ours compiled."""
    if name == "captions":
        out = [("official", 8), ("ours", 8)] if quick else [("official", 8), ("ours", 8), ("ours", 16)]
        return out + [("compiled", 8), ("compiled", 16)] * compiled
    return [("official", 1), ("ours", 8)] + [("compiled", 8)] * compiled


def print_table(results: list[dict], peaks: dict) -> None:
    """One line per (size, set, path, batch size)."""
    header = (f"{'size':<6}{'set':<17}{'path':<10}{'bs':>3}{'samp/s':>8}{'tok/s':>8}{'GF/samp':>8}{'GF/s':>7}"
              f"{'%peak':>6}{'pad':>6}{'dec/pre/vis/llm %':>19}{'speedup':>8}{'best':>7}{'Δscore':>9}")
    print(header)
    for r in results:
        split = "/".join(f"{100 * r['split'][k]:.0f}" for k in ("decode", "preprocess", "vision", "llm"))
        speedup = f"{r['speedup']:.2f}x" if r["speedup"] else "-"
        best = f"{r['speedup_best']:.2f}x" if r["speedup_best"] else "-"
        diff = f"{r['max_score_diff']:.1e}" if r["max_score_diff"] is not None else "-"
        print(f"{r['size']:<6}{r['set']:<17}{r['path']:<10}{r['batch_size']:>3}{r['samples_per_s']:>8.2f}"
              f"{r['tokens_per_s']:>8.0f}{r['gflop_per_sample']:>8.2f}{r['gflop_per_s']:>7.1f}"
              f"{100 * r['peak_ratio']:>5.0f}%{100 * r['padding_waste']:>5.1f}%{split:>19}{speedup:>8}{best:>7}"
              f"{diff:>9}")
    for size, p in peaks.items():
        print(f"{size}: fp32 matmul peak {p['gflop_per_s']:.1f} GFLOP/s (before {p['before'] / 1e9:.1f}, "
              f"after {p['after'] / 1e9:.1f}); load average {p['load_before']} -> {p['load_after']}")


def main(argv: Sequence[str] | None = None) -> dict:
    import feed_rate  # the benchmarks folder is the script's folder
    import gpu_check

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "bench"], choices=["tiny", "bench"])
    parser.add_argument("--quick", action="store_true", help="small sets, one repeat (the suite's smoke test)")
    parser.add_argument("--repeats", type=int, default=None, help="alternating runs per setting (default 3, quick 1)")
    parser.add_argument("--sets", nargs="+", default=None, help="only these sets")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="add the compiled path (default: on, off with --quick)")
    parser.add_argument("--json", default="out/bench_scoring.json", help="where to write the results")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    compiled = args.compile if args.compile is not None else not args.quick
    sets = make_sets(args.quick)
    if args.sets:
        sets = {k: v for k, v in sets.items() if k in args.sets}
    results, peaks = [], {}
    started = time.perf_counter()
    for size in args.sizes:
        model, processor = build(size)
        n = 1024 if args.quick or size == "tiny" else 2048
        load_before = [round(x, 1) for x in os.getloadavg()]
        before = matmul_peak(n=n)
        run_ours(model, processor, sets["captions"][:2] if "captions" in sets else [], 2)  # warm-up
        size_results = []
        for name, rows in sets.items():
            size_results += bench_set(model, processor, name, rows, settings_for(name, args.quick, compiled), repeats,
                                      n)
        after = matmul_peak(n=n)
        peak = max(before, after)
        for r in size_results:
            r["size"] = size
        results += size_results
        peaks[size] = {"gflop_per_s": peak / 1e9, "before": before, "after": after, "matmul_n": n,
                       "load_before": load_before, "load_after": [round(x, 1) for x in os.getloadavg()]}
    report = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "torch": torch.__version__, "threads": torch.get_num_threads(), "python": sys.version.split()[0]},
        "quick": args.quick, "repeats": repeats, "seconds": time.perf_counter() - started,
        "peaks": peaks, "results": results, "score_tolerance": SCORE_TOLERANCE,
        "compiled_score_tolerance": COMPILED_SCORE_TOLERANCE,
    }
    print_table(results, peaks)
    feed_rows = 8 if args.quick else feed_rate.CAPTION_ROWS
    feed_processor = feed_rate.released_image_processor()
    report["feed_rate"] = feed_rate.measure(feed_processor, rows=feed_rows)
    report["feed_rate"]["threaded_rows_per_s"] = feed_rate.threaded_rates(
        feed_processor, workers=(0, 2) if args.quick else (0, 1, 2, 4), rows=feed_rows * 2 if args.quick else 64,
        repeats=1 if args.quick else 3)
    report["feed_rate"]["projected_rows_per_s"] = rates = gpu_check.projected_rates()
    report["feed_rate"]["cores_per_gpu"] = feed_rate.cores_per_gpu(report["feed_rate"], rates)
    print("\n".join(feed_rate.report(report["feed_rate"], rates, "projected, gpu_check.py's method")))
    print(f"total {report['seconds']:.0f} s")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
