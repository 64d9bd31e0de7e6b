"""Write ``RUN_DIR/report/report.html`` and its PNG figures for a finished curation run.

The page is rendered from ``report.html.jinja`` with jinja2 (autoescaped: source texts can hold markup); the
figures sit next to it and the thumbnails are inside it, so the folder can be copied, zipped or pushed and
opens offline.

Example:
    >>> write_report("out/curated")  # doctest: +SKIP
    PosixPath('out/curated/report/report.html')
"""

from __future__ import annotations

from pathlib import Path

import jinja2

from ..curation.manifest import Layout, commit, temporary_path
from ..levels import LEVEL_NAMES
from .ablation_section import ablation_section
from .examples import build_examples
from .figures import FIGURES
from .run_data import ReportError, RunData, fetch_rows, load_run, pick_examples

TEMPLATE = "report.html.jinja"


def _counts(run: RunData) -> list[dict]:
    rows = []
    for kind, c in run.summary.get("counts", {}).items():
        cut = run.cut(kind)
        median = (run.summary.get("score_quantiles", {}).get(kind) or {}).get("q50")
        rows.append({"kind": kind, **c, "cut": "-" if cut is None else f"{cut:.3f}",
                     "median": "-" if median is None else f"{median:.3f}"})
    return rows


def _throughput_text(run: RunData) -> str:
    t = run.summary.get("throughput", {})
    logged = sum(x["rows"] for x in run.timings)
    seconds = sum(x["seconds"] for x in run.timings)
    if not logged:
        return "No scoring time was logged for this run (its sidecars came from an earlier version)."
    text = f"{logged} rows scored in {seconds:.1f} s of shard time ({logged / seconds:.1f} rows/s)"
    if t.get("rows_scored_this_run") is not None:
        text += f"; the last command scored {t['rows_scored_this_run']} rows and took {t.get('total_seconds')} s"
    return text + "."


def _scorer_for(run: RunData, scorer, device: str | None):
    """The scorer for attribution: the one given, else the run's model when it is unchanged."""
    if scorer is not None:
        return scorer, None
    from ..filtering import model_fingerprint
    from ..scoring import ModelNotFoundError, QualityScorer

    name = run.manifest.get("model")
    try:
        if model_fingerprint(name) != run.manifest.get("model_fingerprint"):
            return None, f"attribution skipped: the model {name!r} changed since the run (another fingerprint)"
        return QualityScorer.from_pretrained(name, device=device), None
    except (ModelNotFoundError, OSError, ValueError) as err:
        return None, f"attribution skipped: cannot load the run's model {name!r} ({str(err).splitlines()[0]})"


def write_report(run_dir: str | Path, *, scorer=None, examples_per_band: int = 3,
                 explain_bands: tuple[int, ...] = (0, 1), attribution: bool = True,
                 device: str | None = None) -> Path:
    """Write the report of the curation run in ``run_dir``; returns the path of ``report.html``.

    ``scorer`` (a :class:`~unifilter_hf.scoring.QualityScorer`) runs the attribution; without it the run's
    model is loaded, and attribution is skipped with a note when that model is gone or changed.
    ``explain_bands``: the score bands whose example documents get attribution (low bands by default).
    """
    run = load_run(run_dir)
    out = Layout(run.root).report
    out.mkdir(exist_ok=True)
    figures, skipped = {}, []
    for name, draw in FIGURES.items():
        (out / name).unlink(missing_ok=True)  # a figure with nothing to draw must not linger from a last run
        try:
            if draw(run, out / name) is not None:
                figures[name] = name
        except Exception as err:  # noqa: BLE001 - a figure that cannot be drawn is skipped, and said so
            (out / name).unlink(missing_ok=True)
            skipped.append(f"{name} ({type(err).__name__})")

    ablation = ablation_section(run.root, out)
    examples = pick_examples(run, examples_per_band)
    note = fetch_rows(run, examples)
    if examples and note is None:
        wants = attribution and any(ex.band in explain_bands for ex in examples)
        model_note = None
        if wants:
            scorer, model_note = _scorer_for(run, scorer, device)
        note = build_examples(run, examples, scorer if wants else None, explain_bands if wants else ())
        note = model_note or note
    if skipped:
        note = "; ".join(filter(None, [note, "figures not drawn: " + ", ".join(skipped)]))
    kinds = []
    for kind in run.kinds:
        bands = []
        for band in range(3, -1, -1):
            chosen = [ex for ex in examples if ex.kind == kind and ex.band == band]
            total = run.stats[kind].bands[band]
            if total:
                bands.append({"band": band, "name": LEVEL_NAMES[band], "rows": total, "examples": chosen})
        kinds.append({"name": kind, "bands": bands})

    source = run.manifest.get("source", {})
    env = jinja2.Environment(loader=jinja2.PackageLoader("unifilter_hf", "report"), autoescape=True)
    html = env.get_template(TEMPLATE).render(
        title=str(run.root), package_version=run.summary.get("package_version", "-"),
        source=" · ".join(f"{k}={v}" for k, v in source.items() if v is not None),
        model=run.manifest.get("model"), fingerprint=run.manifest.get("model_fingerprint", ""),
        selection=run.selection_text(), shards=len(run.manifest.get("shards", [])), counts=_counts(run),
        figures=figures, errors=list(run.summary.get("errors_by_reason", {}).items()),
        throughput_text=_throughput_text(run), example_kinds=kinds, examples_note=note,
        explain_bands=list(explain_bands) if attribution else [], ablation=ablation,
    )
    path = out / "report.html"
    tmp = temporary_path(path)  # a report cut short by a kill never replaces a whole one
    tmp.write_text(html, encoding="utf-8")
    commit(tmp, path)
    return path


__all__ = ["ReportError", "write_report"]
