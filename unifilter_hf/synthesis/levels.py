"""The four quality levels of UniFilter's semi-synthetic data and what each level must satisfy.

The level is the training target (score = level, 0..3). The requirement texts are our own wording of the
paper's generator instructions (see docs/synthesis.md); prompts, the rule-based backend and the docs all read
them from here, so there is one definition.

Example:
    >>> Level.HARD_NEGATIVE.name_str
    'hard_negative'
    >>> requirement(2, "caption")[:40]
    'Almost identical to the positive caption'
"""

from __future__ import annotations

from enum import IntEnum

from ..levels import LEVEL_NAMES

#: The two source kinds; "document" is an interleaved image-text document, as in ``Sample.kind``.
KINDS: tuple[str, ...] = ("caption", "document")
# Earlier releases said "interleaved"; old records.jsonl files and call sites still use it.
_KIND_ALIASES = {"interleaved": "document"}

class Level(IntEnum):
    """Quality level; the integer value is the score the classifier is trained to predict."""

    EASY_NEGATIVE = 0
    MEDIUM_NEGATIVE = 1
    HARD_NEGATIVE = 2
    POSITIVE = 3

    @property
    def name_str(self) -> str:
        return LEVEL_NAMES[int(self)]


_CAPTION = {
    0: "Completely unrelated to the image: it describes a different scene, with no object, place or "
    "activity in common with the image.",
    1: "Clearly wrong about the image: it keeps the general setting but makes several obvious errors "
    "(wrong objects, colors, counts, positions or actions).",
    2: "Almost identical to the positive caption, with exactly one wrong property (one color, one count, "
    "one position or one object); everything else stays correct.",
    3: "A high-quality, comprehensive, detailed and accurate description of everything important in "
    "the image: objects, attributes, counts, spatial layout and setting.",
}

_DOCUMENT = {
    0: "Poorly written and hard to read, with many spelling and grammar errors; no educational value; "
    "the images are completely unrelated to the text and are inserted at arbitrary places.",
    1: "Readable but with several writing errors and little knowledge; the images are on the same topic "
    "but poorly aligned with the text around them.",
    2: "Several writing errors and several factual or commonsense errors; the images are partly related "
    "and placed reasonably but add no information to the text.",
    3: "A high-quality, comprehensive, knowledge-rich and detailed document; every image is placed where "
    "it adds information or background to the text next to it.",
}


def canonical_kind(kind: str) -> str:
    """``kind`` in today's words: the deprecated ``"interleaved"`` becomes ``"document"``.

    Example:
        >>> canonical_kind("interleaved"), canonical_kind("caption")
        ('document', 'caption')
    """
    return _KIND_ALIASES.get(kind, kind)


def level_name(level: int) -> str:
    """The snake_case name of a level (``0`` -> ``"easy_negative"``)."""
    return LEVEL_NAMES[int(Level(level))]


def requirement(level: int, kind: str) -> str:
    """What a text of ``kind`` (``"caption"`` or ``"document"``) must satisfy to be at ``level``."""
    table = {"caption": _CAPTION, "document": _DOCUMENT}.get(canonical_kind(kind))
    if table is None:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return table[int(Level(level))]
