"""The model card of a converted official checkpoint, rendered offline from `model_cards/converted_official.md`."""

from __future__ import annotations

from pathlib import Path

import torch

from ..sources import source_license
from .conversion import ConvertedCheckpoint
from .layout import is_local

_CARD_TEMPLATE = Path(__file__).resolve().parents[1] / "model_cards" / "converted_official.md"  # in the wheel too


def write_model_card(
    converted: ConvertedCheckpoint, dst: Path, source_id: str | None = None, dtype: torch.dtype | None = None
) -> Path:
    """Render `model_cards/converted_official.md` to `dst/README.md` (offline, deterministic)."""
    from huggingface_hub import ModelCard, ModelCardData

    source = source_id or (converted.source if not is_local(converted.source) else Path(converted.source).name)
    is_hub_id = bool(source_id) or not is_local(converted.source)
    license_id = source_license(converted.folder)  # the one README front-matter reader
    vision = converted.config.vision_config
    tokenizer = converted.processor.tokenizer
    data = ModelCardData(
        license=license_id or "apache-2.0",
        library_name="transformers",
        # No Hub task fits quality scoring (a score for an image-text input); the tag below names it.
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


__all__ = ["write_model_card"]
