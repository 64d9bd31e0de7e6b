"""Everything about the official UniFilter checkpoints (LLaVA layout): detect, convert, route, card.

The native model and processor know nothing of this format. `import unifilter_hf` registers the official
`model_type`s with the Auto classes, so `AutoModelForSequenceClassification`, `AutoProcessor` and
`pipeline("multimodal-quality-scoring")` load official ids and folders directly (converted in memory);
`unifilter-hf convert SRC DST` saves a native copy once.

Module map: `layout` (detection, name maps; a leaf), `vision_tower` (the unstored SigLIP config),
`conversion` (weights, config, processor), `model_card`, `saving` (a native folder), `auto` (Auto-class
routing, `load_official`).

Example:
    >>> from unifilter_hf.official import load_official
    >>> model, processor = load_official("weizhiwang/UniFilter-Qwen2.5-1.5B")  # doctest: +SKIP
"""

from .auto import (
    is_official_checkpoint,
    load_official,
    load_official_model,
    load_official_processor,
    register_official_auto_classes,
)
from .conversion import ConvertedCheckpoint, convert_official
from .layout import OFFICIAL_CAPTION_MAX_IDS, OFFICIAL_MODEL_TYPES, OfficialCheckpointError, is_official_config
from .saving import convert_official_checkpoint
from .vision_tower import KNOWN_VISION_TOWERS

__all__ = [
    "KNOWN_VISION_TOWERS",
    "OFFICIAL_CAPTION_MAX_IDS",
    "OFFICIAL_MODEL_TYPES",
    "ConvertedCheckpoint",
    "OfficialCheckpointError",
    "convert_official",
    "convert_official_checkpoint",
    "is_official_checkpoint",
    "is_official_config",
    "load_official",
    "load_official_model",
    "load_official_processor",
    "register_official_auto_classes",
]
