"""A finished curation run as the report reads it: manifest, summary, plan, every sidecar row, examples.

The sidecars (``scores/<shard>.parquet``) hold every row's score and error, so the plots never touch the
source. Only the example rows are read back from the source, shard by shard, each shard streamed once up to
its last wanted row.

Example:
    >>> band_of(2.7), band_of(-0.2), band_of(float("nan"))
    (3, 0, None)
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from ..curation.selection import decide


class ReportError(RuntimeError):
    """The folder is not a finished curation run; the message names the fix."""


def band_of(score: float | None) -> int | None:
    """The score band (0..3) a score falls in: the level it rounds to, clamped to the scale."""
    if score is None or math.isnan(score):
        return None
    return int(min(3, max(0, math.floor(score + 0.5))))


@dataclass
class Example:
    """One row shown in the report's grid."""

    shard: str
    index: int
    key: str
    kind: str
    score: float
    band: int
    kept: bool
    row: dict | None = None  # the source row, once fetched
    extra: dict = field(default_factory=dict)


@dataclass
class RunData:
    root: Path
    manifest: dict
    summary: dict
    plan: dict
    rows: list[dict]  # every sidecar row plus "shard" and "kept"
    timings: list[dict]  # {"shard", "rows", "seconds"} for each shard whose scoring time was logged

    def scored(self, kind: str | None = None) -> list[dict]:
        return [r for r in self.rows if r["error"] is None and not math.isnan(r["score"])
                and (kind is None or r["kind"] == kind)]

    @property
    def kinds(self) -> list[str]:
        return sorted({r["kind"] for r in self.rows})

    def cut(self, kind: str) -> float | None:
        """The score at which this kind's selection cuts (the threshold, or the last kept row's score)."""
        if "threshold" in self.plan:
            return float(self.plan["threshold"])
        entry = self.plan.get("cuts", {}).get(kind)
        if not entry or entry.get("cut") is None:
            return None
        return -float.fromhex(entry["cut"][0])

    def selection_text(self) -> str:
        settings = self.plan.get("settings", {})
        if "threshold" in self.plan:
            text = f"threshold {self.plan['threshold']:g}"
        else:
            text = f"top fraction {settings.get('top_fraction'):g} per kind"
        return text + (", rows with errors kept" if settings.get("keep_errors") else "")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ReportError(f"{path.parent} has no {path.name}: give the --output folder of a finished "
                          "`unifilter-hf curate` run") from None


def load_run(run_dir: str | Path) -> RunData:
    """Read a run folder; raises :class:`ReportError` when it is not a finished curation run."""
    root = Path(run_dir)
    if not root.is_dir():
        raise ReportError(f"no such folder: {root} (give the --output folder of a `unifilter-hf curate` run)")
    manifest = _read_json(root / "manifest.json")
    summary = _read_json(root / "summary.json")
    plan = _read_json(root / "selection.json")
    rows: list[dict] = []
    for shard in manifest["shards"]:
        path = root / "scores" / f"{shard}.parquet"
        if not path.exists():
            raise ReportError(f"shard {shard} of {root} has no scores: finish the job with the same curate command")
        for row in pq.read_table(path).to_pylist():
            row["shard"] = shard
            row["kept"] = decide(plan, shard, row)[0]
            rows.append(row)
    return RunData(root, manifest, summary, plan, rows, _timings(root / "timings.jsonl"))


def _timings(path: Path) -> list[dict]:
    """The last recorded scoring time of each shard (a resumed job logs the shards it scored again)."""
    latest: dict[str, dict] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                entry = json.loads(line)
                latest[entry["shard"]] = entry
            except (ValueError, KeyError):  # a line cut by a kill
                continue
    return list(latest.values())


def pick_examples(run: RunData, per_band: int) -> list[Example]:
    """Up to ``per_band`` rows of each kind and score band, spread evenly over the band's score range."""
    picks = []
    for kind in run.kinds:
        by_band: dict[int, list[dict]] = {}
        for row in run.scored(kind):
            by_band.setdefault(band_of(row["score"]), []).append(row)
        for band in sorted(by_band, reverse=True):
            rows = sorted(by_band[band], key=lambda r: (-r["score"], r["key"], r["shard"], r["index"]))
            step = len(rows) / min(per_band, len(rows))
            for k in range(min(per_band, len(rows))):
                r = rows[int(k * step + step / 2)]
                picks.append(Example(r["shard"], r["index"], r["key"], kind, r["score"], band, r["kept"]))
    return picks


def _source_shards(run: RunData) -> dict[str, Any]:
    from ..dataset_io import SourceError, open_source

    src = run.manifest["source"]
    try:
        shards = open_source(src["source"], config=src.get("dataset_config"), split=src.get("split") or "train",
                             revision=src.get("revision"))
    except SourceError as err:
        raise ReportError(f"cannot reopen the source to show example rows ({err})") from None
    return {s.name: s for s in shards}


def _rows_at(shard, wanted: set[int]) -> Iterator[tuple[int, dict]]:
    from ..dataset_io import document_view

    last = max(wanted)
    for index, row in enumerate(shard.rows()):
        if index in wanted:
            yield index, document_view(row) if shard.format == "webdataset" else row
        if index >= last:
            return


def fetch_rows(run: RunData, examples: list[Example]) -> str | None:
    """Fill ``example.row`` from the source; returns why rows could not be read (None when all were)."""
    try:
        shards = _source_shards(run)
    except ReportError as err:
        return str(err)
    wanted: dict[str, dict[int, list[Example]]] = {}
    for ex in examples:
        wanted.setdefault(ex.shard, {}).setdefault(ex.index, []).append(ex)
    for name, by_index in wanted.items():
        if name not in shards:
            return f"the source no longer has shard {name}"
        for index, row in _rows_at(shards[name], set(by_index)):
            for ex in by_index[index]:
                ex.row = row
    return None


def column_map(run: RunData) -> Mapping[str, str] | None:
    return (run.manifest.get("scoring") or {}).get("columns")
