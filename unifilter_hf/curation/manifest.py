"""Output layout, atomic files and the job manifest (datatrove-style resume by finished-file markers).

Every file is written to a temporary name in its final folder and renamed into place, so a file that exists
is complete: a finished shard's sidecar *is* its completion marker. ``manifest.json`` pins the scoring
identity (model fingerprint, source, settings that change scores, package version, shard list); a restart
that differs refuses to mix results.

Example:
    >>> import tempfile
    >>> layout = Layout(tempfile.mkdtemp())
    >>> write_json_atomic(layout.root / "x.json", {"a": 1})
    >>> sorted(p.name for p in layout.root.iterdir())
    ['x.json']
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from .settings import CurationError

MANIFEST_VERSION = 1
_TMP_PREFIX = ".tmp-"


class Layout:
    """Where a job's files live under its output folder."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.manifest = self.root / "manifest.json"
        self.sidecars = self.root / "scores"
        self.curated = self.root / "curated"
        self.rejected = self.root / "rejected"
        self.selection = self.root / "selection.json"
        self.summary = self.root / "summary.json"
        self.timings = self.root / "timings.jsonl"
        self.report = self.root / "report"

    def sidecar(self, shard: str) -> Path:
        return self.sidecars / f"{shard}.parquet"

    def curated_file(self, shard: str) -> Path:
        return self.curated / f"{shard}.parquet"

    def rejected_file(self, shard: str) -> Path:
        return self.rejected / f"{shard}.parquet"

    def log_timing(self, shard: str, rows: int, seconds: float) -> None:
        """Append one scored shard's time to ``timings.jsonl`` (one short line: an atomic append).

        Kept out of the sidecars, whose bytes must not depend on how long a run took.
        """
        line = json.dumps({"shard": shard, "rows": rows, "seconds": round(seconds, 6)}) + "\n"
        with open(self.timings, "a") as fh:
            fh.write(line)

    def make(self) -> None:
        for folder in (self.root, self.sidecars, self.curated, self.rejected):
            folder.mkdir(parents=True, exist_ok=True)

    def clean_temporaries(self) -> None:
        """Remove the leftovers of a killed run (never complete files)."""
        for folder in (self.root, self.sidecars, self.curated, self.rejected, self.report):
            if folder.is_dir():
                for path in folder.iterdir():
                    if path.name.startswith(_TMP_PREFIX):
                        path.unlink(missing_ok=True)


def temporary_path(final: Path) -> Path:
    """A sibling temporary name (same folder, so the rename is atomic)."""
    return final.with_name(f"{_TMP_PREFIX}{os.getpid()}-{final.name}")


def commit(tmp: Path, final: Path) -> None:
    """fsync the temporary file and rename it into place."""
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = temporary_path(path)
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    commit(tmp, path)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def check_or_write_manifest(layout: Layout, manifest: dict, *, overwrite: bool) -> None:
    """Start a job, or check that a restart matches the job already in ``layout``; else refuse."""
    if overwrite and layout.root.exists() and (not layout.root.is_dir() or any(layout.root.iterdir())):
        if not _holds_a_job(layout):  # --overwrite deletes our job's folder, never a folder of someone's files
            raise CurationError(
                f"--overwrite refused: {layout.root} holds no curation job (no job manifest.json); "
                "it only replaces a folder an earlier curate run wrote: choose another --output"
            )
        shutil.rmtree(layout.root)
    if layout.manifest.exists():
        old = read_json(layout.manifest)
        for key in ("model_fingerprint", "source", "scoring", "shards", "package_version", "manifest_version"):
            if old.get(key) != manifest.get(key):
                raise CurationError(
                    f"{layout.root} holds a job with a different {key.replace('_', ' ')} "
                    f"({_short(old.get(key))} vs {_short(manifest.get(key))}); results are never mixed: "
                    "use another --output, or --overwrite to start over"
                )
        return
    if layout.root.exists() and any(p for p in layout.root.iterdir() if not p.name.startswith(_TMP_PREFIX)):
        raise CurationError(f"{layout.root} is not empty and has no manifest.json: use another --output or --overwrite")
    layout.make()
    write_json_atomic(layout.manifest, manifest)


def _holds_a_job(layout: Layout) -> bool:
    """Whether ``layout.root`` is a folder with a manifest this package wrote (not just any manifest.json)."""
    try:
        old = read_json(layout.manifest) if layout.root.is_dir() else None
    except (OSError, ValueError):
        return False
    return isinstance(old, dict) and "manifest_version" in old and "model_fingerprint" in old


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
