"""GPU check at the released sizes: eager, compiled, bfloat16 vs float32, and the token budget, in one run.

On a machine with a CUDA GPU (one command, about 5-8 minutes, always under 10; nothing is downloaded):

    HF_HUB_OFFLINE=1 python benchmarks/gpu_check.py --json out/gpu_check.json

Without a GPU, the cost table of docs/scaling.md (projected from FLOPs, a bf16 peak and a fraction of it):

    python benchmarks/gpu_check.py --project [--peak-tflops 989] [--fraction 0.4]

Smoke test (the suite runs it): `python benchmarks/gpu_check.py --device cpu --tiny`.

It builds SigLIP so400m-patch14-384 + a Qwen2.5-1.5B-shaped decoder (`--model qwen3-0.6b`: the other released
size) with random weights directly on the device, measures the bf16 matmul peak (8192^3), then times

- `model`: the forward pass alone on inputs already on the device (eager);
- `scorer`: `QualityScorer.score_samples` end to end (host preprocessing included, on its default
  `prepare_workers` threads), eager; `in-line prep` (captions): the same with the host work done in line;
- `compiled`: the same scorer with `compile=True` (its first call, which compiles, is reported apart);
- `fp32`: the eager scorer in float32 (documents), for the bf16 speed-up and the bf16-vs-fp32 score gap;
- `budget`: 8 documents of ~8,000 positions at once and with `max_batch_tokens` (peak GPU memory of each)

on 64 captions and 8 documents (3 images, ~1,000 text tokens) per batch. It prints samples/s, TFLOP/s (model
FLOPs counted from the configs, as in `bench_scoring.py`), the fraction of the measured bf16 matmul peak and
of the device's nominal dense bf16 peak where known, peak memory, and the GPU-hours that DataComp-medium and
OBELICS would take at the measured rates. Each timing stops after `--budget-s` (default 15 s); the run skips
what is left, and says so, past `--deadline-s` (default 540 s).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from bench_scoring import _text, decoder_flops, matmul_peak, sample_flops, vision_flops  # the script's folder

from unifilter_hf.compilation import forward_fn
from unifilter_hf.sample import Sample
from unifilter_hf.scoring import QualityScorer

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
# Nominal dense (no sparsity) bf16 tensor-core peaks in TFLOP/s, from the vendor's data sheets; first match wins.
NOMINAL_BF16_TFLOPS = {"H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0,
                       "L4": 121.0, "A10": 125.0}
# For projections where nothing was measured: the fraction of the nominal bf16 peak a scoring job reaches.
ASSUMED_FRACTION = 0.4
# A typical row of each data set: a DataComp caption (one image, ~20 text tokens: 170 positions) and the mean
# OBELICS document (353M images and 115B text tokens over 141M documents: 2.5 images, ~816 text tokens).
TYPICAL = {"caption": (1.0, 170), "document": (2.5, round(2.5 * 144 + 816 + 4))}
DATASETS = {"DataComp-medium": (128e6, "caption"), "OBELICS": (141e6, "document")}
MICRO_BATCHES_PER_CALL = 4
NODE_GPUS, CLUSTER_GPUS, CLUSTER_EFFICIENCY = 8, 64, 0.9  # one 8-GPU node; a Ray cluster of 8 such nodes


def real_config(image_token_id: int, model: str = "qwen2.5-1.5b"):
    """SigLIP so400m-patch14-384 (the config default, no head) and the released decoder's shape."""
    from transformers import Qwen2Config, Qwen3Config

    from unifilter_hf import UniFilterConfig

    if model == "qwen3-0.6b":
        text = Qwen3Config(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                           num_key_value_heads=8, head_dim=128, vocab_size=151936, max_position_embeddings=40960,
                           tie_word_embeddings=True)
    else:
        text = Qwen2Config(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                           num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768,
                           tie_word_embeddings=True)
    return UniFilterConfig(text_config=text, num_image_tokens=144, image_token_id=image_token_id)


def typical_flops(config, kind: str) -> float:
    """Model FLOPs of a typical row (`TYPICAL`); a document's images at their mean count."""
    images, positions = TYPICAL[kind]
    return images * vision_flops(config) + decoder_flops(config, positions)


def projected_rates(peak_tflops: float = NOMINAL_BF16_TFLOPS["H100"], fraction: float = ASSUMED_FRACTION,
                    model: str = "qwen2.5-1.5b") -> dict[str, float]:
    """Rows/s of one GPU for typical rows, projected: FLOP/s reached (peak x fraction) / FLOPs per row."""
    config = real_config(image_token_id=151665, model=model)
    return {kind: peak_tflops * 1e12 * fraction / typical_flops(config, kind) for kind in TYPICAL}


