"""The generator interface: sources in, four parsed levels (or a reported error) out.

A :class:`SourceItem` is one real source: a caption source (one image, optionally a reference caption) or a
document source (several images, optionally a reference document as OBELICS slots). A backend turns each
item into a :class:`GenerationResult` holding one :class:`LevelOutput` per level, or an ``error`` string;
results with an error are reported by the runner and never written as data.

Model-backed generators share :class:`PromptedBackend`: build messages (:mod:`..prompts`), get a reply,
parse it strictly (:mod:`..parsing`), and ask again on a malformed reply up to ``max_attempts`` times.

Example:
    >>> from PIL import Image
    >>> item = SourceItem("demo/1", "caption", [Image.new("RGB", (4, 4))], reference="a black square")
    >>> item.num_images
    1
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from ..levels import KINDS, canonical_kind
from ..parsing import MalformedReply, parse_levels
from ..prompts import PROMPT_VERSION, build_messages
from ..records import Provenance

#: Anything :func:`load_source_image` can turn into a PIL image.
ImageSource = Image.Image | str | os.PathLike | bytes | dict | Callable[[], Image.Image]


def load_source_image(src: ImageSource) -> Image.Image:
    """Decode one image source to RGB (callables are lazy loaders, e.g. the bundled photographs)."""
    from ...image_loading import load_image

    return load_image(src() if callable(src) else src)


@dataclass
class SourceItem:
    """One real source to generate four levels for.

    ``reference`` is a caption (``str``) for caption items, or a document for document items: a list of
    slots where a ``str`` is a text and ``None`` stands for the next image of ``images`` in order.
    ``image_ids`` are stable identities of the images (paths, ``"bundled:astronaut"``); they keep a source
    image out of two splits and let generators tell "another image" from "this image".
    """

    id: str
    kind: str
    images: list[ImageSource]
    reference: str | list[str | None] | None = None
    image_ids: list[str] | None = None
    tags: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.kind = canonical_kind(self.kind)
        if self.kind not in KINDS:
            raise ValueError(f"{self.id}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "caption" and len(self.images) != 1:
            raise ValueError(f"{self.id}: a caption source has exactly one image, got {len(self.images)}")
        if not self.images:
            raise ValueError(f"{self.id}: a source needs at least one image")
        if self.image_ids is None:
            self.image_ids = [_default_image_id(self.id, i, src) for i, src in enumerate(self.images)]
        if isinstance(self.reference, list):
            n_slots = sum(1 for s in self.reference if s is None)
            if n_slots != len(self.images):
                raise ValueError(f"{self.id}: reference has {n_slots} image slots for {len(self.images)} images")

    @property
    def num_images(self) -> int:
        return len(self.images)

    def reference_slots(self) -> list[str | int] | None:
        """The reference document as slots: ``str`` texts and ``int`` image indices (0-based)."""
        if not isinstance(self.reference, list):
            return None
        slots: list[str | int] = []
        k = 0
        for s in self.reference:
            if s is None:
                slots.append(k)
                k += 1
            else:
                slots.append(s)
        return slots


def _default_image_id(item_id: str, index: int, src: ImageSource) -> str:
    if isinstance(src, str | os.PathLike):
        return os.path.abspath(os.fspath(src))
    return f"{item_id}#{index}"


@dataclass
class LevelOutput:
    """One generated version: ``text`` for a caption, ``slots`` for a document.

    Document slots are ``str`` (a text) or ``int`` (an index into :attr:`GenerationResult.images`).
    ``edits`` is a structured record of what was changed (rule-based backend), kept in provenance.
    """

    level: int
    text: str | None = None
    slots: list[str | int] | None = None
    edits: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class GenerationResult:
    """All four levels of one source, or the reason there are none."""

    item: SourceItem
    provenance: Provenance
    outputs: dict[int, LevelOutput] = field(default_factory=dict)
    #: Images the document slots point into; defaults to the item's own images.
    images: list[ImageSource] | None = None
    image_ids: list[str] | None = None
    error: str | None = None
    attempts: int = 1
    raw: str | None = None

    def __post_init__(self) -> None:
        if self.images is None:
            self.images = list(self.item.images)
            self.image_ids = list(self.item.image_ids or [])

    @property
    def ok(self) -> bool:
        return self.error is None and sorted(self.outputs) == [0, 1, 2, 3]


class SynthesisBackend(abc.ABC):
    """A generator of four-level texts. Subclasses set ``name`` and ``model`` and implement :meth:`generate`."""

    name: str = "backend"
    model: str | None = None
    prompt_version: str | None = PROMPT_VERSION
    seed: int | None = None

    def prepare(self, items: Sequence[SourceItem]) -> None:
        """See the whole source list once before generation (the rule-based backend draws distractors)."""
        return None  # an optional hook: most backends need nothing

    @abc.abstractmethod
    def generate(self, items: Sequence[SourceItem]) -> list[GenerationResult]:
        """One result per item, in order. Must not raise for a bad item: set ``result.error`` instead."""

    def provenance(self, **extra: Any) -> Provenance:
        return Provenance(self.name, self.model, self.prompt_version, self.seed, dict(extra))


class PromptedBackend(SynthesisBackend):
    """Shared loop of model-backed generators: prompt, reply, strict parse, retry malformed replies.

    ``mode`` is ``"vision"`` (the model sees the images; the paper's setting) or ``"rewrite"`` (a text LLM
    rewrites the item's reference caption or document; images are not sent).
    """

    def __init__(self, *, mode: str = "vision", max_attempts: int = 3, seed: int | None = 0):
        if mode not in ("vision", "rewrite"):
            raise ValueError(f"mode must be 'vision' or 'rewrite', got {mode!r}")
        self.mode = mode
        self.max_attempts = max(1, int(max_attempts))
        self.seed = seed

    @abc.abstractmethod
    def complete(self, messages: list[list[dict[str, Any]]], attempt: int) -> list[str | BaseException]:
        """Return one reply text per conversation (or the exception that request ended with).

        ``attempt`` is 0 for the first try; retries of malformed replies call again with ``attempt + 1`` so
        a backend can vary sampling.
        """

    def generate(self, items: Sequence[SourceItem]) -> list[GenerationResult]:
        results = [GenerationResult(item, self.provenance(mode=self.mode), attempts=0) for item in items]
        pending: list[tuple[int, list[dict[str, Any]]]] = []
        for i, item in enumerate(items):
            try:
                pending.append((i, build_messages(item, self.mode)))
            except (ValueError, OSError) as err:  # e.g. rewrite mode without a reference, unreadable image
                results[i].error = f"prompt: {err}"
        for attempt in range(self.max_attempts):
            if not pending:
                break
            replies = self.complete([m for _, m in pending], attempt)
            if len(replies) != len(pending):
                raise RuntimeError(f"{type(self).__name__}.complete returned {len(replies)} replies "
                                   f"for {len(pending)} requests")
            still: list[tuple[int, list[dict[str, Any]]]] = []
            for (i, msgs), reply in zip(pending, replies):
                res = results[i]
                res.attempts = attempt + 1
                if isinstance(reply, BaseException):
                    res.error = f"request: {reply}"
                    continue  # transport errors were already retried inside complete()
                res.raw = reply
                try:
                    parsed = parse_levels(reply, res.item.kind, res.item.num_images)
                except MalformedReply as err:
                    res.error = f"malformed reply: {err.reason}"
                    still.append((i, msgs))
                    continue
                res.error = None
                res.outputs = {
                    lvl: LevelOutput(lvl, text=v) if isinstance(v, str) else LevelOutput(lvl, slots=v)
                    for lvl, v in parsed.items()
                }
                self.accept(msgs, reply)
            pending = still
        return results

    def accept(self, messages: list[dict[str, Any]], reply: str) -> None:
        """Called with each reply that parsed; the HTTP backend caches it here."""
