"""Build the processor and the model for training, freeze the vision tower, and wrap the LLM with LoRA.

LoRA targets are a regular expression anchored on ``language_model``: PEFT matches a plain list of names as
suffixes, and SigLIP's attention has the same ``q_proj``/``k_proj``/``v_proj`` names.
The projector and the score head are fully trained (``modules_to_save``).

Example:
    >>> lora_target_regex(["q_proj", "v_proj"])
    '^language_model\\\\..*\\\\.(q_proj|v_proj)$'
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from tokenizers import AddedToken
from transformers import CONFIG_MAPPING, AutoModel, AutoTokenizer, SiglipVisionConfig

from ..configuration_unifilter import UniFilterConfig
from ..modeling_unifilter import UniFilterForQualityScoring
from ..processing_unifilter import UniFilterProcessor
from .arguments import UniFilterModelConfig

OFFICIAL_BOS = "<s>"  # the BOS the official training registers for tokenizers that have none (Qwen)


def lora_target_regex(names: Sequence[str]) -> str:
    """A PEFT ``target_modules`` regex (matched against full module names) for ``names`` inside the LLM only."""
    return r"^language_model\..*\.(" + "|".join(re.escape(n) for n in names) + r")$"


def add_official_bos(tokenizer) -> int:
    """Give a tokenizer without BOS (Qwen) ``<s>`` as an added special token and as BOS; return tokens added.

    This is what the official training code does; the processor then prepends it to every record.
    """
    if tokenizer.bos_token is not None:
        return 0
    added = tokenizer.add_tokens([AddedToken(OFFICIAL_BOS, special=True, normalized=False)], special_tokens=True)
    tokenizer.bos_token = OFFICIAL_BOS
    return added


def build_tokenizer(args: UniFilterModelConfig):
    """The tokenizer named by ``tokenizer_name_or_path`` (``shapes_world`` is generated offline).

    A Hub/folder tokenizer without BOS gets the official ``<s>`` BOS (``official_bos``), before the processor
    adds its image token, so that ``<s>`` takes the id the official training gave it.
    """
    if args.tokenizer_name_or_path == "shapes_world":
        from ..synthesis.shapes_world_tokenizer import shapes_world_tokenizer

        return shapes_world_tokenizer()
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer_name_or_path)
    if args.official_bos:
        add_official_bos(tokenizer)
    return tokenizer


def build_processor(args: UniFilterModelConfig) -> UniFilterProcessor:
    """A UniFilter processor for the recipe's image size, image tokens and tokenizer.

    From a checkpoint the saved processor is used, with the recipe's ``pad_to_square`` (the official training
    pads; a converted official checkpoint saves ``False``, its scorers' setting).
    """
    if args.model_name_or_path:
        processor = UniFilterProcessor.from_pretrained(args.model_name_or_path)
        processor.pad_to_square = args.pad_to_square
        return processor
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    size = args.vision_image_size
    return UniFilterProcessor(
        SiglipImageProcessorPil(size={"height": size, "width": size}), build_tokenizer(args),
        num_image_tokens=args.num_image_tokens, max_length=args.max_length, pad_to_square=args.pad_to_square,
    )


def build_config(args: UniFilterModelConfig, image_token_id: int | None = None,
                 vocab_size: int | None = None) -> UniFilterConfig:
    """The UniFilter config from the recipe's architecture fields."""
    vision = SiglipVisionConfig(
        hidden_size=args.vision_hidden_size, intermediate_size=args.vision_intermediate_size,
        num_hidden_layers=args.vision_num_layers, num_attention_heads=args.vision_num_heads,
        patch_size=args.vision_patch_size, image_size=args.vision_image_size, vision_use_head=False,
    )
    text = CONFIG_MAPPING[args.text_model_type](
        hidden_size=args.text_hidden_size, intermediate_size=args.text_intermediate_size,
        num_hidden_layers=args.text_num_layers, num_attention_heads=args.text_num_heads,
        num_key_value_heads=args.text_num_kv_heads, vocab_size=args.text_vocab_size or vocab_size,
        max_position_embeddings=args.text_max_position_embeddings, rope_theta=args.text_rope_theta,
        tie_word_embeddings=args.text_tie_word_embeddings,
    )
    extra = {}
    if (args.image_token_id or image_token_id) is not None:
        extra["image_token_id"] = args.image_token_id or image_token_id
    return UniFilterConfig(vision_config=vision, text_config=text, num_image_tokens=args.num_image_tokens,
                           num_labels=args.num_labels, **extra)


