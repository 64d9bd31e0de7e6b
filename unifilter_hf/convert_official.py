"""Convert official UniFilter checkpoints (LLaVA layout) to native unifilter-hf checkpoints.

The official release (`weizhiwang/UniFilter-Qwen2.5-1.5B`, `weizhiwang/UniFilter-Qwen3-0.6B`, `model_type`
`llava_qwen` / `llava_qwen3`) stores one `model.safetensors` with the LLM, projector, score head and SigLIP
tower under LLaVA names, an LLM `config.json` with extra `mm_*` keys, and the tokenizer files (SPEC.md
section 1). This module maps that layout onto [`UniFilterForQualityScoring`] and [`UniFilterProcessor`]
with exact parity, and provides the `unifilter-hf convert SRC DST` subcommand.

Example:
    >>> from unifilter_hf.convert_official import convert_official_checkpoint
    >>> convert_official_checkpoint("weizhiwang/UniFilter-Qwen2.5-1.5B", "unifilter-qwen2.5-1.5b")  # doctest: +SKIP
    PosixPath('unifilter-qwen2.5-1.5b')
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import hf_hub_download, snapshot_download
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import CONFIG_MAPPING, AutoTokenizer, PreTrainedConfig, SiglipVisionConfig

from .configuration_unifilter import SO400M_PATCH14_384, UniFilterConfig
from .modeling_unifilter import UniFilterForQualityScoring
from .processing_unifilter import UniFilterProcessor

logger = logging.getLogger(__name__)

# Official `model_type` -> the decoder's transformers `model_type` (SPEC.md section 1).
OFFICIAL_MODEL_TYPES = {"llava_qwen": "qwen2", "llava_qwen3": "qwen3"}

# The official scorer's caption cut (SPEC.md section 3): a compatibility option, off by default.
OFFICIAL_CAPTION_MAX_IDS = 75

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

# Official weight names (SPEC.md section 1).
_VISION_PREFIX = "model.vision_tower.vision_tower.vision_model."
_PROJECTOR_PREFIXES = {
    "model.mm_projector.mlp_projector.0.": "projector.linear_1.",
    "model.mm_projector.mlp_projector.2.": "projector.linear_2.",
}
# Saved by some versions but never used for scoring: the SigLIP attention-pool head, an LM head, buffers.
_UNUSED_PREFIXES = (_VISION_PREFIX + "head.", "lm_head.")
_BUFFER_SUFFIXES = ("rotary_emb.inv_freq", "embeddings.position_ids")

# Keys of an official config.json that are not the decoder's own settings.
_TEXT_META_KEYS = {
    "architectures", "model_type", "id2label", "label2id", "num_labels", "transformers_version", "torch_dtype",
    "dtype", "auto_map", "problem_type", "_name_or_path", "rope_theta", "rope_scaling",
}
_HUB_KWARGS = ("revision", "token", "cache_dir", "local_files_only", "force_download", "proxies")
_NON_WEIGHT_PATTERNS = ["*.json", "*.txt", "*.model", "*.tiktoken", "*.jinja", "README.md", "LICENSE*"]
_CARD_TEMPLATE = Path(__file__).resolve().parent.parent / "model_cards" / "converted_official.md"


class OfficialCheckpointError(ValueError):
    """An official checkpoint that cannot be converted exactly (missing tensors, unknown tower, ...)."""


# -- source ----------------------------------------------------------------------------------------------------
def _is_local(path_or_id: str | os.PathLike) -> bool:
    return Path(path_or_id).expanduser().is_dir()


def _hub_kwargs(kwargs: dict) -> dict:
    return {k: kwargs[k] for k in _HUB_KWARGS if kwargs.get(k) is not None}


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
        if _is_local(path_or_id):
            config_file = Path(path_or_id).expanduser() / subfolder / "config.json"
        elif isinstance(path_or_id, str) and re.fullmatch(r"[\w.-]+(/[\w.-]+)?", path_or_id):
            config_file = Path(
                hf_hub_download(path_or_id, "config.json", subfolder=subfolder or None, **_hub_kwargs(hub_kwargs))
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


def resolve_source(
    src: str | os.PathLike, *, weights: bool = True, allow_pickle: bool = False, subfolder: str = "", **hub_kwargs
) -> Path:
    """A local folder holding the checkpoint: `src` itself, or a Hub snapshot (weights only when asked).

    Example:
        >>> resolve_source("weizhiwang/UniFilter-Qwen2.5-1.5B", weights=False)  # doctest: +SKIP
        PosixPath('/root/.cache/huggingface/hub/models--weizhiwang--UniFilter-Qwen2.5-1.5B/snapshots/...')
    """
    if _is_local(src):
        folder = Path(src).expanduser()
    else:
        patterns = list(_NON_WEIGHT_PATTERNS)
        if weights:
            patterns += ["*.safetensors"] + (["*.bin"] if allow_pickle else [])
        try:
            folder = Path(snapshot_download(str(src), allow_patterns=patterns, **_hub_kwargs(hub_kwargs)))
        except Exception as err:  # offline, unknown repo, gated, network: one clear message, cause chained
            raise OfficialCheckpointError(
                f"{src} is not a local folder and its Hub snapshot could not be fetched: {type(err).__name__}: {err}"
            ) from err
    folder = folder / subfolder
    if not (folder / "config.json").is_file():
        raise OfficialCheckpointError(f"{src}: no config.json found in {folder}")
    return folder


# -- weights ---------------------------------------------------------------------------------------------------
def _weight_files(folder: Path, allow_pickle: bool) -> tuple[list[Path], bool]:
    """The checkpoint's weight files and whether they are pickles; pickles only with explicit consent."""
    for index_name, is_pickle in (("model.safetensors.index.json", False), ("pytorch_model.bin.index.json", True)):
        index = folder / index_name
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            files, pickled = [folder / s for s in shards], is_pickle
            break
    else:
        files = sorted(folder.glob("*.safetensors"))
        pickled = not files
        if pickled:
            files = sorted(p for p in folder.glob("*.bin") if p.name != "training_args.bin")
    if not files:
        raise OfficialCheckpointError(f"no weights (*.safetensors) found in {folder}")
    if pickled and not allow_pickle:
        names = ", ".join(p.name for p in files)
        raise OfficialCheckpointError(
            f"{folder} holds only pickle weights ({names}). Pickle files can run arbitrary code when loaded; "
            "convert them only if you trust the source, by passing allow_pickle=True (CLI: --allow-pickle)."
        )
    missing = [p.name for p in files if not p.is_file()]
    if missing:
        raise OfficialCheckpointError(f"weight files listed in the index are missing from {folder}: {missing}")
    return files, pickled


