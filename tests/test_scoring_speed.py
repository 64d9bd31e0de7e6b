"""The scorer's speed and memory settings: compile (and its fallback), max_batch_tokens, dtype."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.kit import photo, tiny_model_and_processor
from unifilter_hf import Sample
from unifilter_hf.compilation import compiled_graphs, remove_compilation
from unifilter_hf.scoring import QualityScorer, batch_plan
from unifilter_hf.scoring_settings import ScoringSettings, add_scoring_arguments

ROOT = Path(__file__).resolve().parents[1]


def mixed_samples() -> list[Sample]:
    """Captions and documents of different lengths (1-3 images)."""
    names = ["coffee", "chelsea", "rocket", "astronaut"]
    captions = [Sample.caption(photo(n, 64), f"A photo of {n}, " + "with detail " * k) for k, n in enumerate(names)]
    documents = [
        Sample.document(["Our garden.", None, "It rained " * 20, None], [None, photo("flower", 80), None,
                                                                       photo("coffee", 60)]),
        Sample.document([None, "A long day " * 40, None, "end", None], [photo("rocket", 70), None, photo("china", 50),
                                                                        None, photo("astronaut", 64)]),
        Sample.document(["One picture:", None], [None, photo("chelsea", 90)]),
    ]
    return captions + documents


def test_compiled_scores_match_eager_within_1e4():
    model, processor = tiny_model_and_processor("qwen2", seed=3)
    samples = mixed_samples()
    eager = [r.score for r in QualityScorer(model, processor, batch_size=3).score_samples(samples)]
    before = compiled_graphs()
    scorer = QualityScorer(model, processor, batch_size=3, compile=True)
    try:
        compiled = [r.score for r in scorer.score_samples(samples)]
        assert scorer._forward.active, "compilation fell back to eager"
        assert compiled_graphs() > before, "nothing was compiled"
        # a second pass over other batch shapes compiles nothing new: the shapes are symbolic
        graphs = compiled_graphs()
        again = [r.score for r in scorer.with_options(batch_size=2).score_samples(samples)]
        assert compiled_graphs() == graphs
    finally:
        remove_compilation(model)
    assert max(abs(a - b) for a, b in zip(compiled, eager)) <= 1e-4
    assert max(abs(a - b) for a, b in zip(again, eager)) <= 1e-4


FALLBACK_SCRIPT = """
import json, logging, sys
sys.path.insert(0, {root!r})
logging.basicConfig(level=logging.WARNING)
from tests.test_scoring_speed import mixed_samples
from tests.kit import tiny_model_and_processor
from unifilter_hf.scoring import QualityScorer
model, processor = tiny_model_and_processor("qwen2", seed=3)
samples = mixed_samples()
eager = [r.score for r in QualityScorer(model, processor, batch_size=3).score_samples(samples)]
scorer = QualityScorer(model, processor, batch_size=3, compile=True)
compiled = [r.score for r in scorer.score_samples(samples)]
compiled += [r.score for r in QualityScorer(model, processor, batch_size=2, compile=True).score_samples(samples)]
print("RESULT " + json.dumps({{"eager": eager, "compiled": compiled, "active": scorer._forward.active}}))
"""


def test_compile_without_a_compiler_falls_back_with_one_warning(tmp_path):
    # A real missing compiler: inductor's C++ compiler is `$CXX`; a fresh cache holds no compiled kernels.
    env = {**os.environ, "CXX": str(tmp_path / "no-such-compiler"), "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "c"),
           "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", FALLBACK_SCRIPT.format(root=str(ROOT))], capture_output=True,
                         text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert not result["active"]
    assert result["compiled"] == result["eager"] * 2  # every row scored, eagerly: exactly the eager scores
    warnings = [line for line in out.stderr.splitlines() if "torch.compile is not available" in line]
    assert len(warnings) == 1, out.stderr[-3000:]


def test_bfloat16_scores_mixed_rows_within_0_05_of_float32(model_dir):
    samples = mixed_samples()
    full = QualityScorer.from_pretrained(str(model_dir), device="cpu", batch_size=3)
    half = QualityScorer.from_pretrained(str(model_dir), device="cpu", batch_size=3, dtype="bfloat16")
    assert half.model.dtype == torch.bfloat16 and full.model.dtype == torch.float32
    reference = full.score_samples(samples)
    got = half.score_samples(samples)
    assert all(r.ok for r in got), [r.error for r in got]
    diffs = [abs(a.score - b.score) for a, b in zip(got, reference)]
    assert max(diffs) <= 0.05, diffs
    assert max(diffs) > 0, "bfloat16 gave float32's exact scores: the dtype did not reach the model"
    assert max(r.score for r in reference) - min(r.score for r in reference) > 0.5  # a spread the check can see


def test_float16_on_cpu_is_a_clear_error(tiny):
    with pytest.raises(ValueError, match="float16 needs a GPU"):
        QualityScorer(*tiny, dtype="float16")


def test_max_batch_tokens_bounds_every_micro_batch():
    lengths = [7, 120, 33, 33, 500, 64, 64, 64, 64, 90, 12, 250]
    for budget in (1, 64, 130, 256, 1000):
        plan = batch_plan(lengths, batch_size=8, max_tokens=budget)
        assert sorted(i for chunk in plan for i in chunk) == list(range(len(lengths)))
        for chunk in plan:
            assert len(chunk) == 1 or len(chunk) * max(lengths[i] for i in chunk) <= budget, (budget, chunk)
    assert len(batch_plan(lengths, batch_size=8)) == 2  # without the budget: batch_size alone


def test_max_batch_tokens_keeps_scores_and_limits_model_inputs():
    model, processor = tiny_model_and_processor("qwen2", seed=3)
    samples = mixed_samples()
    free = QualityScorer(model, processor, batch_size=8, max_padding=None).score_samples(samples)
    budget = max(processor.sequence_lengths(samples)) + 1
    widths = []
    hook = model.language_model.register_forward_pre_hook(
        lambda mod, args, kwargs: widths.append(kwargs["inputs_embeds"].shape[:2]), with_kwargs=True)
    try:
        bounded = QualityScorer(model, processor, batch_size=8, max_padding=None,
                                max_batch_tokens=budget).score_samples(samples)
    finally:
        hook.remove()
    assert all(rows * width <= budget for rows, width in widths) and len(widths) > 1, widths
    assert max(abs(a.score - b.score) for a, b in zip(free, bounded)) < 1e-5


def test_settings_carry_the_speed_flags_to_the_scorer(tiny):
    parser = argparse.ArgumentParser()
    add_scoring_arguments(parser)
    args = parser.parse_args(["--compile", "--dtype", "bfloat16", "--max-batch-tokens", "4096"])
    settings = ScoringSettings.from_args(args)
    assert (settings.compile, settings.dtype, settings.max_batch_tokens) == (True, "bfloat16", 4096)
    assert settings.scoring_identity()["dtype"] == "bfloat16"
    assert "dtype" not in ScoringSettings().scoring_identity()
    model, processor = tiny_model_and_processor("qwen2", seed=5)
    scorer = settings.replace(compile=False).build_scorer(model, processor)
    assert scorer.model.dtype == torch.bfloat16 and scorer.max_batch_tokens == 4096
    with pytest.raises(ValueError, match="max_batch_tokens"):
        ScoringSettings(max_batch_tokens=0)
