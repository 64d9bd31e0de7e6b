"""The SigLIP tower of an official checkpoint: its config is not stored, so it is resolved here.

Width, depth, MLP size and patch size are read off the weight shapes; the head count and the image size
cannot be, and come from the tower's local folder, the known-tower table or an explicit override.

Example:
    >>> from pathlib import Path
    >>> cfg = {"mm_vision_tower": "google/siglip-so400m-patch14-384"}
    >>> resolve_vision_config(cfg, Path("."), shapes=None).num_attention_heads
    16
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from transformers import PreTrainedConfig, SiglipVisionConfig

from ..configuration_unifilter import SO400M_PATCH14_384
from .layout import VISION_PREFIX, OfficialCheckpointError

# SigLIP configs are not stored in official checkpoints; heads and image size cannot be read off the weights.
KNOWN_VISION_TOWERS: dict[str, dict[str, int]] = {
    "google/siglip-so400m-patch14-384": SO400M_PATCH14_384,
    # Fixed-resolution SigLIP2 weights load as plain SigLIP (this is what the official Qwen3 model does).
    "google/siglip2-so400m-patch14-384": SO400M_PATCH14_384,
}
_VISION_KEYS = (
    "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_channels",
    "image_size", "patch_size", "hidden_act", "layer_norm_eps", "attention_dropout",
)
_VISION_REQUIRED = ("num_attention_heads", "image_size")
_VISION_OPTION_HINT = (
    "pass the tower's settings explicitly: vision_config={'num_attention_heads': ..., 'image_size': ...} "
    "(CLI: --vision-config '{\"num_attention_heads\": 16, \"image_size\": 384}'), a path to the tower's "
    f"config.json, or one of the known towers {sorted(KNOWN_VISION_TOWERS)}"
)

def _vision_part(config: dict) -> dict:
    """SigLIP vision settings from a vision config or a full SigLIP config dict."""
    if isinstance(config.get("vision_config"), dict):
        config = config["vision_config"]
    return {k: config[k] for k in _VISION_KEYS if config.get(k) is not None}


def _known_tower(name: str) -> dict | None:
    """Table entry by Hub id, or by the folder name of a path that no longer exists (e.g. another machine)."""
    if name in KNOWN_VISION_TOWERS:
        return dict(KNOWN_VISION_TOWERS[name])
    base = name.rstrip("/").rsplit("/", 1)[-1]
    for tower, values in KNOWN_VISION_TOWERS.items():
        if tower.rsplit("/", 1)[-1] == base:
            return dict(values)
    return None


def local_tower_folder(tower: str | None, checkpoint: Path) -> Path | None:
    """The tower's folder when `mm_vision_tower` names an existing local one (checkpoint-relative or as is)."""
    if not tower:
        return None
    for candidate in (checkpoint / tower, Path(tower).expanduser()):
        if (candidate / "config.json").is_file():
            return candidate
    return None


def _override_values(override: str | os.PathLike | dict | PreTrainedConfig | None) -> dict:
    if override is None:
        return {}
    if isinstance(override, PreTrainedConfig):
        return _vision_part(override.to_dict())
    if isinstance(override, dict):
        return _vision_part(override)
    text = str(override).strip()
    if text.startswith("{"):
        return _vision_part(json.loads(text))
    known = _known_tower(text)
    path = Path(text).expanduser()
    if path.is_dir():
        path = path / "config.json"
    if path.is_file():
        return _vision_part(json.loads(path.read_text(encoding="utf-8")))
    if known is not None:
        return known
    raise OfficialCheckpointError(f"vision_config {text!r} is not a JSON object, a config file or a known tower")


def _inferred_vision_values(shapes: dict[str, tuple[int, ...]]) -> tuple[dict, int]:
    """Width, channels, patch, depth and MLP size read off the vision weights, plus the number of patches."""
    p = VISION_PREFIX
    try:
        width, channels, patch, _ = shapes[p + "embeddings.patch_embedding.weight"]
        positions = shapes[p + "embeddings.position_embedding.weight"][0]
        mlp = shapes[p + "encoder.layers.0.mlp.fc1.weight"][0]
    except KeyError as err:
        raise OfficialCheckpointError(f"missing tensors: {err.args[0]} (the vision tower weights)") from None
    layers = {int(m.group(1)) for k in shapes if (m := re.match(re.escape(p) + r"encoder\.layers\.(\d+)\.", k))}
    values = {"hidden_size": width, "num_channels": channels, "patch_size": patch,
              "num_hidden_layers": max(layers) + 1, "intermediate_size": mlp}
    return values, positions


def resolve_vision_config(
    official_config: dict,
    checkpoint: Path,
    shapes: dict[str, tuple[int, ...]] | None,
    override: str | os.PathLike | dict | PreTrainedConfig | None = None,
) -> SiglipVisionConfig:
    """The SigLIP vision config of an official checkpoint (docs/official_checkpoints.md).

    Sources, later ones winning: the tower's local `config.json` when `mm_vision_tower` is an existing folder,
    else the known-tower table; then `override`. Width, depth, MLP size and patch size come from the weight
    shapes (when given) and must agree; heads and image size cannot be inferred and must come from a source.

    Example:
        >>> cfg = {"mm_vision_tower": "google/siglip-so400m-patch14-384"}
        >>> resolve_vision_config(cfg, Path("."), shapes=None).num_attention_heads
        16
    """
    tower = official_config.get("mm_vision_tower")
    local = local_tower_folder(tower, checkpoint)
    if local is not None:
        declared, origin = _vision_part(json.loads((local / "config.json").read_text())), f"local folder {local}"
    else:
        known = _known_tower(tower or "")
        declared, origin = (known or {}), ("the known-tower table" if known else "no source")
    declared.update(_override_values(override))

    values = dict(declared)
    if shapes is not None:
        inferred, positions = _inferred_vision_values(shapes)
        conflicts = [f"{k}: {declared[k]} declared, {v} in the weights"
                     for k, v in inferred.items() if k in declared and declared[k] != v]
        if conflicts:
            raise OfficialCheckpointError(
                f"vision tower {tower!r} ({origin}) does not match the checkpoint's weights: {'; '.join(conflicts)}; "
                + _VISION_OPTION_HINT
            )
        values.update(inferred)
    missing = [k for k in _VISION_REQUIRED if k not in values]
    if missing:
        raise OfficialCheckpointError(
            f"cannot determine {', '.join(missing)} of vision tower {tower!r}: it is neither an existing local "
            "folder nor a known tower, and these settings cannot be read off the weights; " + _VISION_OPTION_HINT
        )
    if shapes is not None:
        grid = values["image_size"] // values["patch_size"]
        if grid * grid != positions:
            raise OfficialCheckpointError(
                f"image_size {values['image_size']} with patch {values['patch_size']} gives {grid * grid} patches, "
                f"the weights have {positions}; " + _VISION_OPTION_HINT
            )
    if values.get("hidden_size") and values["hidden_size"] % values["num_attention_heads"]:
        heads, width = values["num_attention_heads"], values["hidden_size"]
        raise OfficialCheckpointError(f"{heads} attention heads do not divide the vision width {width}")
    # The attention-pool head is never used for scoring (docs/model.md, item 1).
    return SiglipVisionConfig(**values, vision_use_head=False)


__all__ = ["KNOWN_VISION_TOWERS", "local_tower_folder", "resolve_vision_config"]
