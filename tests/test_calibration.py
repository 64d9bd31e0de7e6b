"""Calibration: a monotone ordinal-logistic map from scores to level probabilities, and the ECE."""

import json

import numpy as np
import pytest

from unifilter_hf.calibration import (
    calibrated_probs,
    calibration_report,
    decided_levels,
    expected_calibration_error,
    fit_calibration,
    fit_level_thresholds,
    to_level_scale,
)

GRID = np.linspace(-2.0, 5.0, 701)


def _ordinal_sample(n: int, slope: float, thresholds, seed: int = 0):
    """Scores uniform on [-1, 4] and labels drawn from a known ordinal-logistic model."""
    rng = np.random.default_rng(seed)
    scores = rng.uniform(-1, 4, n)
    true = {"method": "ordinal_logistic", "slope": slope, "thresholds": list(thresholds)}
    probs = calibrated_probs(scores, true)
    labels = (rng.random(n)[:, None] > np.cumsum(probs, axis=1)).sum(axis=1)
    return scores, labels, probs


@pytest.fixture(scope="module")
def noisy():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, 3000)
    scores = 0.8 * labels + rng.normal(0, 0.7, 3000) + 0.3  # a shifted, squeezed, noisy regressor
    return scores, labels, fit_calibration(scores, labels)


def test_fit_recovers_a_known_ordinal_model():
    scores, labels, _ = _ordinal_sample(20000, 2.0, [1.0, 3.0, 5.5])
    cal = fit_calibration(scores, labels)
    assert cal["method"] == "ordinal_logistic" and cal["num_examples"] == 20000
    assert cal["slope"] == pytest.approx(2.0, rel=0.05)
    assert cal["thresholds"] == pytest.approx([1.0, 3.0, 5.5], abs=0.15)


def test_stored_map_is_json_and_monotone(noisy):
    _, _, cal = noisy
    assert json.loads(json.dumps(cal)) == cal  # goes into config.json as is
    assert cal["slope"] > 0 and np.all(np.diff(cal["thresholds"]) > 0)
    probs = calibrated_probs(GRID, cal)
    at_least = np.cumsum(probs[:, ::-1], axis=1)[:, ::-1]  # P(level >= k), k = 0..3
    assert np.all(np.diff(at_least, axis=0) >= -1e-12)  # non-decreasing in the score, for every k
    expected = probs @ np.arange(4)
    assert np.all(np.diff(expected) > 0)
    assert probs[0].argmax() == 0 and probs[-1].argmax() == 3


def test_probabilities_are_distributions(noisy):
    _, _, cal = noisy
    probs = calibrated_probs(np.r_[GRID, -1e6, 1e6], cal)
    assert probs.shape == (len(GRID) + 2, 4)
    assert np.all(probs >= 0) and np.allclose(probs.sum(axis=1), 1.0)
    failed = calibrated_probs([np.nan, np.inf, 1.0], cal)  # failed rows (NaN / inf scores) stay failed
    assert np.isnan(failed[:2]).all() and np.isfinite(failed[2]).all()


def test_well_separated_levels_are_recovered():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 4, 2000)
    scores = 0.5 * labels + 1.0 + rng.normal(0, 0.05, 2000)  # miscentred, but separable
    cal = fit_calibration(scores, labels)
    probs = calibrated_probs(scores, cal)
    assert np.array_equal(probs.argmax(axis=1), labels)
    assert np.median(probs.max(axis=1)) > 0.95


def test_calibration_fixes_a_miscalibrated_regressor(noisy):
    scores, labels, cal = noisy
    # Raw rounded scores give one-hot "probabilities": confident and often wrong. Calibrated ones are honest.
    raw = np.eye(4)[np.floor(np.clip(scores, 0, 3) + 0.5).astype(int)]
    raw_ece = expected_calibration_error(raw, labels)
    report = calibration_report(scores, labels, cal)
    assert raw_ece > 0.2 and report["ece"] < 0.03
    assert report["nll"] == pytest.approx(cal["nll"], rel=1e-6)


