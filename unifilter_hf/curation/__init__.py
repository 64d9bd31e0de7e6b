"""Sharded, resumable curation jobs: score every row of a source, select globally, write the curated set.

``curate(CurateConfig(source=..., output=...))`` is the Python API of ``unifilter-hf curate``; see
docs/curation.md. Importing this package is cheap (no torch): decoding workers import its modules.

Example:
    >>> from unifilter_hf.curation import CurateConfig
    >>> CurateConfig(source="data/", output="out/", top_fraction=0.3).selection_settings()
    {'threshold': None, 'top_fraction': 0.3, 'keep_errors': False}
"""

from __future__ import annotations

from typing import Any

__all__ = ["CurateConfig", "CurationError", "curate", "load_summary"]


def __getattr__(name: str) -> Any:
    # Lazy: `curate` pulls in torch and the model; CurateConfig and the errors do not.
    if name in ("curate", "load_summary"):
        from . import job

        return getattr(job, name)
    if name == "CurateConfig":
        from .settings import CurateConfig

        return CurateConfig
    if name == "CurationError":
        from .settings import CurationError

        return CurationError
    raise AttributeError(name)
