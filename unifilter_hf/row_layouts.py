"""Turn a dataset row of any supported layout into a :class:`~unifilter_hf.sample.Sample`, or say why not.

This is the only place where dataset rows are read. The pipeline, the ``datasets`` map/filter callables, the
curation job and the training collator all call :func:`to_sample` (or :func:`try_to_sample`) and store
``SampleError.reason`` as the row's error, so a bad row becomes a NaN score with a reason instead of a crash.
Images are loaded by :func:`~unifilter_hf.image_loading.load_image`.

Supported row layouts (see :meth:`ColumnMap.detect`):

- ``caption``: one image column (``image``, ``jpg``, ``jpeg``, ``png``, ``webp``, ``img``, ``image_url``) and
  one text column (``text``, ``caption``, ``txt``, or a webdataset ``json`` dict with a ``caption``/``text``).
- ``document``: OBELICS-style parallel lists ``images`` and ``texts``; each position holds a text or an image.
- ``mmc4``: ``text_list`` (sentences) and ``image_info`` (dicts with ``matched_text_index`` and one of
  ``image_base64``, ``image_bytes``/``bytes``, ``image``, ``image_name`` (with ``image_root``), ``raw_url``).
  Each image is inserted *before* its matched sentence (the OpenFlamingo convention); images matched to the
  same sentence keep their ``image_info`` order.

Handling choices (the full table of bad inputs is in ``docs/input_handling.md``):

- Images over ``max_pixels`` (by their header, before decoding) are rejected as decompression bombs.
- A caption whose image or text is unusable is an error. A document drops an unusable image together with
  its slot and records why in ``sample.meta["dropped"]``; it is an error only when nothing scorable is left.
- Images with a side of 1 pixel (tracking pixels, spacers) are dropped from documents (docs/model.md) and
  make a caption an error.

Example:
    >>> from PIL import Image
    >>> row = {"image": Image.new("RGB", (4, 4)), "caption": "a black square"}
    >>> to_sample(row).texts
    ['a black square']
    >>> try:
    ...     to_sample({"image": Image.new("RGB", (4, 4)), "caption": "  "})
    ... except SampleError as err:
    ...     print(err.reason)
    caption: empty text
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from PIL import Image

from .document_slots import (
    IMAGE_ERROR_POLICIES,
    ImageErrorPolicy,
    assemble_document,
    mmc4_slots,
    obelics_slots,
    unicode_text,
)
from .errors import UniFilterError
from .image_loading import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, load_image
from .sample import Sample, SampleError

__all__ = [
    "IMAGE_ERROR_POLICIES",
    "DEFAULT_MAX_IMAGES",
    "ColumnMap",
    "ImageErrorPolicy",
    "SchemaError",
    "detect_schema",
    "to_sample",
    "try_to_sample",
]


Schema = Literal["caption", "document", "mmc4"]
# Images a document may load when the caller sets no max_images: the default max_length (8192) holds at most
# 56 image blocks of 144 tokens, so more are cut before the model anyway; loading them only costs memory.
DEFAULT_MAX_IMAGES = 64

_CAPTION_IMAGE_COLUMNS = ("image", "jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "img", "image_url")
_CAPTION_TEXT_COLUMNS = ("text", "caption", "txt", "json")
_GROUPS = {"caption": ("image", "text"), "document": ("images", "texts"), "mmc4": ("text_list", "image_info")}


class SchemaError(UniFilterError, ValueError):
    """No known row layout matches a dataset's columns (a dataset-level problem, raised before any row)."""


