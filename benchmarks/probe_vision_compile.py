"""How much compiling buys the bench-size vision tower alone, by how it is compiled.

Run: `.venv/bin/python benchmarks/probe_vision_compile.py [--images 8] [--repeats 5] [--size bench|tiny]` (about
1 minute on 2 cores; `tiny` is the suite's smoke test). The SigLIP tower of `bench_scoring.py`'s `bench` size
(6 x 384 on 384 px, 729 patches) runs its encoder layers on random pixels, as the scorer does
(`get_image_features` without the projector), in five modes: `eager`; `regional`, what `--compile` does
(`compile_for_scoring`: each layer compiled, dynamic shapes, one graph reused by all layers); `whole`, the layer
stack as one compiled function with static shapes, and `whole-dyn` with dynamic shapes; `frozen`, `whole` with
inductor freezing (weights as constants, linear + bias + GELU fused). Prints one row per mode: first call
(compile) seconds, best and median of the repeats, GFLOP/s, speed-up over eager and the largest difference
from eager's output.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from bench_scoring import build, matmul_peak, projector_flops, vision_flops

from unifilter_hf.compilation import compile_for_scoring, remove_compilation


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", choices=("bench", "tiny"), default="bench")
    args = parser.parse_args(argv)

    model, _ = build(args.size)
    tower, config = model.vision_tower, model.config
    gflop = args.images * (vision_flops(config) - projector_flops(config)) / 1e9

    def layers(pixels: torch.Tensor) -> torch.Tensor:
        hidden = tower.embeddings(pixels)
        for layer in tower.encoder.layers:
            hidden = layer(hidden, None)
        return hidden

    torch.manual_seed(0)
    side = config.vision_config.image_size
    pixels = torch.randn(args.images, 3, side, side)
    print(f"fp32 matmul peak now: {matmul_peak() / 1e9:.0f} GFLOP/s; {gflop:.1f} GFLOP per call "
          f"({args.images} images); torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'mode':<9} {'first s':>8} {'best s':>7} {'median s':>9} {'GFLOP/s':>8} {'speed-up':>9} {'max |diff|':>11}")
    eager_best = None
    with torch.no_grad():
        reference = layers(pixels)
        for mode in ("eager", "regional", "whole", "whole-dyn", "frozen"):
            torch._dynamo.reset()
            remove_compilation(model)
            torch._inductor.config.freezing = mode == "frozen"
            fn = layers
            if mode == "regional":
                compile_for_scoring(model)
            elif mode != "eager":
                fn = torch.compile(layers, dynamic=mode == "whole-dyn")
            start = time.perf_counter()
            out = fn(pixels)
            first = time.perf_counter() - start
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                fn(pixels)
                times.append(time.perf_counter() - start)
            best = min(times)
            eager_best = eager_best or best
            print(f"{mode:<9} {first:>8.2f} {best:>7.3f} {statistics.median(times):>9.3f} {gflop / best:>8.1f} "
                  f"{eager_best / best:>8.2f}x {(out - reference).abs().max().item():>11.1e}")


if __name__ == "__main__":
    main()
