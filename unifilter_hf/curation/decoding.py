"""Turn a window of rows into samples, in the main process or in torch-free "spawn" worker processes.

Workers only read rows and decode images (through :func:`~unifilter_hf.row_layouts.try_to_sample`, the one
row reader), while the main process runs the model. They are started with the "spawn" context: forking a
process after torch has started its thread pools can deadlock. They never import torch: the package's
``__init__`` imports transformers and torch, so each worker first installs a bare ``unifilter_hf`` package
module and then imports only the row-reading modules (PIL and numpy).

Example:
    >>> from PIL import Image
    >>> [s.kind if s else r for s, r in decode_window([{"image": Image.new("RGB", (4, 4)), "text": "x"},
    ...                                                {"image": b"junk", "text": "x"}], None, {})]
    ['caption', 'image: not a recognized image format']
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import types
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

ERROR_FIELD = "__error__"  # set by sources on rows that could not even be parsed (bad JSON line or member)

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Run by each worker before its first task: a bare `unifilter_hf` package, so that importing
# `unifilter_hf.curation.decoding` does not execute the package __init__ (transformers + torch).
_STUB = (
    "import sys, types\n"
    "if 'unifilter_hf' not in sys.modules:\n"
    "    m = types.ModuleType('unifilter_hf')\n"
    f"    m.__path__ = [{_PACKAGE_DIR!r}]\n"
    "    sys.modules['unifilter_hf'] = m\n"
)


def decode_window(
    rows: Sequence[Mapping],
    columns: Mapping[str, str] | None,
    row_options: Mapping[str, Any],
    shrink: tuple[int, int, int] | None = None,
    pack: bool = False,
) -> list[tuple[Any, str | None]]:
    """``(sample, None)`` or ``(None, reason)`` per row, in order.

    ``shrink=(width, height, resample)`` resizes each image exactly as the processor will (see
    :func:`~unifilter_hf.curation.engine_local.shrink_spec`, checked against the processor once per job), so
    a worker ships model-sized pixels instead of full photos. ``pack`` sends images as numpy arrays (pickled
    with a plain copy, several times faster than PIL's own pickling); :func:`unpack` restores them.
    """
    from ..row_layouts import try_to_sample

    out = []
    for row in rows:
        if ERROR_FIELD in row:
            out.append((None, row[ERROR_FIELD]))
            continue
        sample, reason = try_to_sample(row, columns, **row_options)
        if sample is not None and shrink is not None:
            size = shrink[:2]
            sample.images = [im if im is None or im.size == size else im.resize(size, resample=shrink[2])
                             for im in sample.images]
        if sample is not None and pack:
            import numpy as np

            sample.images = [None if im is None else np.asarray(im) for im in sample.images]
        out.append((sample, reason))
    return out


def unpack(decoded: list[tuple[Any, str | None]]) -> list[tuple[Any, str | None]]:
    """Turn the numpy images of :func:`decode_window` (``pack=True``) back into PIL images."""
    from PIL import Image

    for sample, _ in decoded:
        if sample is not None:
            sample.images = [None if a is None else Image.fromarray(a) for a in sample.images]
    return decoded


def torch_loaded() -> bool:
    """Whether torch is imported in this process (tests check the workers stay free of it)."""
    return "torch" in sys.modules


@contextlib.contextmanager
def _no_main_reimport() -> Iterator[None]:
    # "spawn" re-imports the parent's __main__ in every worker; when that is our CLI it would import torch.
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def decoding_pool(workers: int):
    """A started pool of ``workers`` spawn processes ready for :func:`decode_window`; None for 0 workers."""
    if workers <= 0:
        return None
    context = multiprocessing.get_context("spawn")
    with _no_main_reimport():  # multiprocessing.Pool starts all its processes in the constructor
        return context.Pool(workers, initializer=exec, initargs=(_STUB,))
