"""GPU check at the real sizes: SigLIP so400m + Qwen2.5-1.5B (random weights, bf16), one prepared run.

Run on a machine with a CUDA GPU (a few minutes, well under 5; nothing is downloaded):

    HF_HUB_OFFLINE=1 python benchmarks/gpu_check.py --json out/gpu_check.json

Smoke test (the suite runs it): `python benchmarks/gpu_check.py --device cpu --tiny`.

It builds the model from configs with random weights directly on the device in bf16, measures the bf16
matmul peak, then scores prepared batches of captions and of documents (3 images, ~1,000 text tokens) and
prints captions/s, documents/s, achieved FLOP/s (model FLOPs counted from the configs, as in
`bench_scoring.py`) and the fraction of the FLOP bound (the matmul peak) reached. "model" rows time the
forward pass on inputs already on the device; "scorer" rows time `QualityScorer.score_samples` end to end
(preprocessing on the host included).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from bench_scoring import _text, matmul_peak, sample_flops  # the benchmarks folder is the script's folder

from unifilter_hf.sample import Sample
from unifilter_hf.scoring import QualityScorer

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def real_config(image_token_id: int):
    """SigLIP so400m-patch14-384 (the config default, no head) with the Qwen2.5-1.5B decoder's shape."""
    from transformers import Qwen2Config

    from unifilter_hf import UniFilterConfig

    text = Qwen2Config(
        hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
        num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768, tie_word_embeddings=True,
    )
    return UniFilterConfig(text_config=text, num_image_tokens=144, image_token_id=image_token_id)


def build(tiny: bool, device: str, dtype: torch.dtype):
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
        config = real_config(processor.image_token_id)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        torch.manual_seed(0)
        with torch.device(device):  # initialised where it runs: no 7 GB fp32 copy on the host
            model = UniFilterForQualityScoring(config).eval()
    finally:
        torch.set_default_dtype(previous)
    return model, processor


def samples(kind: str, count: int, image_size: int, doc_tokens: int) -> list[Sample]:
    """Captions, or documents of 3 images and ~`doc_tokens` text tokens, over random-noise photos."""
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
        images = []
        for k in range(4):
            texts.append(_text(rng, doc_tokens // 4))
            images.append(None)
            if k < 3:
                texts.append(None)
                images.append(rng.choice(pictures))
        out.append(Sample.document(texts, images))
    return out


def _timed(fn, device: str, min_runs: int, budget_s: float) -> float:
    """Median seconds of `fn()` after one warm-up call, at least `min_runs` runs or until `budget_s`."""
    fn()
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < min_runs or (time.perf_counter() < deadline and len(times) < 20):
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    parser.add_argument("--tiny", action="store_true", help="the tiny model (smoke test on CPU)")
    parser.add_argument("--caption-batch", type=int, default=None, help="default 64 (tiny: 8)")
    parser.add_argument("--document-batch", type=int, default=None, help="default 8 (tiny: 2)")
    parser.add_argument("--budget-s", type=float, default=None, help="seconds per measurement (default 20)")
    parser.add_argument("--json", default="out/gpu_check.json")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here; for a CPU smoke test pass --device cpu --tiny")
    dtype = DTYPES[args.dtype]
    started = time.perf_counter()
    model, processor = build(args.tiny, args.device, dtype)
    caption_batch = args.caption_batch or (8 if args.tiny else 64)
    document_batch = args.document_batch or (2 if args.tiny else 8)
    budget = args.budget_s if args.budget_s is not None else (0.5 if args.tiny else 20.0)
    peak = matmul_peak(dtype, n=256 if args.tiny else 8192, repeats=5 if args.tiny else 20, device=args.device)
    image_size = model.config.vision_config.image_size
    sets = {
        "captions": (samples("caption", caption_batch, image_size, 0), caption_batch),
        "documents": (samples("document", document_batch, image_size, 200 if args.tiny else 1000), document_batch),
    }
    scorer = QualityScorer(model, processor, batch_size=max(caption_batch, document_batch), read_workers=1)
    rows = []
    for name, (batch_samples, batch_size) in sets.items():
        inputs = processor(batch_samples).to(args.device)
        lengths = inputs["attention_mask"].sum(-1).tolist()
        flops = sum(sample_flops(model.config, s.num_images, n) for s, n in zip(batch_samples, lengths))

        def forward(inputs=inputs):
            with torch.inference_mode():
                return model(**inputs).scores

        scorer.batch_size = batch_size
        model_s = _timed(forward, args.device, 3, budget)
        scorer_s = _timed(lambda s=batch_samples: scorer.score_samples(s), args.device, 2, budget)
        assert torch.isfinite(forward().float()).all(), "non-finite scores"
        for how, seconds in (("model", model_s), ("scorer", scorer_s)):
            rows.append({"set": name, "timing": how, "batch_size": batch_size, "samples_per_s": batch_size / seconds,
                         "gflop_per_sample": flops / batch_size / 1e9, "tflop_per_s": flops / seconds / 1e12,
                         "fraction_of_peak": flops / seconds / peak})
    report = {"device": args.device, "device_name": torch.cuda.get_device_name() if args.device.startswith("cuda")
              else "cpu", "dtype": args.dtype, "tiny": args.tiny, "matmul_peak_tflop_per_s": peak / 1e12,
              "results": rows, "seconds": time.perf_counter() - started}
    print(f"{report['device_name']} {args.dtype}: matmul peak {peak / 1e12:.2f} TFLOP/s")
    print(f"{'set':<10}{'timing':<8}{'batch':>6}{'samples/s':>11}{'GF/sample':>11}{'TFLOP/s':>9}{'of peak':>9}")
    for r in rows:
        print(f"{r['set']:<10}{r['timing']:<8}{r['batch_size']:>6}{r['samples_per_s']:>11.2f}"
              f"{r['gflop_per_sample']:>11.2f}{r['tflop_per_s']:>9.3f}{100 * r['fraction_of_peak']:>8.1f}%")
    print(f"total {report['seconds']:.0f} s")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
