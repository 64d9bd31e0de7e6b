"""The package version, in a leaf module so any layer can record it (manifests, fingerprints, specs)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__version__ = "0.1.0"


def package_version() -> str:
    """The installed distribution's version, or ``__version__`` when running from a source tree.

    Example:
        >>> package_version().count(".") >= 1
        True
    """
    try:
        return version("unifilter-hf")
    except PackageNotFoundError:
        return __version__
