"""Hub datasets (streamed) and in-memory ``datasets`` objects as shards, with images left undecoded.

Example:
    >>> import datasets
    >>> ds = datasets.Dataset.from_dict({"image": [None], "text": ["a cat"]},
    ...                                 features=datasets.Features({"image": datasets.Image(),
    ...                                                             "text": datasets.Value("string")}))
    >>> undecode_images(ds).features["image"].decode
    False
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .errors import SourceError

__all__ = ["looks_like_hub_id", "open_hub_dataset", "undecode_images"]


def undecode_images(ds):
    """Cast every ``datasets.Image()`` column, also inside ``List(Image())``, to ``decode=False``.

    Rows then hold ``{"bytes": ..., "path": ...}`` dicts, and a corrupt image is reported by our loader as a
    row error instead of raising while ``datasets`` iterates. Works on ``Dataset`` and ``IterableDataset``;
    a dataset without known features is returned as is.

    Example:
        >>> import datasets
        >>> feats = datasets.Features({"images": datasets.List(datasets.Image()),
        ...                            "texts": datasets.List(datasets.Value("string"))})
        >>> ds = datasets.Dataset.from_dict({"images": [[None]], "texts": [["hi"]]}, features=feats)
        >>> undecode_images(ds).features["images"].feature.decode
        False
    """
    features = getattr(ds, "features", None)
    if not features:
        return ds
    new = _undecoded(features)
    return ds if new == features else ds.cast(new)


def _undecoded(feature: Any) -> Any:
    import datasets

    if isinstance(feature, datasets.Image):
        return datasets.Image(decode=False)
    if isinstance(feature, datasets.Features):
        return datasets.Features({k: _undecoded(v) for k, v in feature.items()})
    if isinstance(feature, dict):
        return {k: _undecoded(v) for k, v in feature.items()}
    if isinstance(feature, datasets.List):
        return replace(feature, feature=_undecoded(feature.feature))
    if isinstance(feature, datasets.LargeList):
        return replace(feature, feature=_undecoded(feature.feature))
    return feature


def looks_like_hub_id(source: str) -> bool:
    """``owner/name`` or ``name`` (no glob, not a relative path); callers check local paths first.

    Example:
        >>> looks_like_hub_id("HuggingFaceM4/OBELICS"), looks_like_hub_id("./data"), looks_like_hub_id("a/b/c")
        (True, False, False)
    """
    parts = source.split("/")
    return 1 <= len(parts) <= 2 and all(parts) and not source.startswith((".", "~")) and "*" not in source


def open_hub_dataset(dataset_id: str, *, config: str | None, split: str, revision: str | None):
    """``datasets.load_dataset(..., streaming=True)``, or a one-line :class:`SourceError` naming the fix."""
    import datasets

    try:
        return datasets.load_dataset(dataset_id, config, split=split, revision=revision, streaming=True)
    except Exception as err:  # noqa: BLE001 - any failure here is a one-line, user-facing source problem
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SourceError(
            f"cannot open Hub dataset {dataset_id!r} ({first[:200]}); check the id, --config, --split and "
            "--revision, and that HF_HUB_OFFLINE is unset"
        ) from None
