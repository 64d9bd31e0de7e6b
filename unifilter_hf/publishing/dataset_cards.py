"""Dataset cards (``README.md``) for a curation run folder and a ``synth`` output folder, rendered offline.

Templates: ``model_cards/curated_dataset.md`` (curated rows, or the score sidecars alone) and
``model_cards/synthetic_dataset.md``. A finished curation job always carries its card (``RUN_DIR/README.md``,
written by :func:`write_curation_card`), so the folder is ready for ``unifilter-hf push`` as it is.

Example:
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> run = Path(tempfile.mkdtemp())
    >>> _ = (run / "manifest.json").write_text(json.dumps({"source": {"source": "me/raw", "split": "train"}}))
    >>> _ = (run / "summary.json").write_text(json.dumps({
    ...     "model": {"name": "me/scorer", "fingerprint": "abc123"}, "selection": {"threshold": 2.0,
    ...     "settings": {"keep_errors": False}}, "counts": {"caption": {"in": 4, "kept": 1, "rejected": 3,
    ...     "errors": 1}}, "total": {"in": 4, "kept": 1, "rejected": 3, "errors": 1}}))
    >>> card = DatasetCard.load(write_curation_card(run))
    >>> card.data.license, card.data.configs[0]["data_files"][0]["path"]
    ('other', 'curated/*.parquet')
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from huggingface_hub import DatasetCard, DatasetCardData

from ..sources import source_license

_TEMPLATES = Path(__file__).resolve().parents[1] / "model_cards"  # links to the top-level folder; in the wheel
CURATED_TEMPLATE = _TEMPLATES / "curated_dataset.md"
SYNTHETIC_TEMPLATE = _TEMPLATES / "synthetic_dataset.md"
HISTOGRAM = "report/score_histogram.png"  # written by the run's HTML report, when there is one
TAGS = ["unifilter", "data-filtering"]


def _read(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _is_hub_id(source: str) -> bool:
    from ..sources import looks_like_hub_id

    return looks_like_hub_id(source) and not Path(source).exists()


_SIZE_NAMES = ["1K", "10K", "100K", "1M", "10M", "100M", "1B", "10B", "100B", "1T"]


def _size_category(n: int) -> str:
    """The Hub's ``size_categories`` value for ``n`` rows.

    Example:
        >>> _size_category(999), _size_category(5_000), _size_category(141_047_697), _size_category(2 * 10**12)
        ('n<1K', '1K<n<10K', '100M<n<1B', 'n>1T')
    """
    for k, name in enumerate(_SIZE_NAMES):
        if n < 10 ** (3 + k):
            return f"{_SIZE_NAMES[k - 1]}<n<{name}" if k else f"n<{name}"
    return "n>1T"


def selection_text(plan: dict) -> str:
    """One sentence for the selection plan of ``selection.json`` / ``summary.json``.

    Example:
        >>> selection_text({"threshold": 2.0, "settings": {}})
        'Rows scoring at least **2.0** were kept.'
    """
    if "threshold" in plan:
        return f"Rows scoring at least **{plan['threshold']}** were kept."
    fraction = plan.get("settings", {}).get("top_fraction")
    cuts = ", ".join(f"{kind}: {c['kept']} of {c['rows']} scored rows" for kind, c in plan.get("cuts", {}).items())
    return f"The top **{fraction}** fraction of scored rows of each kind was kept ({cuts or 'no scored rows'})."


def curation_card(run_dir: str | Path, *, scores_only: bool = False, license: str | None = None) -> DatasetCard:
    """The card of a curation run folder from its ``manifest.json`` and ``summary.json``."""
    run = Path(run_dir)
    manifest, summary = _read(run / "manifest.json"), _read(run / "summary.json")
    ident = manifest.get("source", {})
    source = str(ident.get("source"))
    license_id = license or source_license(source)
    total = summary.get("total", {})
    data = DatasetCardData(
        license=license_id or "other", tags=list(TAGS), pretty_name=f"{Path(source).name} (UniFilter-curated)",
        source_datasets=[source] if _is_hub_id(source) else None,
        size_categories=[_size_category(int(total.get("in" if scores_only else "kept", 0)))],
        configs=[{"config_name": "default", "data_files": [
            {"split": "train", "path": "scores/*.parquet" if scores_only else "curated/*.parquet"}]}],
    )
    model = summary.get("model", {})
    plan = summary.get("selection") or _read(run / "selection.json")
    return DatasetCard.from_template(
        data, template_path=str(CURATED_TEMPLATE), pretty_name=data.pretty_name, scores_only=scores_only,
        source=source, source_is_hub=_is_hub_id(source), dataset_config=ident.get("dataset_config") or "default",
        split=ident.get("split") or "-", revision=ident.get("revision") or "main (unpinned)",
        shards=summary.get("shards", len(manifest.get("shards", []))),
        package_version=summary.get("package_version", manifest.get("package_version", "-")),
        model=model.get("name", manifest.get("model", "-")),
        fingerprint=model.get("fingerprint", manifest.get("model_fingerprint", "-")),
        selection=selection_text(plan), keep_errors=bool(plan.get("settings", {}).get("keep_errors")),
        counts=sorted(summary.get("counts", {}).items()), total=total,
        histogram=HISTOGRAM if (run / HISTOGRAM).is_file() else None,
        license_id=license_id or "other", license_given=license_id is not None,
    )


def write_curation_card(run_dir: str | Path, *, scores_only: bool = False, license: str | None = None) -> Path:
    """Write ``run_dir/README.md`` (what ``curate`` does at the end of every job); returns its path."""
    path = Path(run_dir) / "README.md"
    curation_card(run_dir, scores_only=scores_only, license=license).save(path)
    return path


def synthetic_card(folder: str | Path, *, license: str | None = None) -> DatasetCard:
    """The card of a ``synth`` output folder (``records.jsonl``, ``images/``, ``manifest.json``)."""
    from ..synthesis.records import RECORDS

    out = Path(folder)
    manifest = _read(out / "manifest.json")
    levels: Counter = Counter()
    if (out / RECORDS).is_file():
        for line in (out / RECORDS).read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                levels[(record.get("kind"), record.get("level"))] += 1
    n = sum(levels.values())
    data = DatasetCardData(
        license=license or "other", tags=[*TAGS, "synthetic"], pretty_name=f"{out.name} (four-level synthetic set)",
        size_categories=[_size_category(n)],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": RECORDS}]}],
    )
    return DatasetCard.from_template(
        data, template_path=str(SYNTHETIC_TEMPLATE), pretty_name=data.pretty_name,
        generator=manifest.get("generator", "-"), model=manifest.get("model") or "-",
        prompt_version=manifest.get("prompt_version") or "-", seed=manifest.get("seed", "-"), records=n,
        levels=[(k, lv, c) for (k, lv), c in sorted(levels.items(), key=lambda x: (str(x[0][0]), -(x[0][1] or 0)))],
        license_id=license or "other", license_given=license is not None,
    )


def write_synthetic_card(folder: str | Path, *, license: str | None = None) -> Path:
    """Write ``folder/README.md`` for a ``synth`` output folder; returns its path."""
    path = Path(folder) / "README.md"
    synthetic_card(folder, license=license).save(path)
    return path


def card_license(folder: str | Path) -> str | None:
    """The ``license`` a folder's existing ``README.md`` declares, unless it is the ``other`` placeholder."""
    value = source_license(str(folder))
    return None if value in (None, "other") else value


__all__ = ["HISTOGRAM", "card_license", "curation_card", "selection_text", "synthetic_card",
           "write_curation_card", "write_synthetic_card"]


