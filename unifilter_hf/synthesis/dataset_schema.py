"""The ``UniFilterSynthetic`` configs, their features, and a record as one example of a config.

Configs (every one also has ``id``, ``group_id``, ``kind``, ``label`` and ``provenance``):
- ``caption``: ``image`` (``Image``), ``text`` (string); captions only.
- ``interleaved``: ``images`` (``List(Image)``), ``texts`` (``List(string)``): OBELICS slots, each position
  holds exactly one of an image or a text (the other is null); documents only.
- ``joint``: both kinds in the document schema; a caption is the two slots ``[image, null]`` /
  ``[null, text]`` (image first, as the scorer reads captions) and ``kind`` tells them apart.

``kind`` is ``"caption"`` or ``"document"`` (the config names predate that word and stay). ``label`` is a
``ClassLabel`` over the four level names. ``provenance`` is a struct
``{generator, model, prompt_version, seed, source, extra}`` (``extra`` is JSON text).

Example:
    >>> CONFIG_KINDS["interleaved"]
    ('document',)
    >>> synthetic_features("caption")["label"].names[3]
    'positive'
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Hashable
from typing import Any

import datasets
from PIL import Image

from .image_bytes import image_bytes
from .levels import KINDS, LEVEL_NAMES
from .records import Provenance, SynthRecord

CONFIG_NAMES = ("caption", "interleaved", "joint")
#: The record kinds each config holds.
CONFIG_KINDS: dict[str, tuple[str, ...]] = {"caption": ("caption",), "interleaved": ("document",), "joint": KINDS}


def _provenance_features() -> dict[str, datasets.Value]:
    return {
        "generator": datasets.Value("string"),
        "model": datasets.Value("string"),
        "prompt_version": datasets.Value("string"),
        "seed": datasets.Value("int64"),
        "source": datasets.Value("string"),
        "extra": datasets.Value("string"),
    }


def synthetic_features(config_name: str) -> datasets.Features:
    """The features of one config (see the module docstring)."""
    common = {
        "id": datasets.Value("string"),
        "group_id": datasets.Value("string"),
        "kind": datasets.Value("string"),
        "label": datasets.ClassLabel(names=list(LEVEL_NAMES)),
    }
    if config_name == "caption":
        media = {"image": datasets.Image(), "text": datasets.Value("string")}
    elif config_name in ("interleaved", "joint"):
        media = {"images": datasets.List(datasets.Image()), "texts": datasets.List(datasets.Value("string"))}
    else:
        raise ValueError(f"config must be one of {CONFIG_NAMES}, got {config_name!r}")
    return datasets.Features({**common, **media, "provenance": _provenance_features()})


def provenance_column(prov: Provenance) -> dict[str, Any]:
    """The ``provenance`` struct of an example (``extra`` as JSON text, ``source`` never null)."""
    return {
        "generator": prov.generator,
        "model": prov.model,
        "prompt_version": prov.prompt_version,
        "seed": prov.seed,
        "source": prov.source or "",
        "extra": json.dumps(prov.extra, ensure_ascii=False, sort_keys=True),
    }


def image_embedder(maxsize: int = 64) -> Callable[[Any], Any]:
    """A function giving the ``Image`` feature value of an image source, with its bytes embedded.

    Embedding keeps the prepared Arrow data independent of the source files. Hashable sources (paths, lazy
    loaders) are cached, since a caption's four levels share one image; a PIL image passes through.
    """
    cached = functools.lru_cache(maxsize=maxsize)(_embed)

    def embed(src: Any) -> Any:
        if src is None or isinstance(src, Image.Image):
            return src
        return cached(src) if isinstance(src, Hashable) else _embed(src)

    return embed


def _embed(src: Any) -> dict[str, Any]:
    data, name = image_bytes(src)
    return {"path": name, "bytes": data}


def record_to_example(rec: SynthRecord, config_name: str, embed: Callable[[Any], Any]) -> dict[str, Any]:
    """One example of ``config_name`` from a record; ``embed`` turns each image into its feature value."""
    if config_name == "caption" or rec.kind == "document":
        media = rec.media()
    else:  # joint: a caption as two slots, image first
        media = {"images": [rec.image, None], "texts": [None, rec.text]}
    if "image" in media:
        media["image"] = embed(media["image"])
    else:
        media["images"] = [embed(im) for im in media["images"]]
    return {"id": rec.id, "group_id": rec.group_id, "kind": rec.kind, "label": int(rec.level), **media,
            "provenance": provenance_column(rec.provenance)}
