"""Strict parsing of a generator's reply into the four levels.

A reply is accepted only if it is exactly one JSON object (optionally inside one markdown code fence, after
an optional ``<think>...</think>`` block) with the keys ``"0"``..``"3"`` and nothing else, each a non-empty
string, and the four texts all different. Documents must use image markers ``<imageK>`` for images the
prompt offered, each at most once, with at least one image and one text per level. Anything else raises
:class:`MalformedReply`; the caller retries or reports it, and never writes it as data.

Example:
    >>> parse_levels('{"0": "a red bus", "1": "two dogs", "2": "a black cat", "3": "a white cat"}', "caption", 1)[3]
    'a white cat'
    >>> reply = '{"0": "x <image1>", "1": "<image1> y", "2": "z <image1>", "3": "Intro. <image1> End."}'
    >>> parse_levels(reply, "document", 1)[3]
    ['Intro.', 0, 'End.']
"""

from __future__ import annotations

import json
import re

from ..errors import UniFilterError

_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n(.*)\n\s*```$", re.S)
_THINK = re.compile(r"^<think>.*?</think>", re.S)
_MARKER = re.compile(r"<image\s*(\d+)>", re.I)
_ANY_IMAGE_TAG = re.compile(r"<\s*image[^>]*>", re.I)
MAX_CHARS = 20_000


class MalformedReply(UniFilterError, ValueError):
    """A reply that cannot be used as data; ``reason`` says why in a few words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _unwrap(reply: str) -> str:
    text = reply.strip()
    text = _THINK.sub("", text, count=1).strip()
    m = _FENCE.match(text)
    return m.group(1).strip() if m else text


def parse_levels(reply: str, kind: str, num_images: int = 1) -> dict[int, str | list[str | int]]:
    """Parse ``reply`` into ``{level: caption text}`` or ``{level: document slots}``.

    Document slots are ``str`` (a paragraph) or ``int`` (a 0-based image index).
    """
    if not isinstance(reply, str) or not reply.strip():
        raise MalformedReply("empty reply")
    body = _unwrap(reply)
    try:
        data = json.loads(body)
    except json.JSONDecodeError as err:
        raise MalformedReply(f"not a JSON object ({err.msg} at char {err.pos})") from None
    if not isinstance(data, dict):
        raise MalformedReply(f"expected a JSON object, got {type(data).__name__}")
    expected = {"0", "1", "2", "3"}
    missing = sorted(expected - set(data))
    extra = sorted(set(data) - expected)
    if missing:
        raise MalformedReply(f"missing level(s) {', '.join(missing)}")
    if extra:
        raise MalformedReply(f"unexpected key(s) {', '.join(map(repr, extra[:3]))}")
    out: dict[int, str | list[str | int]] = {}
    for key in sorted(expected):
        value = data[key]
        if not isinstance(value, str) or not value.strip():
            raise MalformedReply(f"level {key}: expected a non-empty string")
        if len(value) > MAX_CHARS:
            raise MalformedReply(f"level {key}: longer than {MAX_CHARS} characters")
        out[int(key)] = _caption(value, key) if kind == "caption" else _document(value, key, num_images)
    texts = [json.dumps(v) for v in out.values()]
    if len(set(texts)) != 4:
        raise MalformedReply("levels are not all different")
    return out


def _caption(value: str, key: str) -> str:
    if _ANY_IMAGE_TAG.search(value):
        raise MalformedReply(f"level {key}: a caption must not contain image markers")
    return " ".join(value.split())


def _document(value: str, key: str, num_images: int) -> list[str | int]:
    slots: list[str | int] = []
    seen: set[int] = set()
    pos = 0
    for m in _MARKER.finditer(value):
        slots.extend(_paragraphs(value[pos : m.start()], key))
        idx = int(m.group(1)) - 1
        if not 0 <= idx < num_images:
            raise MalformedReply(f"level {key}: marker {m.group(0)} names no image (have {num_images})")
        if idx in seen:
            raise MalformedReply(f"level {key}: marker {m.group(0)} used twice")
        seen.add(idx)
        slots.append(idx)
        pos = m.end()
    slots.extend(_paragraphs(value[pos:], key))
    if not seen:
        raise MalformedReply(f"level {key}: no image marker")
    if not any(isinstance(s, str) for s in slots):
        raise MalformedReply(f"level {key}: no text")
    return slots


def _paragraphs(chunk: str, key: str) -> list[str]:
    if _ANY_IMAGE_TAG.search(chunk):
        raise MalformedReply(f"level {key}: malformed image marker")
    paras = [" ".join(p.split()) for p in re.split(r"\n\s*\n", chunk)]
    return [p for p in paras if p]
