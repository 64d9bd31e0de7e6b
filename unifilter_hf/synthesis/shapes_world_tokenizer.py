"""The shapes world's word-level tokenizer: every word its caption templates can produce, built offline.

Example:
    >>> len(shapes_world_vocabulary()) > 20
    True
"""

from __future__ import annotations

from .shapes_world import COLOURS, COUNTS, POSITIONS, SHAPES

__all__ = ["shapes_world_tokenizer", "shapes_world_vocabulary"]


def shapes_world_vocabulary() -> list[str]:
    """Every word the templates can produce, plus punctuation, in a fixed order."""
    words = [*COUNTS.values(), *COLOURS, *SHAPES, *SHAPES.values(), "and"]
    for phrase in POSITIONS.values():
        words += [w for w in phrase.split() if w not in words]
    return words + [".", ",", "!", "?", ":", ";", "-", "'", '"', "(", ")"]


def shapes_world_tokenizer():
    """A word-level tokenizer over the shapes-world vocabulary, built in memory (offline).

    Special tokens ``<unk>`` (0), ``<pad>`` (1), ``<s>`` (BOS, 2), ``</s>`` (EOS, 3); right padding.

    Example:
        >>> tok = shapes_world_tokenizer()
        >>> tok("two red circles on the left")["input_ids"]
        [5, 7, 18, 24, 25, 26]
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<pad>", "<s>", "</s>"]
    vocab = {w: i for i, w in enumerate(specials + shapes_world_vocabulary())}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>", padding_side="right")
