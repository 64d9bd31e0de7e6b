"""A downstream ablation: train the same small CLIP on what each filter keeps, compare retrieval (docs/ablation.md).

Example:
    >>> from unifilter_hf.ablation import ablate
    >>> ablate("out/demo/pool", "out/demo/curation")  # doctest: +SKIP
    PosixPath('out/demo/curation')
"""

from .run import AblationError, AblationSettings, ablate, format_table

__all__ = ["AblationError", "AblationSettings", "ablate", "format_table"]
