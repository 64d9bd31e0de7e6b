"""Run a backend over sources and write the synth output folder, resumably.

Output layout (``out_dir``)::

    records.jsonl   one SynthRecord per line, the four levels of a source written together
    images/         every referenced image once, named by content hash (<sha256[:20]>.<ext>)
    errors.jsonl    sources that failed (malformed replies, missing levels, request errors), with reasons
    manifest.json   generator, model, prompt version, seed and counts of the last run

Resume: sources whose four records are already in ``records.jsonl`` are skipped; a source with an
incomplete set of records (an interrupted write) is dropped from the file and generated again. Failed
sources are retried on the next run and never written as data.

Example:
    >>> import tempfile
    >>> from unifilter_hf.synthesis import RuleBasedBackend, bundled_items
    >>> report = synthesize(bundled_items("caption")[:3], RuleBasedBackend(seed=0), tempfile.mkdtemp())
    >>> report.generated, report.failed
    (3, 0)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .backends.base import GenerationResult, SourceItem, SynthesisBackend
from .image_bytes import image_bytes
from .records import RECORDS, SynthRecord, read_records
from .result_records import records_from_result

ERRORS = "errors.jsonl"
MANIFEST = "manifest.json"
IMAGES = "images"
FORMAT = "unifilter-synth/1"


@dataclass
class SynthReport:
    """What one run did."""

    generated: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


def completed_groups(out_dir: str | os.PathLike) -> set[str]:
    """Group ids with all four levels in ``records.jsonl``; drops partial groups from the file."""
    path = Path(out_dir) / RECORDS
    if not path.exists():
        return set()
    records = list(read_records(path))
    levels: dict[str, set[int]] = defaultdict(set)
    for rec in records:
        levels[rec.group_id].add(rec.level)
    done = {g for g, lv in levels.items() if lv == {0, 1, 2, 3}}
    with path.open(encoding="utf-8") as fh:
        n_lines = sum(1 for line in fh if line.strip())
    if len(done) != len(levels) or n_lines != len(records):
        _rewrite(path, [r for r in records if r.group_id in done])
    return done


def _rewrite(path: Path, records: list[SynthRecord]) -> None:
    tmp = path.with_suffix(".jsonl.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec.to_dict(), ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def save_image(src: Any, images_dir: Path) -> str:
    """Store one image under its content hash; return its path relative to the output folder.

    A file source keeps its original bytes (no re-encoding); anything else is written as PNG.
    """
    data, name = image_bytes(src)
    name = hashlib.sha256(data).hexdigest()[:20] + (Path(name).suffix.lower() or ".img")
    target = images_dir / name
    if not target.exists():
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    return f"{IMAGES}/{name}"


def result_to_records(result: GenerationResult, images_dir: Path) -> list[SynthRecord]:
    """The four records of a successful result, each image saved once under ``images_dir``."""
    saved: dict[int, str] = {}

    def path_of(index: int) -> str:
        if index not in saved:
            saved[index] = save_image(result.images[index], images_dir)
        return saved[index]

    return records_from_result(result, path_of)


def synthesize(
    items: Iterable[SourceItem],
    backend: SynthesisBackend,
    out_dir: str | os.PathLike,
    *,
    resume: bool = True,
    batch_size: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> SynthReport:
    """Generate four levels for every source in ``items`` and append them to ``out_dir``.

    ``resume=False`` starts from an empty folder (existing records, images and errors are removed).
    ``progress(done, total)`` is called after each batch.
    """
    out = Path(out_dir)
    if not resume and out.exists():
        for name in (RECORDS, ERRORS, MANIFEST):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / IMAGES, ignore_errors=True)
    images_dir = out / IMAGES
    images_dir.mkdir(parents=True, exist_ok=True)
    items = list(items)
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        raise ValueError("source ids must be unique")
    done = completed_groups(out)
    todo = [it for it in items if it.id not in done]
    report = SynthReport(skipped=len(items) - len(todo))
    backend.prepare(items)
    (out / ERRORS).unlink(missing_ok=True)  # errors describe the latest run only
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        lines: list[str] = []
        failures: list[dict[str, Any]] = []
        for result in backend.generate(batch):
            try:
                if not result.ok:
                    raise ValueError(result.error or "missing levels")
                recs = result_to_records(result, images_dir)
            except (ValueError, OSError) as err:
                failures.append({
                    "group_id": result.item.id, "error": str(err), "attempts": result.attempts,
                    "generator": backend.name, "raw": (result.raw or "")[:2000],
                })
                continue
            lines += [json.dumps(r.to_dict(), ensure_ascii=False) for r in recs]
            report.generated += 1
        _append(out / RECORDS, lines)
        _append(out / ERRORS, [json.dumps(e, ensure_ascii=False) for e in failures])
        report.failed += len(failures)
        report.errors += failures
        if progress is not None:
            progress(report.skipped + min(start + batch_size, len(todo)), len(items))
    _write_manifest(out, backend, report)
    return report


def _append(path: Path, lines: list[str]) -> None:
    if not lines:
        return
    with path.open("a", encoding="utf-8") as fh:  # one write per batch: groups land whole or not at all
        fh.write("\n".join(lines) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _write_manifest(out: Path, backend: SynthesisBackend, report: SynthReport) -> None:
    total = sum(1 for _ in read_records(out / RECORDS)) if (out / RECORDS).exists() else 0
    manifest = {
        "format": FORMAT,
        "generator": backend.name,
        "model": backend.model,
        "prompt_version": backend.prompt_version,
        "seed": backend.seed,
        "records": total,
        "last_run": {"generated": report.generated, "skipped": report.skipped, "failed": report.failed},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
