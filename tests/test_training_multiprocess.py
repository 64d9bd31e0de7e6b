"""Multi-process training the way users launch it: ``accelerate launch`` with 2 CPU processes (DDP over gloo).

The tiny quickstart recipe, a few steps: it trains, the two processes share the data (the epoch advances
twice as fast as one process would make it), and exactly one checkpoint and one final model are saved.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = str(ROOT / "recipes" / "quickstart" / "train.yaml")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_accelerate_launch_two_cpu_processes_trains_and_saves_one_checkpoint(tmp_path):
    out = tmp_path / "run"
    accelerate = Path(sys.executable).parent / "accelerate"
    cmd = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
           "-m", "unifilter_hf.training", QUICKSTART, "--output_dir", str(out), "--use_cpu", "true",
           "--train_scenes", "16", "--document_share", "0", "--validation_scenes", "4", "--max_steps", "4",
           "--per_device_train_batch_size", "4", "--logging_steps", "1", "--save_strategy", "steps",
           "--save_steps", "4", "--dataloader_num_workers", "0", "--disable_tqdm", "true"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=400)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert run.stdout.count("parameters:") == 2  # both processes built the model
    checkpoints = sorted(p.name for p in out.iterdir() if p.name.startswith("checkpoint-"))
    assert checkpoints == ["checkpoint-4"]
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    # 64 rows, 2 processes x 4 rows per step: 8 steps an epoch (one process alone would need 16).
    assert state["global_step"] == 4 and state["epoch"] == 0.5
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    assert len(losses) == 4 and all(loss == loss and loss > 0 for loss in losses)
    assert (out / "model.safetensors").is_file() and (out / "metrics.json").is_file()
