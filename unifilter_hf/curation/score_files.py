"""`unifilter-hf score`: score a table (file, folder of shards, glob or Hub dataset) and write it back.

The scoring itself is `ds.map(unifilter_score)`; the filter reads the score columns it wrote (the model never
runs twice on a row). Image columns are read undecoded, so a corrupt image is an error row, and results are
never taken from an earlier run's cache: a rerun from another folder resolves relative image paths anew
(resumable jobs are `unifilter-hf curate`'s).

Example:
    >>> summary = score_table("rows.parquet", "scored.jsonl", model="path/to/checkpoint", threshold=2.0)
    ... # doctest: +SKIP
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

from ..scoring_settings import ScoringSettings
from ..sources import SourceError, undecode_images

# file suffix -> `datasets` packaged builder / writer name
_READERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}
_WRITERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}


def check_output(path: str | os.PathLike) -> str:
    """The writer for `path`'s suffix, or a one-line error naming the accepted ones (checked before any work)."""
    suffix = Path(path).suffix.lower()
    if suffix not in _WRITERS:
        raise SourceError(f"cannot write {str(path)!r}: the output must end in .parquet, .jsonl or .csv")
    return _WRITERS[suffix]


def load_table(source: str, *, config: str | None = None, split: str = "train", revision: str | None = None):
    """A `datasets.Dataset` from a file, a folder of shards, a glob or a Hub dataset id; images undecoded."""
    return _load(source, _data_files(source), config=config, split=split, revision=revision)


def _load(source: str, files: list[str] | None, *, config: str | None, split: str, revision: str | None):
    import datasets

    if files is not None:
        builders = {_READERS[Path(f).suffix.lower()] for f in files}
        if len(builders) > 1:
            raise SourceError(f"{source}: mixed file formats {sorted(builders)}; point at one format")
        ds = datasets.load_dataset(builders.pop(), data_files=files, split="train")
    else:
        try:
            ds = datasets.load_dataset(source, config, split=split, revision=revision)
        except Exception as err:  # noqa: BLE001 - offline, unknown id, gated: one line for the user
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise SourceError(
                f"cannot open {source!r} as a file, folder or Hub dataset ({first}); check the path or the id, "
                "and that HF_HUB_OFFLINE is unset for Hub datasets"
            ) from None
    return undecode_images(ds)


def _data_files(source: str) -> list[str] | None:
    """Local data files of `source`, or None when it is not a local path (then it is read as a Hub id)."""
    if any(ch in source for ch in "*?["):
        files = sorted(f for f in glob.glob(source, recursive=True) if Path(f).suffix.lower() in _READERS)
        if not files:
            raise SourceError(f"no .parquet, .jsonl or .csv files match {source!r}")
        return files
    path = Path(source)
    if path.is_file():
        if path.suffix.lower() not in _READERS:
            raise SourceError(f"unsupported input {source!r}: use .parquet, .jsonl/.json or .csv files")
        return [str(path)]
    if path.is_dir():
        files = sorted(str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _READERS)
        if not files:
            raise SourceError(f"no .parquet, .jsonl or .csv shards in {source!r}")
        return files
    if source.startswith((".", "/", "~")) or source.count("/") != 1:
        raise SourceError(f"no such file or folder: {source!r} (a Hub dataset id looks like owner/name)")
    return None


def score_table(
    source: str,
    output: str | os.PathLike,
    *,
    threshold: float | None = None,
    keep_errors: bool = False,
    config: str | None = None,
    split: str = "train",
    revision: str | None = None,
    scoring: ScoringSettings | None = None,
    **settings: Any,
) -> dict:
    """Score `source` and write every row (or, with `threshold`, the kept rows) to `output`.

    `scoring` holds the scoring settings (`unifilter-hf score` passes `ScoringSettings.from_args`);
    `settings` are single `ScoringSettings` fields over it (`model=`, `batch_size=`, ...). Returns counts:
    rows, errors, written.
    """
    from ..filtering import UniFilterKeep, UniFilterScore

    writer = check_output(output)
    files = _data_files(source)  # a missing input fails before the model loads, the model before data is read
    score = UniFilterScore(settings=scoring, **settings)
    score.scorer  # noqa: B018 - load the model first: a wrong --model fails before the data is read
    ds = _load(source, files, config=config, split=split, revision=revision)
    batch_size = score.settings.batch_size
    ds = ds.map(score, batched=True, batch_size=batch_size * 4, load_from_cache_file=False)
    errors = sum(1 for e in ds["unifilter_error"] if e)
    rows = len(ds)
    if threshold is not None:
        keep = UniFilterKeep(score.scorer, fingerprint=score.model_identity(),
                             settings=score.settings.replace(threshold=threshold, keep_errors=keep_errors))
        ds = ds.filter(keep, batched=True, load_from_cache_file=False)
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    if writer == "json":
        ds.to_json(str(output), lines=True)
    else:
        getattr(ds, f"to_{writer}")(str(output))
    return {"rows": rows, "errors": errors, "written": len(ds)}


__all__ = ["check_output", "load_table", "score_table"]
