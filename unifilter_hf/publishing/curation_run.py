"""What follows a curation job: its HTML report, its dataset card, and the push to the Hub.

The job (:func:`unifilter_hf.curation.curate`) only writes data; the entry points (``unifilter-hf curate``,
the demo) call :func:`finish_curation` on the folder it returns, so jobs never import presentation.

Example:
    >>> from unifilter_hf.curation import CurateConfig, curate
    >>> config = CurateConfig(source="shards/", output="out/hq", top_fraction=0.3)  # doctest: +SKIP
    >>> finish_curation(curate(config), config)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..curation.settings import CurateConfig
from .dataset_cards import write_curation_card
from .hub import push_curation_run

logger = logging.getLogger(__name__)


def write_report_or_warn(run_dir: str | Path, *, device: str | None = None) -> Path | None:
    """The HTML report; a failure is a warning, never the end of a job whose results are already written."""
    from ..report import write_report

    try:
        return write_report(run_dir, device=device)
    except Exception as err:  # noqa: BLE001 - the curated data is done; the report can be written again
        logger.warning("the report could not be written (%s: %s); retry with `unifilter-hf report %s`",
                       type(err).__name__, err, run_dir)
        return None


def finish_curation(run_dir: str | Path, config: CurateConfig) -> Path | None:
    """Write the report (unless ``config.report`` is False) and the card, then push if asked; returns the report.

    The report comes first: the card links its histogram.
    """
    run_dir = Path(run_dir)
    report = write_report_or_warn(run_dir, device=config.scoring.device) if config.report else None
    write_curation_card(run_dir, license=config.license)
    if report and not config.quiet:
        print(f"wrote {report}")
    if config.push_to_hub:
        url = push_curation_run(run_dir, config.push_to_hub, scores_only=config.push_scores_only,
                                private=config.private, revision=config.hub_revision, license=config.license)
        print(f"pushed: {url}")
    return report
