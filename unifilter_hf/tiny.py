"""Tiny random UniFilter models built fully offline, for tests, demos and benchmarks.

Nothing here downloads: the tokenizer is a byte-level BPE trained in memory on a few sentences, and the
model is randomly initialised from a small config. Scores from these models are meaningless; they exercise
the real code path.

Example:
    >>> model, processor = tiny_model_and_processor()
    >>> model.config.num_image_tokens
    16
"""

from __future__ import annotations

import functools

# -- tiny tokenizer ------------------------------------------------------------------------------------------
_CORPUS = [
    "A cup of coffee with a spoon on a saucer.",
    "An orange tabby cat looks at the camera.",
    "An astronaut in a white suit holds a helmet in front of a flag.",
    "A rocket stands on the launch pad under a blue sky.",
    "A temple roof among green trees in China.",
    "A pink flower with yellow stamens, seen up close.",
    "The quick brown fox jumps over the lazy dog. 0123456789",
    "We stopped for coffee. A short trip report. Flowers and a cat.",
    "image placeholder <> - . , ! ? : ; ' \" ( ) \n",
]


@functools.cache
def _tokenizer_json(vocab_size: int) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<unk>", "<pad>", "<s>", "</s>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(_CORPUS * 4, trainer)
    return tok.to_str()


def tiny_tokenizer(with_bos: bool = True, vocab_size: int = 320):
    """A byte-level BPE tokenizer trained in memory (offline); `<s>`/`</s>`/`<pad>` like the official one.

    ``with_bos=False`` mimics a Qwen tokenizer, which has no BOS token of its own.
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_tokenizer_json(vocab_size)),
        bos_token="<s>" if with_bos else None,
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        padding_side="right",
    )


# -- tiny model ----------------------------------------------------------------------------------------------
IMAGE_SIZE = 84  # 6 x 6 patches of 14 px, pooled to 4 x 4 = 16 tokens (overlapping adaptive windows)
NUM_IMAGE_TOKENS = 16
MAX_LENGTH = 512


def tiny_processor(with_bos: bool = True, **kwargs):
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    from .processing_unifilter import UniFilterProcessor

    image_processor = SiglipImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    kwargs.setdefault("num_image_tokens", NUM_IMAGE_TOKENS)
    kwargs.setdefault("max_length", MAX_LENGTH)  # the tiny decoder's context
    return UniFilterProcessor(image_processor, tiny_tokenizer(with_bos), **kwargs)


def tiny_config(text: str = "qwen2", num_labels: int = 1, image_token_id: int | None = None, **kwargs):
    """A tiny UniFilterConfig with a Qwen2, Qwen3 or Llama decoder (vocab sized for `tiny_tokenizer`)."""
    from transformers import CONFIG_MAPPING, SiglipVisionConfig

    from .configuration_unifilter import UniFilterConfig

    vision = SiglipVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        image_size=IMAGE_SIZE, patch_size=14, vision_use_head=False,
    )
    text_kwargs = dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=320, max_position_embeddings=MAX_LENGTH,
    )
    if text == "qwen3":
        text_kwargs["head_dim"] = 8
    text_config = CONFIG_MAPPING[text](**text_kwargs)
    return UniFilterConfig(
        vision_config=vision, text_config=text_config, num_image_tokens=NUM_IMAGE_TOKENS,
        num_labels=num_labels, image_token_id=320 if image_token_id is None else image_token_id, **kwargs,
    )


def tiny_model_and_processor(text: str = "qwen2", num_labels: int = 1, seed: int = 0, with_bos: bool = True):
    """A random tiny UniFilter model in eval mode (fp32) and its processor, image token ids in sync."""
    import torch

    from .modeling_unifilter import UniFilterForQualityScoring

    processor = tiny_processor(with_bos)
    torch.manual_seed(seed)
    model = UniFilterForQualityScoring(
        tiny_config(text, num_labels, image_token_id=processor.image_token_id)
    ).eval()
    return model, processor
