"""A curation job: open the source, score unscored shards, select globally, write outputs and summary.

Steps, each resumable (a killed job restarted with the same command finishes with the same files):

1. ``manifest.json``: the scoring identity; a restart with another model or settings is refused.
2. ``scores/<shard>.parquet``: one sidecar per shard, skipped when present (a partly scored shard is redone).
3. ``selection.json``: the global plan (threshold or top-fraction cuts) computed from all sidecars.
4. ``rejected/<shard>.parquet`` then ``curated/<shard>.parquet``; skipped when present for the same plan.
5. ``summary.json``: counts, error reasons, score quantiles, model, settings, throughput.

The report, the dataset card and the push are not the job's: the entry points call
:func:`unifilter_hf.publishing.curation_run.finish_curation` on the folder the job returns.

Example:
    >>> from unifilter_hf.curation import CurateConfig, curate
    >>> run_dir = curate(CurateConfig(source="shards/", output="out/curated", top_fraction=0.3))  # doctest: +SKIP
    >>> load_summary(run_dir)["total"]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from pathlib import Path

from ..sources import SourceError, check_layouts, scan_source
from ..version import package_version
from .manifest import MANIFEST_VERSION, Layout, check_or_write_manifest, read_json, write_json_atomic
from .outputs import write_shard_outputs
from .selection import make_plan
from .settings import CurateConfig, CurationError
from .sidecars import SidecarColumns
from .summary import Progress, format_table, summarize

logger = logging.getLogger(__name__)


def _model_identity(config: CurateConfig, scorer) -> tuple[str, str]:
    from ..filtering import model_fingerprint
    from ..scoring import default_model_id

    if scorer is not None:
        name = getattr(scorer.model.config, "name_or_path", "") or "in-memory model"
        return name, model_fingerprint(scorer)
    name = config.scoring.model or default_model_id()
    return name, model_fingerprint(name)


def _start_over_selection(layout: Layout, plan: dict) -> None:
    """Keep finished outputs when the plan is unchanged; otherwise clear them before recording the new one."""
    if layout.selection.exists() and read_json(layout.selection) == plan:
        return
    for folder in (layout.curated, layout.rejected):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    write_json_atomic(layout.selection, plan)


def _load_scorer(config: CurateConfig, model_name: str):
    try:
        return config.scoring.build_scorer(model_name)
    except (OSError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise CurationError(f"cannot load model {model_name!r} ({first}); pass --model a folder or Hub id") from None


def load_summary(run_dir: str | Path) -> dict:
    """The ``summary.json`` of a finished job (counts, errors, selection, settings, throughput)."""
    return read_json(Layout(run_dir).summary)


def curate(config: CurateConfig, *, scorer=None) -> Path:
    """Run (or resume, or re-select) a curation job; returns its folder (read the summary with `load_summary`).

    ``scorer`` (a :class:`~unifilter_hf.scoring.QualityScorer`) replaces ``config.scoring.model`` for the local
    engine, and reads rows with its own options. Publishing options of ``config`` (report, card, push) are for
    :func:`unifilter_hf.publishing.curation_run.finish_curation`; a caller that pushes checks the token first
    (``publishing.hub.check_can_push``), before hours of scoring.
    """
    started = time.perf_counter()
    if not config.output:
        raise CurationError("no output folder: pass --output DIR")
    if config.source is None:
        raise CurationError("no source: give SOURCE (a Hub id, a folder or glob of shards, or .tar files)")
    layout = Layout(config.output)
    try:
        source = scan_source(config.source, config=config.dataset_config, split=config.split,
                             revision=config.revision)
        shards = source.shards
        if source.note() and not config.quiet:
            print(f"unifilter-hf curate: {source.note()}", file=sys.stderr)
        if not config.select_only:
            check_layouts(shards, config.scoring.columns)  # before the manifest: a wrong layout leaves nothing behind
    except SourceError as err:
        raise CurationError(str(err)) from None
    model_name, fingerprint = _model_identity(config, scorer)
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "package_version": package_version(),
        "model": model_name,
        "model_fingerprint": fingerprint,
        "source": config.source_identity(),
        "scoring": config.scoring_settings(),
        "shards": [s.name for s in shards],
    }
    check_or_write_manifest(layout, manifest, overwrite=config.overwrite)
    layout.make()
    layout.clean_temporaries()

    todo = [s for s in shards if not layout.sidecar(s.name).exists()]
    if todo and config.select_only:
        raise CurationError(
            f"--select-only: {len(todo)} of {len(shards)} shards have no scores yet; run without --select-only"
        )
    scored_rows, score_seconds, peak = 0, 0.0, None
    if todo:
        if config.threads:
            import torch

            torch.set_num_threads(config.threads)
        total = sum(s.num_rows for s in todo) if all(s.num_rows is not None for s in todo) else None
        if config.engine == "local" and scorer is None:
            scorer = _load_scorer(config, model_name)
        progress = Progress(total, quiet=config.quiet)
        t0 = time.perf_counter()
        try:
            if config.engine == "ray":
                from .engine_ray import run_ray

                if scorer is not None:
                    raise CurationError("--engine ray loads the model in each actor: pass model=, not scorer=")
                scored_rows = run_ray(config, model_name, todo, layout, progress)
            else:
                from .engine_local import run_local

                results = run_local(scorer, todo, layout, columns=config.scoring.columns, window=config.window_rows,
                                    workers=config.workers, progress=progress)
                scored_rows = sum(r.rows for r in results)
                peak = max(r.peak_rows_in_flight for r in results)
        finally:
            progress.close()
        score_seconds = time.perf_counter() - t0

    tables = SidecarColumns({s.name: layout.sidecar(s.name) for s in shards})
    plan = make_plan(tables, config.selection_settings())
    _start_over_selection(layout, plan)
    for shard in shards:
        if not layout.curated_file(shard.name).exists():
            write_shard_outputs(layout, shard, plan)

    summary = summarize(tables, plan)
    summary.update({
        "model": {"name": model_name, "fingerprint": fingerprint},
        "package_version": manifest["package_version"],
        "settings": config.to_dict(),
        "selection": plan,
        "shards": len(shards),
        "throughput": {
            "rows_scored_this_run": scored_rows,
            "scoring_seconds": round(score_seconds, 3),
            "rows_per_second": round(scored_rows / score_seconds, 3) if score_seconds else None,
            "peak_rows_in_flight": peak,
            "total_seconds": round(time.perf_counter() - started, 3),
        },
    })
    write_json_atomic(layout.summary, summary)
    if not config.quiet:
        print(format_table(summary))
        print(f"wrote {Path(config.output) / 'curated'} ({summary['total']['kept']} rows kept)")
    return layout.root
