"""Strings every output format can store: a web row's text may hold lone surrogates (JSON ``"\\ud800"``).

Such a row is scored as an error ("text is not valid Unicode"); Arrow, Parquet, JSON lines and CSV all refuse
to encode its text, so the row is written with those characters replaced instead of ending the job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["encodable", "has_surrogate"]

_SURROGATE = re.compile("[\ud800-\udfff]")


def encodable(value: Any) -> Any:
    """``value`` with lone surrogates in its strings replaced by U+FFFD, since no output format can store them.

    Such a row already carries its error ("text is not valid Unicode"); writing it must not end the job.

    Example:
        >>> encodable({"text": "A \\ud800 rocket."}) == {"text": "A \\ufffd rocket."}
        True
    """
    if isinstance(value, str):
        if value.isascii():
            return value
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, Mapping):
        return {k: encodable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encodable(v) for v in value]
    return value


def has_surrogate(text: str) -> bool:
    """True when ``text`` holds a lone surrogate (the only thing UTF-8 cannot encode)."""
    return _SURROGATE.search(text) is not None