def cost_table(rows_per_s: dict[str, float]) -> list[dict]:
    """GPU-hours of each data set at `rows_per_s`, and the wall-clock hours on one node and on a Ray cluster."""
    out = []
    for name, (rows, kind) in DATASETS.items():
        gpu_hours = rows / rows_per_s[kind] / 3600
        out.append({"dataset": name, "rows": rows, "kind": kind, "rows_per_s_per_gpu": rows_per_s[kind],
                    "gpu_hours": gpu_hours, "node_hours": gpu_hours / NODE_GPUS,
                    "cluster_hours": gpu_hours / (CLUSTER_GPUS * CLUSTER_EFFICIENCY)})
    return out


def print_cost_table(rows: list[dict], label: str) -> None:
    print(f"cost ({label}); one node = {NODE_GPUS} GPUs, Ray cluster = {CLUSTER_GPUS} GPUs at "
          f"{CLUSTER_EFFICIENCY:.0%} scaling efficiency")
    print(f"{'dataset':<17}{'rows':>7}{'rows/s/GPU':>12}{'GPU-hours':>11}{'node h':>9}{'cluster h':>11}")
    for r in rows:
        print(f"{r['dataset']:<17}{r['rows'] / 1e6:>6.0f}M{r['rows_per_s_per_gpu']:>12.0f}{r['gpu_hours']:>11.0f}"
              f"{r['node_hours']:>9.1f}{r['cluster_hours']:>11.1f}")


def nominal_peak(device_name: str) -> float | None:
    """The nominal dense bf16 peak (FLOP/s) of a known device, else None."""
    for key, tflops in NOMINAL_BF16_TFLOPS.items():
        if key in device_name:
            return tflops * 1e12
    return None


def build(tiny: bool, device: str, dtype: torch.dtype, model_name: str = "qwen2.5-1.5b"):
    """Model (random weights, made on `device` in `dtype`) and processor."""
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    from unifilter_hf import UniFilterForQualityScoring, UniFilterProcessor
    from unifilter_hf.tiny import tiny_config, tiny_processor, tiny_tokenizer

    if tiny:
        processor = tiny_processor()
        config = tiny_config(image_token_id=processor.image_token_id)
    else:
        image_processor = SiglipImageProcessorPil(size={"height": 384, "width": 384})
        processor = UniFilterProcessor(image_processor, tiny_tokenizer(), num_image_tokens=144, max_length=8192)
        config = real_config(processor.image_token_id, model_name)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        torch.manual_seed(0)
        with torch.device(device):  # initialised where it runs: no 7 GB fp32 copy on the host
            model = UniFilterForQualityScoring(config).eval()
    finally:
        torch.set_default_dtype(previous)
    return model, processor


