"""A shortened quickstart end to end: it learns, and every reported number comes from real predictions.

Also the Hub push (only the HfApi boundary is replaced) and its fail-fast checks before any training.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import HfApi

from unifilter_hf import UniFilterForQualityScoring, UniFilterProcessor
from unifilter_hf.calibration import calibrated_probs, fit_level_thresholds, to_level_scale
from unifilter_hf.cli import main as cli_main
from unifilter_hf.publishing.hub import PushError
from unifilter_hf.quality_metrics import compute_quality_metrics
from unifilter_hf.training import QualityCollator
from unifilter_hf.training.cli import main as train_main
from unifilter_hf.training.run import load_metrics

QUICKSTART = str(Path(__file__).resolve().parent.parent / "recipes" / "quickstart" / "train.yaml")
SHORT = ["--train_scenes", "64", "--document_share", "0", "--validation_scenes", "12", "--max_steps", "40",
         "--logging_steps", "5",
         "--per_device_train_batch_size", "16", "--dataloader_num_workers", "0", "--disable_tqdm", "true"]
REPO = "someone/unifilter-shapes"


@pytest.fixture(scope="module")
def pushed_run(tmp_path_factory):
    """One short training run that pushes to the Hub; HfApi's create_repo/create_branch/create_commit record calls."""
    out = tmp_path_factory.mktemp("quickstart")
    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, kwargs))

    def create_branch(self, repo_id, **kwargs):
        calls.append(("create_branch", repo_id, kwargs))

    def create_commit(self, **kwargs):
        ops = kwargs.pop("operations")
        kwargs["sources"] = [Path(op.path_or_fileobj) for op in ops]
        calls.append(("create_commit", sorted(op.path_in_repo for op in ops), kwargs))
        return "https://huggingface.co/someone/unifilter-shapes/commit/abc"

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(HfApi, "create_repo", create_repo)
        mp.setattr(HfApi, "create_branch", create_branch)
        mp.setattr(HfApi, "create_commit", create_commit)
        mp.setattr(HfApi, "whoami", lambda self, token=None, cache=False: {"name": "someone",
                                                                           "auth": {"accessToken": {"role": "write"}}})
        mp.setenv("HF_HUB_OFFLINE", "0")
        mp.setenv("HF_TOKEN", "hf_test_token_not_real")
        assert train_main([QUICKSTART, "--output_dir", str(out), *SHORT, "--push_to_hub", REPO,
                           "--hub_private_repo", "true", "--hub_revision", "exp1"]) == 0
    return out, load_metrics(out)["run"], calls


def test_loss_falls(pushed_run):
    _, summary, _ = pushed_run
    losses = [loss for _, loss in summary["loss_curve"]]
    assert len(losses) >= 4 and losses[-1] < 0.8 * losses[0]


def test_metrics_json_comes_from_the_saved_models_predictions(pushed_run):
    out, _, _ = pushed_run
    metrics = json.loads((out / "metrics.json").read_text())
    model = UniFilterForQualityScoring.from_pretrained(out).eval()
    processor = UniFilterProcessor.from_pretrained(out)
    from unifilter_hf.synthesis.shapes_world import shapes_world_dataset
    from unifilter_hf.training.validation_results import held_out_halves

    val = shapes_world_dataset(12, split="validation", seed=0)  # the run's validation split (seed 0)
    batch = QualityCollator(processor)([val[i] for i in range(val.num_rows)])
    with torch.no_grad():
        scores = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       pixel_values=batch["pixel_values"]).scores.numpy()
    labels = np.asarray(val["label"])
    every = compute_quality_metrics(scores, labels, val["kind"], val["group_id"])
    assert metrics["eval_pairwise_accuracy"] == pytest.approx(every["pairwise_accuracy"])
    # Levels: thresholds fitted on every other group, accuracy reported on the others with them.
    fit, shown = held_out_halves(val["group_id"], val.num_rows)
    assert len(fit) == len(shown) == 24 and not set(val["group_id"][i] for i in fit) & set(
        val["group_id"][i] for i in shown)
    thresholds = metrics["calibration"]["level_thresholds"]
    assert thresholds == pytest.approx(fit_level_thresholds(scores[fit], labels[fit]), abs=1e-5)
    pick = [val["group_id"][i] for i in shown]
    expected = compute_quality_metrics(to_level_scale(scores[shown], thresholds), labels[shown], None, pick)
    raw = compute_quality_metrics(scores[shown], labels[shown])
    assert metrics["eval_accuracy"] == pytest.approx(expected["accuracy"])
    assert metrics["quality_metrics"]["confusion_matrix"] == expected["confusion_matrix"]
    assert metrics["quality_metrics"]["mean_raw_score_per_level"] == pytest.approx(raw["mean_score_per_level"],
                                                                                   abs=1e-5)
    assert set(metrics["eval_accuracy_per_edit"]) == {"colour", "shape", "count", "position"}
    assert len(set(np.round(scores, 4))) > 1  # real, varying predictions


