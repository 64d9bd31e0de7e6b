"""Stage 1 (projector alignment) at tiny size: it lowers the caption LM loss, trains only the projector, and
stage 2 starts from the projector it saved."""

from pathlib import Path

import torch
from safetensors.torch import load_file

from unifilter_hf.training.arguments import parse_train_args
from unifilter_hf.training.model_setup import build_model, build_processor
from unifilter_hf.training.run import load_metrics, train

QUICKSTART = str(Path(__file__).resolve().parent.parent / "recipes" / "quickstart" / "train.yaml")
TINY = ["--train_scenes", "48", "--validation_scenes", "8", "--max_steps", "40", "--logging_steps", "10",
        "--per_device_train_batch_size", "8", "--dataloader_num_workers", "0", "--disable_tqdm", "true",
        "--learning_rate", "1.0e-2", "--warmup_steps", "0", "--eval_strategy", "no"]


def test_stage1_aligns_the_projector_and_stage2_loads_it(tmp_path):
    out = tmp_path / "stage1"
    summary = load_metrics(train(["--config", QUICKSTART, "--output_dir", str(out), "--stage", "1", *TINY]), stage=1)
    # Only the projector learns; the caption LM loss on held-out captions falls.
    assert summary["eval_loss_after"] < 0.9 * summary["eval_loss_before"], summary
    saved = load_file(out / "projector.safetensors")
    data, model_args, _ = parse_train_args(["--config", QUICKSTART, "--output_dir", str(tmp_path / "s2")])
    processor = build_processor(model_args)
    fresh = build_model(model_args, processor)
    assert summary["trainable_params"] == sum(p.numel() for p in fresh.projector.parameters())
    assert not all(torch.equal(saved[k], v) for k, v in fresh.projector.state_dict().items())  # it moved
    model_args.projector_weights = str(out)
    stage2 = build_model(model_args, processor)
    assert all(torch.equal(saved[k], v) for k, v in stage2.projector.state_dict().items())