def load_official_state_dict(folder: str | os.PathLike, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """All tensors of an official checkpoint folder, under their official names.

    Example:
        >>> sd = load_official_state_dict("official-checkpoint/")  # doctest: +SKIP
        >>> sd["score.weight"].shape  # doctest: +SKIP
        torch.Size([1, 1536])
    """
    files, pickled = _weight_files(Path(folder), allow_pickle)
    state_dict: dict[str, torch.Tensor] = {}
    for file in files:
        # Even with consent, only the restricted unpickler (tensors and plain containers).
        part = torch.load(file, map_location="cpu", weights_only=True) if pickled else load_file(file)
        state_dict.update(part)
    return state_dict


def weight_shapes(folder: str | os.PathLike) -> dict[str, tuple[int, ...]] | None:
    """Tensor shapes read from safetensors headers (no data loaded); None without local safetensors."""
    try:
        files, pickled = _weight_files(Path(folder), allow_pickle=False)
    except OfficialCheckpointError:
        return None
    shapes = {}
    for file in files:
        with safe_open(file, "pt") as reader:
            for name in reader.keys():
                shapes[name] = tuple(reader.get_slice(name).get_shape())
    return shapes


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
    if official.startswith(_VISION_PREFIX):
        # transformers 5 SiglipVisionModel state dicts have no `vision_model.` level.
        return "vision_tower." + official[len(_VISION_PREFIX) :]
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
        return _VISION_PREFIX + native[len("vision_tower.") :]
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


def check_state_dict(config: UniFilterConfig, shapes: dict[str, tuple[int, ...]]) -> None:
    """Raise, listing official names, unless `shapes` (native names) matches the model exactly."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in UniFilterForQualityScoring(config).state_dict().items()}
    missing = sorted(official_name(k) for k in expected.keys() - shapes.keys())
    unexpected = sorted(official_name(k) for k in shapes.keys() - expected.keys())
    mismatched = sorted(
        f"{official_name(k)}: checkpoint {list(shapes[k])}, expected {list(expected[k])}"
        for k in expected.keys() & shapes.keys()
        if tuple(shapes[k]) != expected[k]
    )
    problems = [
        f"{title} ({len(items)}): " + ", ".join(items)
        for title, items in (("missing tensors", missing), ("unexpected tensors", unexpected),
                             ("shape mismatches", mismatched))
        if items
    ]
    if problems:
        raise OfficialCheckpointError("the checkpoint does not match the UniFilter model: " + "; ".join(problems))


# -- vision tower ----------------------------------------------------------------------------------------------
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
    p = _VISION_PREFIX
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
    """The SigLIP vision config of an official checkpoint (SPEC.md section 1).

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
    # The attention-pool head is never used for scoring (SPEC.md section 2.1).
    return SiglipVisionConfig(**values, vision_use_head=False)


# -- text config, tokenizer, processor -------------------------------------------------------------------------
def build_text_config(official_config: dict) -> PreTrainedConfig:
    """The decoder config (Qwen2 / Qwen3) from the LLM fields of an official `config.json`.

    Example:
        >>> build_text_config({"model_type": "llava_qwen3", "hidden_size": 64, "head_dim": 16}).model_type
        'qwen3'
    """
    model_type = official_config.get("model_type")
    if model_type not in OFFICIAL_MODEL_TYPES:
        raise OfficialCheckpointError(
            f"model_type {model_type!r} is not an official UniFilter checkpoint ({sorted(OFFICIAL_MODEL_TYPES)})"
        )
    config_class = CONFIG_MAPPING[OFFICIAL_MODEL_TYPES[model_type]]
    fields = {f.name for f in dataclasses.fields(config_class)}
    kwargs = {k: v for k, v in official_config.items() if k in fields and k not in _TEXT_META_KEYS}
    # transformers 5 folds the legacy rope keys into `rope_parameters` itself.
    for key in ("rope_theta", "rope_scaling"):
        if official_config.get(key) is not None and "rope_parameters" not in kwargs:
            kwargs[key] = official_config[key]
    return config_class(**kwargs)


def load_official_tokenizer(folder: Path):
    """The checkpoint's own tokenizer, with `<s>` as BOS when it has no BOS but knows `<s>` (SPEC.md 3).

    The official training code registers `<s>` as an added special token and prepends it as BOS; Qwen
    tokenizers declare no BOS of their own. No id is ever assumed: it is looked up in the tokenizer.
    """
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.bos_token is None and "<s>" in tokenizer.get_vocab():
        tokenizer.bos_token = "<s>"
    if tokenizer.bos_token_id is None:
        logger.warning("%s: the tokenizer has no BOS token and no `<s>`; prompts get no BOS", folder)
    if tokenizer.eos_token_id is None:
        logger.warning("%s: the tokenizer has no EOS token; prompts get no EOS", folder)
    return tokenizer


def build_image_processor(image_size: int, tower_folder: Path | None = None):
    """The SigLIP image processor (PIL backend): resize to `image_size` (bicubic), 1/255, mean/std 0.5.

    A local tower folder's `preprocessor_config.json` supplies the normalization and resampling when present.
    """
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    settings: dict[str, Any] = {}
    preprocessor = tower_folder / "preprocessor_config.json" if tower_folder else None
    if preprocessor is not None and preprocessor.is_file():
        saved = json.loads(preprocessor.read_text())
        settings = {k: saved[k] for k in ("image_mean", "image_std", "resample", "rescale_factor") if k in saved}
    return SiglipImageProcessorPil(size={"height": image_size, "width": image_size}, **settings)


def build_processor(
    folder: Path,
    official_config: dict,
    vision_config: SiglipVisionConfig,
    *,
    caption_max_ids: int | None = None,
    pad_to_square: bool = False,
) -> UniFilterProcessor:
    """The processor reproducing the official scorer's inputs (prompts, BOS/EOS, direct resize).

    Args:
        caption_max_ids: `OFFICIAL_CAPTION_MAX_IDS` (75) reproduces the official caption scorer's cut of the
            unspliced ids, which can drop EOS on long captions; None (default) keeps whole captions.
        pad_to_square: pad images to a square before resizing, as in official *training*; the official
            scoring scripts resize directly (False).
    """
    tokenizer = load_official_tokenizer(folder)
    image_processor = build_image_processor(
        vision_config.image_size, local_tower_folder(official_config.get("mm_vision_tower"), folder)
    )
    return UniFilterProcessor(
        image_processor,
        tokenizer,
        num_image_tokens=int(official_config.get("mm_num_image_tokens", 144)),
        add_bos_token=tokenizer.bos_token_id is not None,
        add_eos_token=tokenizer.eos_token_id is not None,
        pad_to_square=pad_to_square,
        max_length=int(official_config.get("tokenizer_model_max_length", 8192)),
        caption_max_ids=caption_max_ids,
    )


def _check_official_settings(official_config: dict, vision_config: SiglipVisionConfig) -> None:
    """Refuse settings this conversion does not reproduce rather than score differently."""
    checks = {
        "mm_projector_type": ("aapool_mlp",),
        "mm_vision_select_feature": ("patch", None),
    }
    for key, allowed in checks.items():
        if official_config.get(key) not in allowed:
            raise OfficialCheckpointError(f"unsupported {key}={official_config.get(key)!r} (supported: {allowed[0]!r})")
    width = official_config.get("mm_hidden_size")
    if width is not None and width != vision_config.hidden_size:
        raise OfficialCheckpointError(f"mm_hidden_size {width} != vision tower width {vision_config.hidden_size}")


def build_config(
    official_config: dict, vision_config: SiglipVisionConfig, image_token_id: int, num_labels: int
) -> UniFilterConfig:
    """The native config of an official checkpoint."""
    _check_official_settings(official_config, vision_config)
    return UniFilterConfig(
        vision_config=vision_config,
        text_config=build_text_config(official_config),
        num_image_tokens=int(official_config.get("mm_num_image_tokens", 144)),
        vision_feature_layer=int(official_config.get("mm_vision_select_layer", -1)),
        projector_hidden_act="gelu",  # nn.GELU() in the official projector: exact (erf)
        image_token_id=image_token_id,
        num_labels=num_labels,
    )


# -- conversion ------------------------------------------------------------------------------------------------
@dataclass
class ConvertedCheckpoint:
    """An official checkpoint mapped to the native layout, in memory.

    Attributes:
        config: the native [`UniFilterConfig`].
        state_dict: native names -> tensors (unused tensors dropped, values untouched); empty when only the
            processor was requested.
        processor: the [`UniFilterProcessor`] with the official scorer's settings.
        source: the source as given (Hub id or path); `folder` is where its files were read.
        official_config: the source `config.json`.
    """

    config: UniFilterConfig
    state_dict: dict[str, torch.Tensor]
    processor: UniFilterProcessor
    source: str
    folder: Path
    official_config: dict = field(default_factory=dict)

    def to_model(self, **from_pretrained_kwargs) -> UniFilterForQualityScoring:
        """Instantiate the native model from the converted tensors (`dtype`, `device_map`, ... pass through)."""
        model, info = UniFilterForQualityScoring.from_pretrained(
            None, config=self.config, state_dict=self.state_dict, output_loading_info=True, **from_pretrained_kwargs
        )
        leftovers = {k: v for k, v in info.items() if k != "error_msgs" and v}
        if leftovers:  # check_state_dict already passed; this guards against silent random init regardless
            raise OfficialCheckpointError(f"loading the converted weights left {leftovers}")
        model.config.name_or_path = self.source
        return model.eval()


def convert_official(
    src: str | os.PathLike,
    *,
    vision_config: str | os.PathLike | dict | PreTrainedConfig | None = None,
    allow_pickle: bool = False,
    caption_max_ids: int | None = None,
    pad_to_square: bool = False,
    load_weights: bool = True,
    subfolder: str = "",
    **hub_kwargs,
) -> ConvertedCheckpoint:
    """Read an official checkpoint (local folder or Hub id) and map it to the native layout in memory.

    Args:
        src: a local folder or a Hub id such as `weizhiwang/UniFilter-Qwen2.5-1.5B`.
        vision_config: explicit SigLIP settings (dict, config, path to a config.json, known tower name or a
            JSON string); needed only when `mm_vision_tower` is neither local nor a known tower.
        allow_pickle: accept `*.bin` pickle weights when the checkpoint has no safetensors.
        caption_max_ids / pad_to_square: processor options, see [`build_processor`].
        load_weights: False builds config and processor only (reads weight shapes when available locally).
        hub_kwargs: `revision`, `token`, `cache_dir`, `local_files_only`, ... for Hub ids.

    Example:
        >>> converted = convert_official("weizhiwang/UniFilter-Qwen3-0.6B")  # doctest: +SKIP
        >>> model, processor = converted.to_model(), converted.processor  # doctest: +SKIP
    """
    folder = resolve_source(
        src, weights=load_weights, allow_pickle=allow_pickle, subfolder=subfolder, **hub_kwargs
    )
    official_config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if not is_official_config(official_config):
        raise OfficialCheckpointError(
            f"{src}: model_type {official_config.get('model_type')!r} is not an official UniFilter checkpoint "
            f"({sorted(OFFICIAL_MODEL_TYPES)})"
        )
    if load_weights:
        official_sd = load_official_state_dict(folder, allow_pickle=allow_pickle)
        shapes = {k: tuple(v.shape) for k, v in official_sd.items()}
    else:
        official_sd, shapes = {}, weight_shapes(folder)
    vision = resolve_vision_config(official_config, folder, shapes, vision_config)
    processor = build_processor(
        folder, official_config, vision, caption_max_ids=caption_max_ids, pad_to_square=pad_to_square
    )
    # The head's rows are the number of labels; the config is the fallback when no weights are at hand.
    if shapes and "score.weight" in shapes:
        num_labels = shapes["score.weight"][0]
    else:
        num_labels = _config_num_labels(official_config)
    config = build_config(official_config, vision, processor.image_token_id, num_labels)
    state_dict = rename_state_dict(official_sd)
    if load_weights:
        check_state_dict(config, {k: tuple(v.shape) for k, v in state_dict.items()})
    elif shapes is not None:
        check_state_dict(config, rename_state_dict(shapes))
    return ConvertedCheckpoint(config, state_dict, processor, str(src), folder, official_config)


def _config_num_labels(official_config: dict) -> int:
    if official_config.get("num_labels"):
        return int(official_config["num_labels"])
    return len(official_config.get("id2label") or {0: "LABEL_0"})


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


# -- model card ------------------------------------------------------------------------------------------------
def source_license(folder: Path) -> str | None:
    """The `license` of the source README's front matter, if any."""
    from huggingface_hub.repocard import metadata_load

    readme = folder / "README.md"
    if not readme.is_file():
        return None
    try:
        license_id = (metadata_load(readme) or {}).get("license")
    except Exception:  # malformed front matter: treat as absent
        return None
    return str(license_id) if license_id else None


def write_model_card(
    converted: ConvertedCheckpoint, dst: Path, source_id: str | None = None, dtype: torch.dtype | None = None
) -> Path:
    """Render `model_cards/converted_official.md` to `dst/README.md` (offline, deterministic)."""
    from huggingface_hub import ModelCard, ModelCardData

    source = source_id or (converted.source if not _is_local(converted.source) else Path(converted.source).name)
    is_hub_id = bool(source_id) or not _is_local(converted.source)
    license_id = source_license(converted.folder)
    vision = converted.config.vision_config
    tokenizer = converted.processor.tokenizer
    data = ModelCardData(
        license=license_id or "apache-2.0",
        library_name="transformers",
        pipeline_tag="image-text-to-text",
        base_model=[source] if is_hub_id else None,
        tags=["unifilter", "unifilter-hf", "data-filtering", "multimodal-quality-scoring"],
    )
    template = _CARD_TEMPLATE if _CARD_TEMPLATE.is_file() else None
    card = ModelCard.from_template(
        data,
        template_path=str(template) if template else None,
        template_str=None if template else _FALLBACK_CARD,
        model_id=dst.name,
        source=source,
        source_is_hub=is_hub_id,
        source_model_type=converted.official_config.get("model_type"),
        license_id=license_id or "apache-2.0",
        license_assumed=license_id is None,
        vision_tower=converted.official_config.get("mm_vision_tower"),
        vision=vision,
        text_model_type=converted.config.text_config.model_type,
        num_labels=converted.config.num_labels,
        num_image_tokens=converted.config.num_image_tokens,
        bos_token=tokenizer.bos_token,
        eos_token=tokenizer.eos_token,
        caption_max_ids=converted.processor.caption_max_ids,
        pad_to_square=converted.processor.pad_to_square,
        max_length=converted.processor.max_length,
        dtype=str(dtype).replace("torch.", "") if dtype else "float32",
    )
    path = dst / "README.md"
    card.save(path)
    return path


_FALLBACK_CARD = """---
{{ card_data }}
---
# {{ model_id }}

Converted with unifilter-hf from the official UniFilter checkpoint `{{ source }}` (license: {{ license_id }}).
"""


# -- CLI -------------------------------------------------------------------------------------------------------
def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `convert` subcommand (`unifilter-hf convert SRC DST`).

    Example:
        >>> parser = argparse.ArgumentParser(prog="unifilter-hf")
        >>> _ = register(parser.add_subparsers(dest="command"))
        >>> parser.parse_args(["convert", "weizhiwang/UniFilter-Qwen3-0.6B", "out"]).dst
        'out'
    """
    parser = subparsers.add_parser(
        "convert",
        help="convert an official UniFilter checkpoint (LLaVA layout) to a native unifilter-hf checkpoint",
        description="Convert an official UniFilter checkpoint (local folder or Hub id, model_type llava_qwen / "
        "llava_qwen3) to a native unifilter-hf checkpoint with exact score parity.",
    )
    parser.add_argument("src", help="local folder or Hub id of the official checkpoint")
    parser.add_argument("dst", help="output folder for the native checkpoint")
    parser.add_argument(
        "--vision-config",
        help="SigLIP settings when mm_vision_tower is neither a local folder nor a known tower: a JSON object "
        "(e.g. '{\"num_attention_heads\": 16, \"image_size\": 384}'), a path to a config.json, or a known tower id",
    )
    parser.add_argument(
        "--official-caption-cut",
        action="store_true",
        help=f"cut caption ids to {OFFICIAL_CAPTION_MAX_IDS} as the official caption scorer does (can drop EOS on "
        "long captions; off by default)",
    )
    parser.add_argument(
        "--pad-to-square",
        action="store_true",
        help="pad images to a square before resizing (official training); the official scorer resizes directly",
    )
    parser.add_argument(
        "--allow-pickle", action="store_true", help="accept *.bin pickle weights (trusted sources only)"
    )
    parser.add_argument("--revision", help="Hub revision of SRC")
    parser.add_argument("--source-id", help="Hub id to name in the model card when SRC is a local copy")
    parser.set_defaults(func=run_convert)
    return parser


def run_convert(args: argparse.Namespace) -> int:
    """Entry point of `unifilter-hf convert`; returns the exit status."""
    try:
        dst = convert_official_checkpoint(
            args.src,
            args.dst,
            source_id=args.source_id,
            vision_config=args.vision_config,
            allow_pickle=args.allow_pickle,
            caption_max_ids=OFFICIAL_CAPTION_MAX_IDS if args.official_caption_cut else None,
            pad_to_square=args.pad_to_square,
            revision=args.revision,
        )
    except OfficialCheckpointError as err:
        print(f"unifilter-hf convert: error: {err}", file=sys.stderr)
        return 2
    print(f"converted {args.src} -> {dst}")
    return 0


__all__ = [
    "KNOWN_VISION_TOWERS",
    "OFFICIAL_CAPTION_MAX_IDS",
    "OFFICIAL_MODEL_TYPES",
    "ConvertedCheckpoint",
    "OfficialCheckpointError",
    "convert_official",
    "convert_official_checkpoint",
    "is_official_config",
    "read_official_config",
    "register",
    "resolve_vision_config",
]
