"""A finished curation run as the report reads it: manifest, summary, plan, and per-kind score statistics.

The sidecars (``scores/<shard>.parquet``) are streamed batch by batch and never held: each batch's scored rows
add to a fine score histogram (all rows and kept rows), to their bands' counts, and to a bounded,
deterministic sample per band (the rows with the smallest hash of shard and position), from which the example
rows are picked; all with numpy, without a Python object per row. Memory stays
constant whatever the number of rows; the figures are exact to the histogram's 0.005 resolution. Only the
example rows are read back from the source, each shard streamed once up to its last wanted row.

Example:
    >>> band_of(2.7), band_of(-0.2), band_of(float("nan"))
    (3, 0, None)
"""

from __future__ import annotations

import heapq
import json
import math
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..curation.selection import decide_many, scores_by_kind
from ..errors import UniFilterError
from ..levels import NUM_LEVELS, level_of, levels_of

BIN_WIDTH = 0.005  # histogram resolution on the score axis
BIN_LOW, BIN_HIGH = -1.0, 4.0  # scores outside fall into the first / last bin (the axis uses the true range)
SAMPLE_PER_BAND = 256  # rows remembered per kind and band, to pick examples from


class ReportError(UniFilterError, RuntimeError):
    """The folder is not a finished curation run; the message names the fix."""


def band_of(score: float | None) -> int | None:
    """The score band (0..3) a score falls in: its level (:func:`unifilter_hf.levels.level_of`)."""
    return None if score is None else level_of(score)


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
class KindStats:
    """Everything the report needs about the scored rows of one kind, in constant memory."""

    hist: np.ndarray = field(default_factory=lambda: np.zeros(round((BIN_HIGH - BIN_LOW) / BIN_WIDTH), np.int64))
    kept_hist: np.ndarray = field(
        default_factory=lambda: np.zeros(round((BIN_HIGH - BIN_LOW) / BIN_WIDTH), np.int64))
    bands: list[int] = field(default_factory=lambda: [0] * NUM_LEVELS)
    kept_bands: list[int] = field(default_factory=lambda: [0] * NUM_LEVELS)
    low: float = math.inf
    high: float = -math.inf
    samples: list[list[tuple]] = field(default_factory=lambda: [[] for _ in range(NUM_LEVELS)])  # heaps per band

    @property
    def rows(self) -> int:
        return sum(self.bands)

    @property
    def kept(self) -> int:
        return sum(self.kept_bands)

    def add(self, shard: str, table: pa.Table, where: np.ndarray, scores: np.ndarray, kept: np.ndarray) -> None:
        """Add the scored rows ``where`` of a sidecar batch (their ``scores``, and ``kept`` per row of the batch)."""
        kept = kept[where]
        bins = np.clip(((scores - BIN_LOW) / BIN_WIDTH).astype(np.int64), 0, len(self.hist) - 1)
        bands = levels_of(scores)
        self.hist += np.bincount(bins, minlength=len(self.hist))
        self.kept_hist += np.bincount(bins[kept], minlength=len(self.hist))
        counts = zip(np.bincount(bands, minlength=NUM_LEVELS), np.bincount(bands[kept], minlength=NUM_LEVELS))
        for band, (n, k) in enumerate(counts):
            self.bands[band] += int(n)
            self.kept_bands[band] += int(k)
        if scores.size:
            self.low, self.high = min(self.low, float(scores.min())), max(self.high, float(scores.max()))
        # Keep the SAMPLE_PER_BAND rows of smallest hash per band: a uniform, deterministic sample. Only rows
        # that beat a full sample's worst hash become Python objects.
        index = table.column("index").to_numpy(zero_copy_only=False)[where]
        hashes = _mix(index.astype(np.uint64) ^ np.uint64(zlib.crc32(shard.encode())))
        for band in range(NUM_LEVELS):
            heap = self.samples[band]
            candidates = np.flatnonzero(bands == band)
            if len(heap) >= SAMPLE_PER_BAND:
                candidates = candidates[hashes[candidates] < np.uint64(-heap[0][0])]
            candidates = candidates[np.argsort(hashes[candidates], kind="stable")][:SAMPLE_PER_BAND]
            keys = table.column("key").take(where[candidates]).to_pylist()
            for c, key in zip(candidates, keys):
                entry = (-int(hashes[c]), float(scores[c]), key, shard, int(index[c]), bool(kept[c]))
                if len(heap) < SAMPLE_PER_BAND:
                    heapq.heappush(heap, entry)
                elif entry > heap[0]:
                    heapq.heapreplace(heap, entry)

    def edges(self) -> np.ndarray:
        return BIN_LOW + BIN_WIDTH * np.arange(len(self.hist) + 1)


@dataclass
class RunData:
    root: Path
    manifest: dict
    summary: dict
    plan: dict
    stats: dict[str, KindStats]  # per kind, scored rows only
    timings: list[dict]  # {"shard", "rows", "seconds"} for each shard whose scoring time was logged

    @property
    def kinds(self) -> list[str]:
        return sorted(self.stats)

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
    stats: dict[str, KindStats] = {}
    for shard in manifest["shards"]:
        path = root / "scores" / f"{shard}.parquet"
        if not path.exists():
            raise ReportError(f"shard {shard} of {root} has no scores: finish the job with the same curate command")
        for batch in pq.ParquetFile(path).iter_batches(columns=["index", "key", "kind", "score", "error"]):
            table = pa.Table.from_batches([batch])
            kept = decide_many(plan, shard, table)
            for kind, (where, scores) in scores_by_kind(table).items():
                stats.setdefault(kind, KindStats()).add(shard, table, where, scores, kept)
    return RunData(root, manifest, summary, plan, stats, _timings(root / "timings.jsonl"))


def _mix(x: np.ndarray) -> np.ndarray:
    """A 64-bit integer hash (splitmix64's finalizer), vectorized: spreads row positions uniformly."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


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
        for band in range(3, -1, -1):
            rows = sorted(run.stats[kind].samples[band], key=lambda e: (-e[1], e[2], e[3], e[4]))
            n = min(per_band, len(rows))
            for k in range(n):
                _, score, key, shard, index, kept = rows[int(k * len(rows) / n + len(rows) / n / 2)]
                picks.append(Example(shard, index, key, kind, score, band, kept))
    return picks


def _source_shards(run: RunData) -> dict[str, Any]:
    from ..sources import SourceError, open_source

    src = run.manifest["source"]
    try:
        shards = open_source(src["source"], config=src.get("dataset_config"), split=src.get("split") or "train",
                             revision=src.get("revision"))
    except SourceError as err:
        raise ReportError(f"cannot reopen the source to show example rows ({err})") from None
    return {s.name: s for s in shards}


def _rows_at(shard, wanted: set[int]) -> Iterator[tuple[int, dict]]:
    from ..sources import document_view

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