@dataclass(frozen=True)
class ColumnMap:
    """Which columns of a row hold what; exactly one group must be set.

    - caption: ``image`` and ``text``
    - document (OBELICS): ``images`` and ``texts``
    - mmc4: ``text_list`` and ``image_info``

    Example:
        >>> ColumnMap(image="URL", text="TEXT").schema
        'caption'
        >>> ColumnMap.detect(["images", "texts", "url"])
        ColumnMap(image=None, text=None, images='images', texts='texts', text_list=None, image_info=None)
    """

    image: str | None = None
    text: str | None = None
    images: str | None = None
    texts: str | None = None
    text_list: str | None = None
    image_info: str | None = None

    def __post_init__(self) -> None:
        complete = [name for name, keys in _GROUPS.items() if all(getattr(self, k) for k in keys)]
        partial = [name for name, keys in _GROUPS.items() if any(getattr(self, k) for k in keys)]
        if len(complete) != 1 or len(partial) != 1:
            groups = "; ".join(f"{name}: {' + '.join(keys)}" for name, keys in _GROUPS.items())
            raise ValueError(f"ColumnMap needs exactly one complete group ({groups}), got {self}")

    @property
    def schema(self) -> Schema:
        """``"caption"``, ``"document"`` or ``"mmc4"``."""
        return next(name for name, keys in _GROUPS.items() if getattr(self, keys[0]))

    @property
    def columns(self) -> list[str]:
        """The row columns this map reads."""
        return [getattr(self, key) for key in _GROUPS[self.schema]]

    @classmethod
    def detect(cls, column_names: Iterable[str]) -> ColumnMap:
        """Pick the columns from a dataset's column names (case-insensitive); raises :class:`SchemaError`.

        Priority: mmc4, then document, then caption (OBELICS rows also carry caption-like columns).
        """
        names = list(column_names)
        by_lower = {}
        for name in names:
            by_lower.setdefault(name.lower(), name)
        if "text_list" in by_lower and "image_info" in by_lower:
            return cls(text_list=by_lower["text_list"], image_info=by_lower["image_info"])
        if "images" in by_lower and "texts" in by_lower:
            return cls(images=by_lower["images"], texts=by_lower["texts"])
        image = next((by_lower[c] for c in _CAPTION_IMAGE_COLUMNS if c in by_lower), None)
        text = next((by_lower[c] for c in _CAPTION_TEXT_COLUMNS if c in by_lower), None)
        if image and text:
            return cls(image=image, text=text)
        raise SchemaError(
            f"no known schema in columns {sorted(names)}; expected caption "
            f"({'|'.join(_CAPTION_IMAGE_COLUMNS)} + {'|'.join(_CAPTION_TEXT_COLUMNS)}), "
            "document (images + texts) or mmc4 (text_list + image_info); "
            "pass columns=ColumnMap(...) to name them"
        )

    @classmethod
    def parse(cls, text: str) -> ColumnMap:
        """Read the command-line form ``ROLE=COLUMN,ROLE=COLUMN``.

        Example:
            >>> ColumnMap.parse("image=URL,text=TEXT").columns
            ['URL', 'TEXT']
        """
        pairs = [part.split("=", 1) for part in text.split(",") if part.strip()]
        if not pairs or any(len(p) != 2 or not p[0].strip() or not p[1].strip() for p in pairs):
            raise ValueError(f"expected ROLE=COLUMN pairs such as image=URL,text=TEXT, got {text!r}")
        return cls.coerce({role.strip(): column.strip() for role, column in pairs})

    @classmethod
    def coerce(cls, columns: ColumnMap | Mapping[str, str]) -> ColumnMap:
        """Accept a ``ColumnMap`` or a plain dict such as ``{"image": "jpg", "text": "txt"}``."""
        if isinstance(columns, ColumnMap):
            return columns
        unknown = set(columns) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown ColumnMap keys {sorted(unknown)}")
        return cls(**columns)


def detect_schema(column_names: Iterable[str]) -> Schema:
    """The schema of a dataset from its column names; call once per dataset, not per row.

    For the columns themselves use :meth:`ColumnMap.detect` and pass the map to :func:`to_sample`.

    Example:
        >>> detect_schema(["__key__", "jpg", "txt", "json"])
        'caption'
        >>> detect_schema(["text_list", "image_info", "url"])
        'mmc4'
    """
    return ColumnMap.detect(column_names).schema


# --------------------------------------------------------------------------------------------- adapters


def to_sample(
    row: Mapping[str, Any],
    columns: ColumnMap | Mapping[str, str] | None = None,
    *,
    max_images: int | None = None,
    on_image_error: ImageErrorPolicy = "fail_if_all",
    image_root: str | os.PathLike | None = None,
    data_root: str | os.PathLike | None = None,
    timeout: float = 10.0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    allow_local_files: bool | str | Iterable[str] | None = None,
    allow_private_urls: bool | str | Iterable[str] | None = None,
    fetch_urls: bool = True,
) -> Sample:
    """Turn one row into a :class:`Sample`, or raise :class:`SampleError` with a short reason.

    ``columns`` overrides detection (detect once per dataset with :meth:`ColumnMap.detect` to skip the per-row
    detection). ``max_images`` keeps the first images of a document in reading order and drops the rest
    unloaded (None: ``DEFAULT_MAX_IMAGES`` = 64). ``on_image_error`` decides what a document whose images
    failed to load gets: ``"fail_if_all"`` (default) fails it when none of its images loaded, ``"fail"`` when
    any failed, ``"score_rest"`` never.
    ``image_root`` resolves relative paths and mmc4 ``image_name``; ``data_root`` (the row's data file folder)
    relative paths only. A row is untrusted data: its local paths are read only inside that root (the current
    folder when both are None) unless ``allow_local_files`` says otherwise, and its URLs reach public addresses
    only unless ``allow_private_urls`` (docs/security.md). The other options go to :func:`load_image`.
    ``sample.meta`` holds ``schema`` and ``dropped`` (reasons for removed image slots).

    A document-layout row whose ``kind`` column says ``"caption"`` (the synthetic builder's ``joint`` config
    stores captions as two slots) is read as a caption, so it gets the caption prompt.

    Example:
        >>> from PIL import Image
        >>> pic, pixel = Image.new("RGB", (8, 8)), Image.new("RGB", (1, 1))
        >>> doc = to_sample({"texts": ["Intro.", None, None], "images": [None, pic, pixel]})
        >>> doc.num_images, doc.meta["dropped"]
        (1, ['image 2: 1-pixel image (1x1)'])
    """
    if not hasattr(row, "keys"):
        raise SampleError(f"row: expected a mapping, got {type(row).__name__}")
    max_images = DEFAULT_MAX_IMAGES if max_images is None else max_images
    cols = _columns_for(row, columns)
    missing = [name for name in cols.columns if name not in row]
    if missing:
        raise SampleError(f"row: missing column {missing[0]!r} (has {sorted(map(str, row.keys()))})")
    root = image_root if image_root is not None else data_root
    load = functools.partial(
        load_image, timeout=timeout, max_pixels=max_pixels, max_bytes=max_bytes,
        root=os.getcwd() if root is None else root,  # rows never get the trusted (root=None) reading
        allow_local_files=allow_local_files, allow_private_urls=allow_private_urls, fetch_urls=fetch_urls,
    )
    if cols.schema == "caption":
        is_json = cols.text.lower() == "json"
        sample = _caption(row[cols.image], row[cols.text], text_is_json=is_json, load=load)
    elif cols.schema == "document":
        slots = obelics_slots(row[cols.texts], row[cols.images])
        if reads_as_caption(row, cols):
            sample = _caption(slots[0][2], slots[1][1], text_is_json=False, load=load)
        else:
            sample = assemble_document(slots, [], load, max_images, on_image_error)
    else:
        names = True if image_root is not None else data_root  # image_name: under image_root, or beside the data
        slots, dropped = mmc4_slots(row[cols.text_list], row[cols.image_info], names)
        sample = assemble_document(slots, dropped, load, max_images, on_image_error)
    sample.meta["schema"] = cols.schema
    return sample


