"""The license a local source folder declares in its README front matter (Hub dataset cards, model cards)."""

from __future__ import annotations

from pathlib import Path


def source_license(source: str | Path) -> str | None:
    """The ``license`` of a local source folder's README front matter (Hub sources are not looked up)."""
    readme = Path(source) / "README.md"
    if not readme.is_file():
        return None
    try:
        from huggingface_hub.repocard import metadata_load

        value = (metadata_load(readme) or {}).get("license")
    except Exception:  # malformed front matter: treat as absent
        return None
    return str(value) if value else None