def samples(kind: str, count: int, image_size: int, doc_tokens: int, images: int = 3) -> list[Sample]:
    """Captions, or documents of `images` images and ~`doc_tokens` text tokens, over random-noise photos."""
    from PIL import Image

    rng = random.Random(0)
    gen = torch.Generator().manual_seed(0)
    pictures = [Image.fromarray(torch.randint(0, 256, (image_size, image_size, 3), generator=gen,
                                              dtype=torch.uint8).numpy()) for _ in range(4)]
    if kind == "caption":
        return [Sample.caption(rng.choice(pictures), _text(rng, rng.randint(10, 40))) for _ in range(count)]
    out = []
    for _ in range(count):
        texts: list[str | None] = []
        slots = []
        for k in range(images + 1):
            texts.append(_text(rng, doc_tokens // (images + 1)))
            slots.append(None)
            if k < images:
                texts.append(None)
                slots.append(rng.choice(pictures))
        out.append(Sample.document(texts, slots))
    return out


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn: Callable, device: str, min_runs: int, budget_s: float) -> tuple[float, float]:
    """(seconds of the first call, median seconds of the later ones: at least `min_runs`, until `budget_s`)."""
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    first = time.perf_counter() - start
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < min_runs or (time.perf_counter() < deadline and len(times) < 20):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def _peak_memory(device: str, fn: Callable) -> float | None:
    """GiB of device memory at the peak of `fn()` (CUDA only)."""
    if not str(device).startswith("cuda"):
        fn()
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**30


def print_header() -> None:
    print(f"{'set':<10}{'timing':<14}{'batch':>6}{'samples/s':>11}{'1st call s':>11}{'GF/sample':>11}{'TFLOP/s':>9}"
          f"{'%peak':>7}{'%nominal':>9}{'peak GiB':>9}{'Δscore':>9}", flush=True)


def print_row(r: dict) -> None:
    of_nominal = f"{100 * r['fraction_of_nominal']:.1f}%" if r["fraction_of_nominal"] else "-"
    memory = f"{r['peak_gib']:.2f}" if r["peak_gib"] is not None else "-"
    diff = f"{r['max_score_diff_vs_eager']:.1e}" if "max_score_diff_vs_eager" in r else "-"
    print(f"{r['set']:<10}{r['timing']:<14}{r['batch_size']:>6}{r['samples_per_s']:>11.2f}"
          f"{r['first_call_s']:>11.1f}{r['gflop_per_sample']:>11.2f}{r['tflop_per_s']:>9.3f}"
          f"{100 * r['fraction_of_peak']:>6.1f}%{of_nominal:>9}{memory:>9}{diff:>9}", flush=True)


def save(path: str | None, report: dict) -> None:
    """Write `report` to `path` whole or not at all (a kill mid-write leaves the previous version)."""
    if path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        partial.write_text(json.dumps(report, indent=1))
        partial.replace(target)


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    parser.add_argument("--model", default="qwen2.5-1.5b", choices=["qwen2.5-1.5b", "qwen3-0.6b"])
    parser.add_argument("--tiny", action="store_true", help="the tiny model (smoke test on CPU)")
    parser.add_argument("--caption-batch", type=int, default=None, help="default 64 (tiny: 8)")
    parser.add_argument("--document-batch", type=int, default=None, help="default 8 (tiny: 2)")
    parser.add_argument("--budget-s", type=float, default=None, help="seconds per timing (default 15)")
    parser.add_argument("--deadline-s", type=float, default=540.0, help="skip what is left after this many seconds")
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled rows")
    parser.add_argument("--max-batch-tokens", type=int, default=None, help="the budget rows' budget (default 8192)")
    parser.add_argument("--project", action="store_true", help="print the projected cost table and stop (no GPU)")
    parser.add_argument("--peak-tflops", type=float, default=NOMINAL_BF16_TFLOPS["H100"], help="with --project")
    parser.add_argument("--fraction", type=float, default=ASSUMED_FRACTION, help="with --project")
    parser.add_argument("--json", default="out/gpu_check.json")
    args = parser.parse_args(argv)
    if args.max_batch_tokens is not None and args.max_batch_tokens < 1:
        parser.error(f"--max-batch-tokens must be at least 1, got {args.max_batch_tokens}")
    if args.project:
        rates = projected_rates(args.peak_tflops, args.fraction, args.model)
        table = cost_table(rates)
        print_cost_table(table, f"projected: {args.model}, {args.peak_tflops:.0f} TFLOP/s bf16 x {args.fraction:.0%}")
        return {"projected": True, "rows_per_s": rates, "cost": table}
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here; for a CPU smoke test pass --device cpu --tiny, for the cost "
                         "table --project")
    dtype = DTYPES[args.dtype]
    started = time.perf_counter()
    model, processor = build(args.tiny, args.device, dtype, args.model)
    caption_batch = args.caption_batch or (8 if args.tiny else 64)
    document_batch = args.document_batch or (2 if args.tiny else 8)
    budget = args.budget_s if args.budget_s is not None else (0.3 if args.tiny else 15.0)
    peak = matmul_peak(dtype, n=256 if args.tiny else 8192, repeats=5 if args.tiny else 20, device=args.device)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    nominal = nominal_peak(device_name) if dtype != torch.float32 else None
    image_size = model.config.vision_config.image_size
    sets = {
        "captions": (samples("caption", caption_batch, image_size, 0), caption_batch),
        "documents": (samples("document", document_batch, image_size, 200 if args.tiny else 1000), document_batch),
    }
    long_tokens = 300 if args.tiny else 7500  # ~8,000 positions with 3 images
    long_docs = samples("document", 2 if args.tiny else 8, image_size, long_tokens)
    max_tokens = args.max_batch_tokens if args.max_batch_tokens is not None else (512 if args.tiny else 8192)
    rows, skipped, scores = [], [], {}
    report = {"device": args.device, "device_name": device_name, "dtype": args.dtype, "model": args.model,
              "tiny": args.tiny, "matmul_peak_tflop_per_s": peak / 1e12,
              "nominal_peak_tflop_per_s": nominal / 1e12 if nominal else None, "results": rows,
              "skipped": skipped, "partial": True}
    nominal_text = f", nominal {nominal / 1e12:.0f}" if nominal else ""
    print(f"{device_name} {args.dtype}: matmul peak {peak / 1e12:.2f} TFLOP/s (measured{nominal_text})", flush=True)
    print_header()

    def add(name, how, samples, flops, first_s, seconds, memory=None, reference=None, scores_now=None,
            batch_size=None):
        row = {"set": name, "timing": how, "batch_size": batch_size or samples, "samples_per_call": samples,
               "samples_per_s": samples / seconds, "first_call_s": first_s, "gflop_per_sample": flops / samples / 1e9,
               "tflop_per_s": flops / seconds / 1e12, "fraction_of_peak": flops / seconds / peak,
               # an fp32 run against a bf16 peak says nothing
               "fraction_of_nominal": flops / seconds / nominal if nominal and how != "fp32" else None,
               "peak_gib": memory}
        if reference is not None:
            row["max_score_diff_vs_eager"] = max(abs(a - b) for a, b in zip(scores_now, reference))
        rows.append(row)
        # Saved, then printed, as soon as measured: a run cut short (a session's time limit) keeps its rows.
        save(args.json, report)
        print_row(row)

    def late(what: str) -> bool:
        if time.perf_counter() - started > args.deadline_s:
            skipped.append(what)
            return True
        return False

    def scorer(**options) -> QualityScorer:
        return QualityScorer(model, processor, read_workers=1, **options)

    def measure(name: str, how: str, job: QualityScorer, batch: list[Sample], flops: float,
                reference: list[float] | None = None) -> list[float]:
        """Time `job` on `batch` (its first call apart: compilation), add a row, return its scores."""
        first, seconds = _timed(lambda: job.score_samples(batch), args.device, 2, budget)
        memory = _peak_memory(args.device, lambda: job.score_samples(batch))
        got = [r.score for r in job.score_samples(batch)]
        add(name, how, len(batch), flops, first, seconds, memory, reference, got, batch_size=job.batch_size)
        return got

    eager = forward_fn(model, compile=False)  # the "model" rows: eager even after a compiled scorer's rows
    for name, (batch_samples, batch_size) in sets.items():
        inputs = processor(batch_samples).to(args.device)
        lengths = inputs["attention_mask"].sum(-1).tolist()
        flops = sum(sample_flops(model.config, s.num_images, n) for s, n in zip(batch_samples, lengths))

        def forward(inputs=inputs):
            with torch.inference_mode():
                return eager(**inputs).scores

        if not late(f"{name} model"):
            add(name, "model", batch_size, flops, *_timed(forward, args.device, 3, budget))
            assert torch.isfinite(forward().float()).all(), "non-finite scores"
        # the scorer rows score several micro-batches a call, so that preparing the next ones can overlap
        calls, call_flops = batch_samples * MICRO_BATCHES_PER_CALL, flops * MICRO_BATCHES_PER_CALL
        if not late(f"{name} scorer"):
            scores[name] = measure(name, "scorer", scorer(batch_size=batch_size), calls, call_flops)
        if name == "captions" and not late("captions in-line prep"):  # what prepare_workers' threads buy
            measure(name, "in-line prep", scorer(batch_size=batch_size, prepare_workers=0), calls, call_flops,
                    scores.get(name))
        if not args.no_compile and not late(f"{name} compiled"):
            measure(name, "compiled", scorer(batch_size=batch_size, compile=True), calls, call_flops,
                    scores.get(name))
        if name == "documents" and dtype != torch.float32 and not late("documents fp32"):
            model.float()
            try:
                measure(name, "fp32", scorer(batch_size=batch_size), calls, call_flops, scores.get(name))
            finally:
                model.to(dtype)
    lengths = processor.sequence_lengths(long_docs)
    flops = sum(sample_flops(model.config, s.num_images, n) for s, n in zip(long_docs, lengths))
    for how, options in (("all at once", {}), (f"budget {max_tokens}", {"max_batch_tokens": max_tokens})):
        if late(f"long documents {how}"):
            continue
        measure("long_docs", how, scorer(batch_size=len(long_docs), max_padding=None, **options), long_docs, flops)

    report["long_document_positions"] = lengths
    best = {}
    for kind, name in (("caption", "captions"), ("document", "documents")):
        measured = [r["tflop_per_s"] for r in rows if r["set"] == name and r["timing"] in ("scorer", "compiled")]
        if measured:  # the best measured FLOP/s, applied to the typical row of the data set
            best[kind] = max(measured) * 1e12 / typical_flops(model.config, kind)
    if len(best) == 2 and not args.tiny:
        report["cost"] = cost_table(best)
        print_cost_table(report["cost"], f"measured FLOP/s on {device_name}, typical rows")
    if skipped:
        print(f"skipped past the {args.deadline_s:.0f} s deadline: {', '.join(skipped)}")
    report["seconds"] = time.perf_counter() - started
    report["partial"] = False
    print(f"total {report['seconds']:.0f} s")
    save(args.json, report)
    return report


if __name__ == "__main__":
    main()
