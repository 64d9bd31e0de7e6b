"""Rows and batches as `datasets` hands them to a callable in its numpy, torch and pandas formats -> plain columns.

`ds.with_format("numpy" | "torch" | "pandas").map(fn)` gives `fn` arrays, tensors or a DataFrame instead of lists;
the callables in :mod:`unifilter_hf.filtering` read rows from plain columns, so they convert here first. Image
arrays stay arrays: the image loader converts them (see :func:`unifilter_hf.image_conversion.array_to_image`).

Example:
    >>> import numpy as np
    >>> as_columns({"text": np.array(["a", "b"]), "score": np.array([1.0, 2.0])})
    {'text': ['a', 'b'], 'score': [1.0, 2.0]}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .image_conversion import is_array

__all__ = ["as_columns", "is_frame", "is_pipeline"]


def is_pipeline(obj: Any) -> bool:
    """A transformers pipeline (it brings its model and processor)."""
    return hasattr(obj, "model") and hasattr(obj, "processor") and type(obj).__name__.endswith("Pipeline")


def as_columns(batch: Any) -> Any:
    """A row or batch as plain columns: a pandas frame becomes lists, string and 1-D arrays (numpy or torch
    formats) become lists; image arrays (2-D and up) stay arrays, for the image loader to convert."""
    if batch is None or isinstance(batch, Mapping):
        return batch if batch is None else {key: _plain(value) for key, value in batch.items()}
    if is_frame(batch):
        return {key: [_plain(v) for v in batch[key].tolist()] for key in batch.columns}
    return batch


def is_frame(obj: Any) -> bool:
    """A pandas DataFrame (duck-typed: pandas is not imported)."""
    return hasattr(obj, "columns") and hasattr(obj, "to_dict") and not isinstance(obj, Mapping)  # pandas


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.dtype.kind in "OUS":  # strings, or arrays of rows / images
        if value.dtype.kind != "O":
            return value.tolist()
        return [_plain(v) for v in value] if value.ndim else _plain(value.item())
    if is_array(value) and value.ndim <= 1:  # a column of numbers (scores, labels), not an image
        return value.tolist()
    return value
