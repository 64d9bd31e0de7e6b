"""``unifilter-hf demo``: make four-level data, train the quickstart scorer, curate a mixed pool, publish.

Offline, on CPU, in minutes; see docs/quickstart.md for what each stage writes and how to read the report.

Example:
    >>> from unifilter_hf.demo import run_demo
    >>> summary = run_demo("out/demo")  # doctest: +SKIP
"""

from .run import TOP_FRACTION, DemoError, DemoSizes, find_recipe, run_demo

__all__ = ["TOP_FRACTION", "DemoError", "DemoSizes", "find_recipe", "run_demo"]
