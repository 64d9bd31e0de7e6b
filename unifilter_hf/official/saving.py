"""Save a converted official checkpoint as a native folder: weights, config, processor, tokenizer, card."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from .conversion import convert_official
from .model_card import write_model_card


def convert_official_checkpoint(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    source_id: str | None = None,
    **convert_kwargs,
) -> Path:
    """Convert an official checkpoint and save a native one: safetensors, config, processor, tokenizer, card.

    The output is deterministic (no dates, no random init): converting twice gives identical files. Tensors
    keep the source dtype.

    Args:
        src: local folder or Hub id of the official checkpoint.
        dst: output folder (created; existing files of the same names are replaced).
        source_id: the Hub id to name in the model card when `src` is a local copy.
        convert_kwargs: see [`convert_official`].

    Example:
        >>> convert_official_checkpoint("weizhiwang/UniFilter-Qwen3-0.6B", "unifilter-qwen3")  # doctest: +SKIP
        PosixPath('unifilter-qwen3')
    """
    converted = convert_official(src, **convert_kwargs)
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    dtype = _source_dtype(converted.state_dict)
    converted.to_model(dtype=dtype).save_pretrained(dst)
    converted.processor.save_pretrained(dst)
    write_model_card(converted, dst, source_id=source_id, dtype=dtype)
    for license_file in sorted(converted.folder.glob("LICENSE*")):
        shutil.copyfile(license_file, dst / license_file.name)
    return dst


def _source_dtype(state_dict: dict[str, torch.Tensor]) -> torch.dtype:
    """The dtype of the LLM weights (the checkpoint's working precision)."""
    for name in ("language_model.embed_tokens.weight", "score.weight"):
        if name in state_dict:
            return state_dict[name].dtype
    return torch.float32


__all__ = ["convert_official_checkpoint"]