def build_model(args: UniFilterModelConfig, processor: UniFilterProcessor | None = None,
                device: str | torch.device | None = None) -> UniFilterForQualityScoring:
    """The model to train: a checkpoint, or built from the architecture (pretrained backbones loaded if named).

    ``device="meta"`` builds the structure without memory (recipe validation); no weights are loaded then.
    """
    if args.model_name_or_path:
        model = UniFilterForQualityScoring.from_pretrained(args.model_name_or_path, num_labels=args.num_labels)
    else:
        token_id = processor.image_token_id if processor is not None else None
        vocab = len(processor.tokenizer) if processor is not None else None
        config = build_config(args, token_id, vocab)
        with torch.device(device or "cpu"):
            model = UniFilterForQualityScoring(config)
        if str(device) != "meta":
            _load_backbones(model, args)
            if args.text_weights and processor is not None:
                resize_for_official_bos(model, processor.tokenizer)
            if args.projector_weights:  # stage 2 from a stage-1 alignment
                from .stage1 import load_projector

                load_projector(model, args.projector_weights)
    if args.freeze_vision:
        model.vision_tower.requires_grad_(False)
    return model


def _load_backbones(model: UniFilterForQualityScoring, args: UniFilterModelConfig) -> None:
    # strict loading: the recipe's sizes must be the backbone's sizes.
    if args.vision_weights:
        tower = AutoModel.from_pretrained(args.vision_weights)
        tower = getattr(tower, "vision_model", tower)  # a full SigLIP checkpoint holds text and vision
        state = {k: v for k, v in tower.state_dict().items() if not k.startswith("head.")}
        model.vision_tower.vision_model.load_state_dict(state)
    if args.text_weights:
        model.language_model.load_state_dict(AutoModel.from_pretrained(args.text_weights).state_dict())


def resize_for_official_bos(model: UniFilterForQualityScoring, tokenizer) -> bool:
    """Resize the LLM embeddings for an added ``<s>`` BOS the way the official training does.

    Official (LLaVA's ``smart_tokenizer_and_embedding_resize``): resize to the tokenizer length (``<s>`` is its
    last token there, since the image token is not a vocabulary entry) and set the new row to the mean of the
    others. Does nothing when the BOS is not an added ``<s>`` (a tokenizer with its own BOS).
    """
    bos = tokenizer.bos_token_id
    if tokenizer.bos_token != OFFICIAL_BOS or bos is None or bos < tokenizer.vocab_size:
        return False
    embeddings = model.language_model.resize_token_embeddings(bos + 1, mean_resizing=False)
    with torch.no_grad():
        embeddings.weight[bos] = embeddings.weight[:bos].mean(0)
    model.config.text_config.vocab_size = bos + 1
    return True


def apply_lora(model: UniFilterForQualityScoring, args: UniFilterModelConfig):
    """Wrap with LoRA on the LLM projections when ``use_peft``; otherwise return the model (full fine-tuning).

    Uses TRL's ``get_peft_config`` for the LoRA settings, then anchors the targets on the LLM.
    """
    if not args.use_peft:
        return model
    from peft import get_peft_model
    from trl import get_peft_config

    config = get_peft_config(args)
    config.target_modules = lora_target_regex(args.lora_target_modules)
    config.task_type = None  # SEQ_CLS would add "classifier"/"score" wrappers we do not need
    return get_peft_model(model, config)


def parameter_counts(model: torch.nn.Module) -> dict[str, int]:
    """Total and trainable parameter counts (works on the meta device)."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable}
