"""Pushing a trained checkpoint (weights, processor, card, metrics, figures) with ``huggingface_hub``.

Example:
    >>> check_can_push(None)  # nothing to push: no check
"""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import HfApi, get_token


class PushError(SystemExit):
    """Raised before training when a requested push cannot work (its message is one line)."""


def check_can_push(repo_id: str | None) -> None:
    """Fail fast (before any data or training) when ``repo_id`` is set but the Hub is offline or no token."""
    if not repo_id:
        return
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        raise PushError(f"cannot push to {repo_id}: HF_HUB_OFFLINE is set; unset it or drop --push_to_hub")
    if not get_token():
        raise PushError(f"cannot push to {repo_id}: no Hugging Face token; run `hf auth login` or set HF_TOKEN")


def push_checkpoint(folder: str | Path, repo_id: str, private: bool = False, api: HfApi | None = None) -> str:
    """Create ``repo_id`` (if needed) and upload ``folder``; returns the commit URL."""
    api = api or HfApi()
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    info = api.upload_folder(
        repo_id=repo_id, repo_type="model", folder_path=str(folder),
        commit_message="Upload UniFilter checkpoint trained with unifilter-hf",
        ignore_patterns=["checkpoint-*", "checkpoint-*/**", "runs/**"],
    )
    return str(getattr(info, "commit_url", info))