def test_ece_perfect_vs_miscalibrated():
    labels = [0] * 7 + [1] * 3
    assert expected_calibration_error(np.array([[0.7, 0.1, 0.1, 0.1]] * 10), labels) == 0.0
    # 97% confident but 70% right: ECE = 0.27.
    assert expected_calibration_error(np.array([[0.97, 0.01, 0.01, 0.01]] * 10), labels) == pytest.approx(0.27)
    # Two bins weighted by their size: 3/4 * |1 - 0.95| + 1/4 * |0 - 0.45| (unweighted it would be 0.25).
    probs = np.array([[0.95, 0.05, 0, 0]] * 3 + [[0.45, 0.35, 0.2, 0]])
    assert expected_calibration_error(probs, [0, 0, 0, 1]) == pytest.approx(0.75 * 0.05 + 0.25 * 0.45)
    # Labels drawn from the probabilities themselves: calibrated up to sampling noise.
    _, labels, probs = _ordinal_sample(20000, 2.0, [1.0, 3.0, 5.5], seed=1)
    assert expected_calibration_error(probs, labels) < 0.02


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError):
        fit_calibration([1.0, 2.0], [0, 4])
    with pytest.raises(ValueError):
        fit_calibration([np.nan], [0])
    with pytest.raises(ValueError):
        calibrated_probs([1.0], {"method": "ordinal_logistic", "slope": -1.0, "thresholds": [0, 1, 2]})
    with pytest.raises(ValueError):
        calibrated_probs([1.0], {"method": "isotonic"})


def test_a_calibrated_regression_checkpoint_reports_probs_in_the_pipeline_and_map(tmp_path):
    import datasets
    from transformers import pipeline

    from tests.badrows import image_dict, jpeg
    from tests.kit import tiny_model_and_processor
    from unifilter_hf.filtering import unifilter_score

    model, processor = tiny_model_and_processor(seed=4)
    rows = [{"image": image_dict(jpeg(n)), "text": f"A photo of a {n}."} for n in ("coffee", "rocket", "flower")]
    plain = pipeline("multimodal-quality-scoring", model=model, processor=processor, device="cpu")(rows)
    assert all(r["probs"] is None for r in plain)  # an uncalibrated regression head has no probabilities
    scores = [r["score"] for r in plain]
    model.config.calibration = fit_calibration([s + d for s in scores for d in (-1, 0, 1, 2)],
                                               [0, 1, 2, 3] * len(scores))
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    calibrated = pipeline("multimodal-quality-scoring", model=str(tmp_path), device="cpu")(rows)
    expected = calibrated_probs(scores, model.config.calibration)
    for result, probs in zip(calibrated, expected):
        assert sum(result["probs"]) == pytest.approx(1.0) and result["probs"] == pytest.approx(probs.tolist())
    mapped = datasets.Dataset.from_list(rows).map(unifilter_score(model=str(tmp_path)), batched=True)
    assert np.allclose(np.array(mapped["unifilter_probs"]), expected, atol=1e-6)


def _accuracy(scores, labels, cuts) -> float:
    return float((np.searchsorted(np.asarray(cuts), scores, side="right") == labels).mean())


