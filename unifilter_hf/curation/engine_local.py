"""The local engine: score one shard window by window and write its sidecar.

Rows are read in windows of ``window`` rows (a multiple of the batch size). Each window is turned into
samples by :func:`~unifilter_hf.curation.decoding.decode_window`, in worker processes when a pool is given
(split over the workers; the next windows decode while the model scores the current one), then scored by
:meth:`QualityScorer.score_read` (the batch path of every door), which sorts the whole window by length into
micro-batches: bucketing spans the window, not one batch. At most ``(workers + 2) * window`` rows are held at
once, whatever the source size; :class:`InFlight` measures it.

Windows are fixed by row position, so the same shard gives the same batches, hence the same sidecar bytes,
with or without workers and on either engine.

Example:
    >>> flight = InFlight(); flight.add(8); flight.done(8); flight.peak
    8
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from ..row_layouts import ColumnMap, SchemaError, reads_as_caption
from ..scoring import ScoreRecord
from ..sources.shards import Shard, chunked, document_view
from .decoding import ERROR_FIELD, decode_window, unpack
from .manifest import Layout
from .sidecars import row_key, sidecar_table, write_sidecar


@dataclass
class InFlight:
    """Rows read from the source and not yet scored, and the most ever held at once."""

    now: int = 0
    peak: int = 0

    def add(self, n: int) -> None:
        self.now += n
        self.peak = max(self.peak, self.now)

    def done(self, n: int) -> None:
        self.now -= n


@dataclass
class ShardResult:
    shard: str
    rows: int
    seconds: float
    peak_rows_in_flight: int


def row_kind(row: Mapping, columns: ColumnMap | None) -> str:
    """``caption`` or ``document`` (OBELICS and mmc4), as the row is read; ``unknown`` when undetectable."""
    if ERROR_FIELD in row:
        return "unknown"
    try:
        columns = columns if columns is not None else ColumnMap.detect(map(str, row.keys()))
    except SchemaError:
        return "unknown"
    return "caption" if reads_as_caption(row, columns) else "document"


def shrink_spec(processor) -> tuple[int, int, int] | None:
    """``(width, height, resample)`` when images may be resized before the processor, identically; else None.

    The processor resizes every image to a fixed size with PIL; resizing it first with the same call gives the
    same pixels (PIL returns a copy for a same-size resize). The shortcut is checked once, on a synthetic
    photo, against the processor itself, and is not taken when it differs (padding to square, another
    resize rule, a future processor change), so it can never change a score.
    """
    import torch
    from PIL import Image

    image_processor = getattr(processor, "image_processor", None)
    size = getattr(image_processor, "size", None)
    height, width = getattr(size, "height", None), getattr(size, "width", None)
    if isinstance(size, Mapping):
        height, width = size.get("height"), size.get("width")
    resample = getattr(image_processor, "resample", None)
    if getattr(processor, "pad_to_square", False) or not height or not width or resample is None:
        return None
    spec = (int(width), int(height), int(resample))
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (61, 97, 3), generator=generator, dtype=torch.uint8).numpy()
    photo = Image.fromarray(pixels, "RGB")
    try:
        full = processor.pixel_values([photo])
        shrunk = processor.pixel_values([photo.resize(spec[:2], resample=spec[2])])
    except Exception:  # noqa: BLE001 - any surprise means: no shortcut
        return None
    return spec if torch.equal(full, shrunk) else None


def score_shard(
    scorer,
    shard: Shard,
    layout: Layout,
    *,
    columns: ColumnMap | Mapping[str, str] | None,
    window: int,
    pool=None,
    workers: int = 0,
    shrink: tuple[int, int, int] | None | str = "auto",
    progress=None,
    in_flight: InFlight | None = None,
) -> ShardResult:
    """Score every row of ``shard`` and write ``layout.sidecar(shard.name)`` atomically."""
    start = time.perf_counter()
    column_map = ColumnMap.coerce(columns) if columns else None
    row_options = dict(getattr(scorer, "row_options", {}))
    shrink = shrink_spec(scorer.processor) if shrink == "auto" else shrink
    in_flight = in_flight or InFlight()
    indices: list[int] = []
    keys: list[str] = []
    kinds: list[str] = []
    records: list[ScoreRecord] = []
    pending: deque = deque()
    ahead = workers + 1 if pool is not None else 0

    def finish() -> None:
        views, job = pending.popleft()
        if job:
            decoded = unpack([d for part in job for d in part.get()])
        else:
            decoded = decode_window(views, columns, row_options, shrink)
        records.extend(scorer.score_read(decoded))  # the scorer's one batch path: plan, batch, retry, merge
        in_flight.done(len(views))
        if progress is not None:
            progress.update(len(views))

    position = 0
    for rows in chunked(shard.rows(), window):
        in_flight.add(len(rows))
        views = [document_view(r) for r in rows] if shard.format == "webdataset" else rows
        for row in views:
            indices.append(position)
            keys.append(row_key(row, shard.name, position))
            kinds.append(row_kind(row, column_map))
            position += 1
        job = None
        if pool is not None:  # split the window over the workers: one window decodes in parallel
            step = -(-len(views) // workers)
            job = [pool.apply_async(decode_window, (views[i : i + step], columns, row_options, shrink, True))
                   for i in range(0, len(views), step)]
        pending.append((views, job))
        while len(pending) > ahead:
            finish()
    while pending:
        finish()
    write_sidecar(layout.sidecar(shard.name), sidecar_table(shard.name, indices, keys, kinds, records))
    result = ShardResult(shard.name, position, time.perf_counter() - start, in_flight.peak)
    layout.log_timing(result.shard, result.rows, result.seconds)
    return result


def run_local(scorer, shards: list[Shard], layout: Layout, *, columns, window: int, workers: int, progress):
    """Score ``shards`` one after the other with one decoding pool for the whole job."""
    from .decoding import decoding_pool

    pool = decoding_pool(workers)
    in_flight = InFlight()
    shrink = shrink_spec(scorer.processor)
    results = []
    try:
        for shard in shards:
            results.append(
                score_shard(scorer, shard, layout, columns=columns, window=window, pool=pool, workers=workers,
                            shrink=shrink, progress=progress, in_flight=in_flight)
            )
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    return results