def try_to_sample(
    row: Mapping[str, Any], columns: ColumnMap | Mapping[str, str] | None = None, **options: Any
) -> tuple[Sample | None, str | None]:
    """Like :func:`to_sample` but returns ``(sample, None)`` or ``(None, reason)``; for map/filter loops.

    Example:
        >>> try_to_sample({"image": b"junk", "text": "a cat"})
        (None, 'image: not a recognized image format')
    """
    try:
        return to_sample(row, columns, **options), None
    except SampleError as err:
        return None, err.reason


def _columns_for(row: Mapping[str, Any], columns: ColumnMap | Mapping[str, str] | None) -> ColumnMap:
    if columns is not None:
        return ColumnMap.coerce(columns)
    try:
        return ColumnMap.detect(str(key) for key in row.keys())
    except SchemaError as err:
        raise SampleError(f"row: no known schema in columns {sorted(map(str, row.keys()))}") from err


def _caption(image_obj: Any, text: Any, *, text_is_json: bool, load: Callable[..., Image.Image]) -> Sample:
    caption = _caption_text(text, text_is_json)
    image = load(image_obj)  # its reasons already read "image: ..."
    if min(image.size) == 1:
        raise SampleError(f"image: 1-pixel image ({image.width}x{image.height})")
    sample = Sample.caption(image, caption)
    sample.meta["dropped"] = []
    return sample


def _caption_text(value: Any, is_json: bool) -> str:
    if isinstance(value, (bytes, bytearray)):  # raw webdataset shards keep .txt as bytes
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as err:
            raise SampleError("caption: text is not valid UTF-8") from err
    if is_json:
        value = _json_caption(value)
    if value is None:
        raise SampleError("caption: missing text (None)")
    if not isinstance(value, str):
        raise SampleError(f"caption: text must be a string, got {type(value).__name__}")
    if not value.strip():
        raise SampleError("caption: empty text")
    return unicode_text(value, "caption")


def _json_caption(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise SampleError("caption: json column is not valid JSON") from err
        except RecursionError:  # a value nested thousands of levels deep
            raise SampleError("caption: json column nested too deeply") from None
    if not isinstance(value, Mapping):
        raise SampleError(f"caption: json column must be an object, got {type(value).__name__}")
    return value.get("caption", value.get("text"))


def reads_as_caption(row: Mapping[str, Any], columns: ColumnMap) -> bool:
    """Whether :func:`to_sample` reads this row as a caption: the caption layout, or a document-layout row of
    the joint config (``kind`` caption, one image then one text).

    Example:
        >>> row = {"kind": "caption", "texts": [None, "a cat"], "images": [b"x", None]}
        >>> reads_as_caption(row, ColumnMap.detect(row)), reads_as_caption({**row, "kind": None}, ColumnMap.detect(row))
        (True, False)
    """
    if columns.schema != "document" or row.get("kind") != "caption":
        return columns.schema == "caption"
    try:
        slots = obelics_slots(row.get(columns.texts), row.get(columns.images))
        return [s[0] for s in slots] == ["image", "text"]
    except SampleError:
        return False

