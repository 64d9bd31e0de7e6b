"""Convert an official UniFilter checkpoint (LLaVA layout) to the native layout, in memory or to a folder.

The official release (`weizhiwang/UniFilter-Qwen2.5-1.5B`, `weizhiwang/UniFilter-Qwen3-0.6B`, `model_type`
`llava_qwen` / `llava_qwen3`) stores one `model.safetensors` with the LLM, projector, score head and SigLIP
tower under LLaVA names, an LLM `config.json` with extra `mm_*` keys, and the tokenizer files
(docs/official_checkpoints.md). This module maps that layout onto [`UniFilterForQualityScoring`] and
[`UniFilterProcessor`] with exact parity.

Example:
    >>> from unifilter_hf.official import convert_official_checkpoint
    >>> convert_official_checkpoint("weizhiwang/UniFilter-Qwen2.5-1.5B", "unifilter-qwen2.5-1.5b")  # doctest: +SKIP
    PosixPath('unifilter-qwen2.5-1.5b')
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import snapshot_download
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import CONFIG_MAPPING, AutoTokenizer, PreTrainedConfig, SiglipVisionConfig

from ..configuration_unifilter import UniFilterConfig
from ..modeling_unifilter import UniFilterForQualityScoring
from ..processing_unifilter import UniFilterProcessor
from .layout import (
    OFFICIAL_MODEL_TYPES,
    OfficialCheckpointError,
    hub_options,
    is_local,
    is_official_config,
    official_name,
    rename_state_dict,
)
from .vision_tower import local_tower_folder, resolve_vision_config

logger = logging.getLogger(__name__)

# Keys of an official config.json that are not the decoder's own settings.
_TEXT_META_KEYS = {
    "architectures", "model_type", "id2label", "label2id", "num_labels", "transformers_version", "torch_dtype",
    "dtype", "auto_map", "problem_type", "_name_or_path", "rope_theta", "rope_scaling",
}
_NON_WEIGHT_PATTERNS = ["*.json", "*.txt", "*.model", "*.tiktoken", "*.jinja", "README.md", "LICENSE*"]


def resolve_source(
    src: str | os.PathLike, *, weights: bool = True, allow_pickle: bool = False, subfolder: str = "", **hub_kwargs
) -> Path:
    """A local folder holding the checkpoint: `src` itself, or a Hub snapshot (weights only when asked).

    Example:
        >>> resolve_source("weizhiwang/UniFilter-Qwen2.5-1.5B", weights=False)  # doctest: +SKIP
        PosixPath('/root/.cache/huggingface/hub/models--weizhiwang--UniFilter-Qwen2.5-1.5B/snapshots/...')
    """
    if is_local(src):
        folder = Path(src).expanduser()
    else:
        patterns = list(_NON_WEIGHT_PATTERNS)
        if weights:
            patterns += ["*.safetensors"] + (["*.bin"] if allow_pickle else [])
        try:
            folder = Path(snapshot_download(str(src), allow_patterns=patterns, **hub_options(hub_kwargs)))
        except Exception as err:  # offline, unknown repo, gated, network: one clear message, cause chained
            raise OfficialCheckpointError(
                f"{src} is not a local folder and its Hub snapshot could not be fetched: {type(err).__name__}: {err}"
            ) from err
    folder = folder / subfolder
    if not (folder / "config.json").is_file():
        raise OfficialCheckpointError(f"{src}: no config.json found in {folder}")
    return folder


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
    """The checkpoint's own tokenizer, with `<s>` as BOS when it has no BOS but knows `<s>` (docs/model.md, item 5).

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


__all__ = [
    "ConvertedCheckpoint",
    "build_processor",
    "convert_official",
    "load_official_state_dict",
]
