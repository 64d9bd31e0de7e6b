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
    rows: Sequence[Mapping], columns: Mapping[str, str] | None, row_options: Mapping[str, Any]
) -> list[tuple[Any, str | None]]:
    """``(sample, None)`` or ``(None, reason)`` per row, in order."""
    from ..row_layouts import try_to_sample

    out = []
    for row in rows:
        if ERROR_FIELD in row:
            out.append((None, row[ERROR_FIELD]))
        else:
            out.append(try_to_sample(row, columns, **row_options))
    return out


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
