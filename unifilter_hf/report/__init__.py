"""What a curator looks at: the HTML report of a curation run, and why a document scored as it did.

- :func:`write_report` writes ``RUN_DIR/report/report.html`` with PNG figures (score histograms with the cut,
  kept fraction against threshold, score bands, errors by reason, throughput) and a grid of example rows per
  score band; ``unifilter-hf curate`` calls it at the end of every job, ``unifilter-hf report RUN_DIR`` again.
- :func:`explain` is leave-one-slot-out attribution for one document, for notebooks.

Example:
    >>> from unifilter_hf.report import explain, write_report
    >>> write_report("out/curated")  # doctest: +SKIP
"""

from .attribution import Attribution, SlotEffect, explain, explain_many
from .page import write_report
from .run_data import ReportError

__all__ = ["Attribution", "ReportError", "SlotEffect", "explain", "explain_many", "write_report"]
