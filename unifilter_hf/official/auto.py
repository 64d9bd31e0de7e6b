"""Load official UniFilter checkpoints (LLaVA layout) directly, converting them in memory.

Once `register_official_auto_classes` has run (on `import unifilter_hf`), `AutoModel`,
`AutoModelForSequenceClassification`, `AutoProcessor` and the `multimodal-quality-scoring` pipeline accept an
official checkpoint (`model_type` `llava_qwen` / `llava_qwen3`, a local folder or a Hub id) as if it were a
native one. `UniFilterForQualityScoring.from_pretrained` does not: it refuses a foreign `model_type` with a
message naming these entry points. Run `unifilter-hf convert` once to skip the conversion on later loads.

Example:
    >>> from unifilter_hf.official import load_official
    >>> model, processor = load_official("weizhiwang/UniFilter-Qwen2.5-1.5B")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os

from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoProcessor, PreTrainedConfig

from ..processing_unifilter import UniFilterProcessor
from .conversion import convert_official
from .layout import HUB_KWARGS, is_official_config, read_official_config

logger = logging.getLogger(__name__)

# Options of the conversion itself; everything else goes to `from_pretrained` (dtype, device_map, ...).
_CONVERSION_KWARGS = ("vision_config", "allow_pickle", "caption_max_ids", "pad_to_square", "subfolder")
# Bookkeeping kwargs that the Auto classes and pipelines add; meaningless for an in-memory conversion.
_DROPPED_KWARGS = ("config", "trust_remote_code", "_from_auto", "_from_pipeline", "adapter_kwargs", "code_revision")


class OfficialUniFilterQwen2Config(PreTrainedConfig):
    """The raw `config.json` of an official `llava_qwen` checkpoint (Qwen2 fields plus LLaVA `mm_*` keys).

    Registered with `AutoConfig` only so that the Auto classes and pipelines can route such checkpoints to
    the in-memory conversion; it is never used to build a model.
    """

    model_type = "llava_qwen"

    def __post_init__(self, **kwargs):
        # Official configs carry `rope_scaling: null`; setting that legacy key only emits a FutureWarning.
        if "rope_scaling" in kwargs and kwargs["rope_scaling"] is None:
            del kwargs["rope_scaling"]
        super().__post_init__(**kwargs)


class OfficialUniFilterQwen3Config(OfficialUniFilterQwen2Config):
    """The raw `config.json` of an official `llava_qwen3` checkpoint (see [`OfficialUniFilterQwen2Config`])."""

    model_type = "llava_qwen3"


OFFICIAL_CONFIG_CLASSES = (OfficialUniFilterQwen2Config, OfficialUniFilterQwen3Config)


def is_official_checkpoint(pretrained_model_name_or_path: str | os.PathLike | None, **kwargs) -> bool:
    """True when a local folder or Hub repo holds an official UniFilter checkpoint.

    Cheap and never raises: a native `config=` short-cuts the check, otherwise `config.json` is read (for a
    Hub id through the cache, as `from_pretrained` itself would). Extra kwargs are ignored, so callers can
    pass their `from_pretrained` kwargs as they are.

    Example:
        >>> is_official_checkpoint("weizhiwang/UniFilter-Qwen3-0.6B")  # doctest: +SKIP
        True
        >>> is_official_checkpoint(None)
        False
    """
    if pretrained_model_name_or_path is None:
        return False
    config = kwargs.get("config")
    if isinstance(config, PreTrainedConfig):
        return is_official_config(config)
    hub = {k: kwargs[k] for k in HUB_KWARGS if k in kwargs}
    raw = read_official_config(pretrained_model_name_or_path, subfolder=kwargs.get("subfolder") or "", **hub)
    return is_official_config(raw)


def _split_kwargs(kwargs: dict) -> tuple[dict, dict]:
    """(conversion + hub kwargs, from_pretrained kwargs), with Auto/pipeline bookkeeping dropped."""
    kwargs = dict(kwargs)
    config = kwargs.get("config")
    if config is not None and not is_official_config(config):
        raise ValueError("`config=` cannot be combined with an official UniFilter checkpoint: it is converted as is")
    for name in _DROPPED_KWARGS:
        kwargs.pop(name, None)
    conversion = {k: kwargs.pop(k) for k in _CONVERSION_KWARGS + HUB_KWARGS if k in kwargs}
    return conversion, kwargs


def _log_conversion(source) -> None:
    logger.warning(
        "%s is an official UniFilter checkpoint (LLaVA layout): converting it in memory; "
        "`unifilter-hf convert %s DST` saves a native copy that loads without this step.",
        source,
        source,
    )


def load_official_model(pretrained_model_name_or_path: str | os.PathLike, *model_args, **kwargs):
    """An official checkpoint as a native [`UniFilterForQualityScoring`] (eval mode), converted in memory.

    Args:
        pretrained_model_name_or_path: local folder or Hub id of an official checkpoint.
        kwargs: conversion options (`vision_config`, `allow_pickle`), Hub options (`revision`, `token`,
            `cache_dir`, `local_files_only`, ...) and `from_pretrained` options (`dtype`, `device_map`,
            `attn_implementation`, ...). Processor-only options are accepted and ignored.

    Example:
        >>> model = load_official_model("weizhiwang/UniFilter-Qwen3-0.6B", dtype=torch.float32)  # doctest: +SKIP
    """
    if model_args:
        raise TypeError("official UniFilter checkpoints take no positional model arguments")
    conversion, model_kwargs = _split_kwargs(kwargs)
    for processor_only in ("caption_max_ids", "pad_to_square"):
        conversion.pop(processor_only, None)
    _log_conversion(pretrained_model_name_or_path)
    converted = convert_official(pretrained_model_name_or_path, **conversion)
    return converted.to_model(**model_kwargs)


def load_official_processor(pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> UniFilterProcessor:
    """The [`UniFilterProcessor`] of an official checkpoint (tokenizer and settings only; no weights read).

    Args:
        kwargs: `caption_max_ids`, `pad_to_square`, `vision_config` and Hub options; others are ignored.

    Example:
        >>> processor = load_official_processor("weizhiwang/UniFilter-Qwen3-0.6B")  # doctest: +SKIP
    """
    conversion, _ = _split_kwargs(kwargs)
    conversion.pop("allow_pickle", None)
    return convert_official(pretrained_model_name_or_path, load_weights=False, **conversion).processor


def load_official(pretrained_model_name_or_path: str | os.PathLike, **kwargs):
    """`(model, processor)` of an official checkpoint, converted in memory in one pass.

    Example:
        >>> model, processor = load_official("weizhiwang/UniFilter-Qwen2.5-1.5B")  # doctest: +SKIP
    """
    conversion, model_kwargs = _split_kwargs(kwargs)
    _log_conversion(pretrained_model_name_or_path)
    converted = convert_official(pretrained_model_name_or_path, **conversion)
    return converted.to_model(**model_kwargs), converted.processor


# -- Auto-class routing ----------------------------------------------------------------------------------------
class _OfficialModelLoader:
    """Stand-in registered with the Auto model classes: `from_pretrained` returns a converted native model."""

    config_class: type[PreTrainedConfig]

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        return load_official_model(pretrained_model_name_or_path, *model_args, **kwargs)


class _OfficialProcessorLoader:
    """Stand-in registered with `AutoProcessor`: `from_pretrained` returns a native processor."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        return load_official_processor(pretrained_model_name_or_path, **kwargs)


def _model_loader(config_class: type[PreTrainedConfig]) -> type:
    # The Auto registry requires `model_class.config_class` to match the config class by name.
    return type(f"{config_class.__name__}Loader", (_OfficialModelLoader,), {"config_class": config_class})


def register_official_auto_classes() -> None:
    """Route `llava_qwen` / `llava_qwen3` checkpoints through the Auto classes to the in-memory conversion.

    Called when `unifilter_hf` is imported. Idempotent.

    Example:
        >>> register_official_auto_classes()
        >>> AutoConfig.for_model("llava_qwen").model_type
        'llava_qwen'
    """
    for config_class in OFFICIAL_CONFIG_CLASSES:
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        loader = _model_loader(config_class)
        AutoModel.register(config_class, loader, exist_ok=True)
        AutoModelForSequenceClassification.register(config_class, loader, exist_ok=True)
        AutoProcessor.register(config_class, _OfficialProcessorLoader, exist_ok=True)


__all__ = [
    "OFFICIAL_CONFIG_CLASSES",
    "OfficialUniFilterQwen2Config",
    "OfficialUniFilterQwen3Config",
    "is_official_checkpoint",
    "load_official",
    "load_official_model",
    "load_official_processor",
    "register_official_auto_classes",
]
