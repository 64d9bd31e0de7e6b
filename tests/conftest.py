"""Test settings: fully offline, small thread count, a private HF cache."""

import os
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Remote-code loads copy modules into $HF_HOME/modules; keep them out of the user's cache.
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="unifilter-hf-home-"))

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny():
    """A tiny random Qwen2-backed UniFilter (regression head) and its processor."""
    from tests.kit import tiny_model_and_processor

    return tiny_model_and_processor("qwen2")