def test_calibration_is_stored_monotone_and_normalised(pushed_run):
    out, _, _ = pushed_run
    config = json.loads((out / "config.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    calibration = config["calibration"]
    assert calibration == metrics["calibration"]
    probs = calibrated_probs(np.linspace(-1, 4, 51), calibration)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    expected_level = probs @ np.arange(4)
    assert np.all(np.diff(expected_level) >= -1e-12)  # monotone in the score
    assert 0.0 <= metrics["eval_ece"] <= 1.0


def test_artefacts_and_card(pushed_run):
    out, _, _ = pushed_run
    for name in ("confusion_matrix.png", "score_distribution.png", "training_curve.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = (out / "README.md").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    assert f"| eval_accuracy | {metrics['eval_accuracy']:.4f} |" in card
    assert "shapes world" in card.lower() and "Confusion matrix" in card and "--max_steps 40" in card
    row0 = " | ".join(str(v) for v in metrics["quality_metrics"]["confusion_matrix"][0])
    assert f"| 0 | {row0} |" in card


def test_push_uploads_checkpoint_processor_and_card(pushed_run, tmp_path):
    out, _, calls = pushed_run
    assert [c[0] for c in calls] == ["create_repo", "create_branch", "create_commit"]
    assert calls[0][1] == REPO and calls[0][2] == {"repo_type": "model", "private": True, "exist_ok": True}
    assert calls[1][1] == REPO and calls[1][2] == {"branch": "exp1", "repo_type": "model", "exist_ok": True}
    calls = [c for c in calls if c[0] != "create_branch"]
    _, files, kwargs = calls[1]
    assert kwargs["repo_id"] == REPO and all(Path(p).is_relative_to(out) for p in kwargs["sources"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert kwargs["commit_message"] == (
        f"unifilter-hf train: recipe {QUICKSTART}, loss mse, 40 steps, {metrics['run']['train_rows']} train rows: "
        f"eval_accuracy={metrics['eval_accuracy']:.4f}")
    assert kwargs["revision"] == "exp1"
    # exactly what a scoring checkpoint holds (model, processor, pipeline code), plus the run's artefacts
    from unifilter_hf.pipeline_unifilter import save_scoring_checkpoint

    save_scoring_checkpoint(UniFilterForQualityScoring.from_pretrained(out), UniFilterProcessor.from_pretrained(out),
                            tmp_path)
    assert "pipeline_unifilter.py" in files
    expected = {p.name for p in tmp_path.iterdir()} | {
        "README.md", "metrics.json", "confusion_matrix.png", "score_distribution.png", "training_curve.png"}
    assert set(files) == expected


def test_push_fails_fast_offline_before_any_data(monkeypatch, tmp_path, capsys):
    import unifilter_hf.training.run as run

    monkeypatch.setattr(run, "load_training_data", lambda *a, **k: pytest.fail("data loaded before the check"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PushError) as err:  # a library error, not SystemExit: the CLI decides the exit status
        train_main([QUICKSTART, "--output_dir", str(tmp_path / "x"), "--push_to_hub", REPO])
    assert "HF_HUB_OFFLINE" in str(err.value) and "\n" not in str(err.value)
    assert cli_main(["train", QUICKSTART, "--output_dir", str(tmp_path / "x"), "--push_to_hub", REPO]) == 2
    assert capsys.readouterr().err.startswith("unifilter-hf train: error: cannot push to")


def test_push_fails_fast_without_token(monkeypatch, tmp_path):
    import unifilter_hf.publishing.hub as hub
    import unifilter_hf.training.run as run

    monkeypatch.setattr(run, "load_training_data", lambda *a, **k: pytest.fail("data loaded before the check"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(hub, "get_token", lambda: None)
    with pytest.raises(PushError, match="no Hugging Face token"):
        train_main([QUICKSTART, "--output_dir", str(tmp_path / "x"), "--push_to_hub", REPO])


def test_train_subcommand_and_module_entry_point():
    import runpy

    from unifilter_hf.cli import build_parser

    args = build_parser().parse_args(["train", QUICKSTART, "--seed", "3", "--loss", "ce"])
    assert args.config == QUICKSTART and args.overrides == ["--seed", "3", "--loss", "ce"]
    assert args.func.__module__ == "unifilter_hf.training.cli"
    assert runpy.run_module("unifilter_hf.training.__main__", run_name="not_main")["main"] is train_main
