"""The official UniFilter checkpoint layout (LLaVA fork): how to recognise it and how its names map to ours.

A leaf module: it imports nothing from the package, so detection can run anywhere (the Auto-class routing,
the converter, the CLI) without pulling in the model. docs/official_checkpoints.md has the full name table.

Example:
    >>> native_name("model.mm_projector.mlp_projector.2.bias")
    'projector.linear_2.bias'
    >>> is_official_config({"model_type": "llava_qwen"}), is_official_config({"model_type": "unifilter"})
    (True, False)
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from huggingface_hub import hf_hub_download
from transformers import PreTrainedConfig

from ..errors import UniFilterError

# Official `model_type` -> the decoder's transformers `model_type` (docs/official_checkpoints.md).
OFFICIAL_MODEL_TYPES = {"llava_qwen": "qwen2", "llava_qwen3": "qwen3"}

# The official scorer's caption cut (docs/model.md): a compatibility option, off by default.
OFFICIAL_CAPTION_MAX_IDS = 75

# Hub options of `from_pretrained` that also apply to reading an official checkpoint.
HUB_KWARGS = ("revision", "token", "cache_dir", "local_files_only", "force_download", "proxies")

# Official weight names.
VISION_PREFIX = "model.vision_tower.vision_tower.vision_model."
_PROJECTOR_PREFIXES = {
    "model.mm_projector.mlp_projector.0.": "projector.linear_1.",
    "model.mm_projector.mlp_projector.2.": "projector.linear_2.",
}
# Saved by some versions but never used for scoring: the SigLIP attention-pool head, an LM head, buffers.
_UNUSED_PREFIXES = (VISION_PREFIX + "head.", "lm_head.")
_BUFFER_SUFFIXES = ("rotary_emb.inv_freq", "embeddings.position_ids")


class OfficialCheckpointError(UniFilterError, ValueError):
    """An official checkpoint that cannot be converted exactly (missing tensors, unknown tower, ...)."""


def is_local(path_or_id: str | os.PathLike) -> bool:
    """True when `path_or_id` is an existing local folder (else it is read as a Hub id)."""
    return Path(path_or_id).expanduser().is_dir()


def hub_options(kwargs: dict) -> dict:
    """The Hub options among `kwargs` that are set."""
    return {k: kwargs[k] for k in HUB_KWARGS if kwargs.get(k) is not None}


def read_official_config(path_or_id: str | os.PathLike | None, subfolder: str = "", **hub_kwargs) -> dict | None:
    """The `config.json` of a local folder or Hub repo as a dict, or None when there is none to read.

    Never raises: used to decide whether a path holds an official checkpoint at all.

    Example:
        >>> read_official_config("weizhiwang/UniFilter-Qwen3-0.6B")["model_type"]  # doctest: +SKIP
        'llava_qwen3'
    """
    if path_or_id is None:
        return None
    try:
        if is_local(path_or_id):
            config_file = Path(path_or_id).expanduser() / subfolder / "config.json"
        elif isinstance(path_or_id, str) and re.fullmatch(r"[\w.-]+(/[\w.-]+)?", path_or_id):
            config_file = Path(
                hf_hub_download(path_or_id, "config.json", subfolder=subfolder or None, **hub_options(hub_kwargs))
            )
        else:
            return None
        return json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else None
    except Exception:  # offline, not found, gated, malformed: not an official checkpoint we can read
        return None


def is_official_config(config: dict | PreTrainedConfig | None) -> bool:
    """True for the config of an official UniFilter checkpoint (`llava_qwen` / `llava_qwen3`).

    Example:
        >>> is_official_config({"model_type": "llava_qwen"}), is_official_config({"model_type": "unifilter"})
        (True, False)
    """
    if isinstance(config, PreTrainedConfig):
        return getattr(config, "model_type", None) in OFFICIAL_MODEL_TYPES
    return isinstance(config, dict) and config.get("model_type") in OFFICIAL_MODEL_TYPES


def native_name(official: str) -> str | None:
    """The native parameter name of an official tensor name; None for tensors that scoring never uses.

    Example:
        >>> native_name("model.mm_projector.mlp_projector.2.bias")
        'projector.linear_2.bias'
        >>> native_name("model.vision_tower.vision_tower.vision_model.head.probe") is None
        True
    """
    if official.startswith(_UNUSED_PREFIXES) or official.endswith(_BUFFER_SUFFIXES):
        return None
    if official.startswith(VISION_PREFIX):
        # transformers 5 SiglipVisionModel state dicts have no `vision_model.` level.
        return "vision_tower." + official[len(VISION_PREFIX) :]
    for old, new in _PROJECTOR_PREFIXES.items():
        if official.startswith(old):
            return new + official[len(old) :]
    if official == "score.weight":
        return "score.weight"
    if official.startswith("model.") and not official.startswith(("model.mm_projector.", "model.vision_tower.")):
        return "language_model." + official[len("model.") :]
    return official  # unknown: reported as unexpected by the checks


def official_name(native: str) -> str:
    """Inverse of [`native_name`], for error messages in the checkpoint's own terms.

    Example:
        >>> official_name("language_model.layers.0.mlp.up_proj.weight")
        'model.layers.0.mlp.up_proj.weight'
    """
    if native.startswith("vision_tower."):
        return VISION_PREFIX + native[len("vision_tower.") :]
    for old, new in _PROJECTOR_PREFIXES.items():
        if native.startswith(new):
            return old + native[len(new) :]
    if native == "score.weight":
        return "score.weight"
    if native.startswith("language_model."):
        return "model." + native[len("language_model.") :]
    return native


def rename_state_dict(official: dict[str, Any]) -> dict[str, Any]:
    """Official names -> native names, dropping unused tensors (values are passed through untouched)."""
    renamed = {}
    for name, value in official.items():
        new = native_name(name)
        if new is not None:
            renamed[new] = value
    return renamed



__all__ = [
    "HUB_KWARGS",
    "OFFICIAL_CAPTION_MAX_IDS",
    "OFFICIAL_MODEL_TYPES",
    "OfficialCheckpointError",
    "is_official_config",
    "native_name",
    "official_name",
    "read_official_config",
    "rename_state_dict",
]