def test_level_thresholds_are_the_best_cuts_and_generalise_to_held_out_rows():
    # An mse model squeezes its scores: levels 0..3 centred at 0.0, 1.6, 2.1, 2.4 (the shapes world's).
    rng = np.random.default_rng(3)

    def sample(n):
        labels = rng.integers(0, 4, n)
        return np.array([0.0, 1.6, 2.1, 2.4])[labels] + rng.normal(0, 0.2, n), labels

    fit_scores, fit_labels = sample(60)
    cuts = fit_level_thresholds(fit_scores, fit_labels)
    assert cuts == sorted(cuts)
    # Exact: no triple of cuts between the sorted scores does better on the rows it was fitted on.
    edges = np.sort(fit_scores)
    mids = np.r_[edges[0] - 1, (edges[1:] + edges[:-1]) / 2, edges[-1] + 1]
    best = max(_accuracy(fit_scores, fit_labels, (a, b, c))
               for i, a in enumerate(mids) for j, b in enumerate(mids[i:], i) for c in mids[j:])
    assert _accuracy(fit_scores, fit_labels, cuts) == pytest.approx(best)
    # Held out: the fitted cuts beat the plain rule (which never says 3 here) on rows they never saw.
    scores, labels = sample(4000)
    fitted = decided_levels(scores, {"level_thresholds": cuts})
    plain = decided_levels(scores)
    assert (fitted == labels).mean() > (plain == labels).mean() + 0.1  # measured: 0.79 vs 0.66
    assert (fitted[labels == 3] == 3).mean() > (plain[labels == 3] == 3).mean() + 0.05  # measured: 0.41 vs 0.31
    # The level rule on the moved scale is exactly "how many cuts lie at or below the score".
    np.testing.assert_array_equal(fitted, np.searchsorted(np.asarray(cuts), scores, side="right"))
    assert np.all(np.diff(to_level_scale(np.sort(scores), cuts)) >= 0)


def test_a_checkpoints_fitted_level_cuts_decide_the_levels_users_get(model_dir, tmp_path):
    # Training stores level_thresholds in config.calibration and reports accuracy with them: the pipeline and
    # the datasets callables must give those levels, not the plain half-up rule.
    import datasets
    from transformers import pipeline

    from tests.badrows import image_dict, jpeg
    from unifilter_hf import UniFilterForQualityScoring
    from unifilter_hf.filtering import unifilter_score
    from unifilter_hf.levels import levels_of

    rows = [{"image": image_dict(jpeg(n)), "text": t} for n in ("coffee", "rocket", "chelsea", "astronaut")
            for t in ("A photo.", f"A {n}.", "Nothing at all here, sorry.")]
    pipe = pipeline("multimodal-quality-scoring", model=str(model_dir), device="cpu")
    scores = np.array([r["score"] for r in pipe(rows)])
    low, high = float(scores.min()), float(scores.max())
    cuts = [low + (high - low) * q for q in (0.25, 0.5, 0.75)]  # cuts that split these rows 3/3/3/3-ish
    model = UniFilterForQualityScoring.from_pretrained(model_dir)
    model.config.calibration = {**fit_calibration(scores, levels_of(scores)), "level_thresholds": cuts}
    model.save_pretrained(tmp_path / "cut")
    pipe.processor.save_pretrained(tmp_path / "cut")

    expected = decided_levels(scores, {"level_thresholds": cuts}).tolist()
    assert expected != levels_of(scores).tolist()  # the cuts change some levels
    cut_pipe = pipeline("multimodal-quality-scoring", model=str(tmp_path / "cut"), device="cpu")
    assert [r["level"] for r in cut_pipe(rows)] == expected
    mapped = datasets.Dataset.from_list(rows).map(unifilter_score(model=str(tmp_path / "cut")), batched=True)
    assert mapped["unifilter_level"] == expected


def test_a_level_left_empty_by_the_fit_still_gives_increasing_cuts():
    # A short run's validation split can hold no row the fit wants in level 2: the cuts coincided before and
    # to_level_scale (hence the whole training run) refused them.
    scores, labels = [0.1, 0.2, 1.0, 1.1, 2.0, 2.1], [0, 0, 1, 1, 3, 3]
    cuts = fit_level_thresholds(scores, labels)
    assert cuts[0] < cuts[1] < cuts[2] and cuts[2] - cuts[1] <= 1e-6
    assert decided_levels(scores, {"level_thresholds": cuts}).tolist() == labels
