"""The settings of a curation job (one dataclass) and recipe files (YAML holding the same keys).

Example:
    >>> cfg = CurateConfig(source="shards/", output="out/", threshold=2.5)
    >>> cfg.selection_settings()["threshold"]
    2.5
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any


class CurationError(RuntimeError):
    """A job-level problem; the message is one line that names the fix (the CLI exits 2 with it)."""


@dataclass
class CurateConfig:
    """Everything a job needs; recipes (YAML) and CLI flags fill the same fields.

    Scoring identity (must match to resume): the model fingerprint, the source (with ``dataset_config``,
    ``split``, ``revision``), ``columns``, ``max_images`` and ``image_root``. Selection (``threshold`` /
    ``top_fraction`` / ``keep_errors``) can change between runs: the sidecars are reused and only the selection
    is redone.
    """

    source: Any = None
    output: str | None = None
    model: str | None = None
    dataset_config: str | None = None
    split: str = "train"
    revision: str | None = None
    columns: dict[str, str] | None = None
    max_images: int | None = None
    image_root: str | None = None  # relative image paths and mmc4 image_name resolve here (default: data folder)
    batch_size: int = 8
    device: str | None = None
    window: int | None = None  # rows bucketed together by length; default 8 batches
    workers: int = 0  # image-decoding processes (0: decode in the main process)
    threads: int | None = None  # torch intra-op threads; CPU sums depend on it, so engines must agree
    threshold: float | None = None
    top_fraction: float | None = None
    keep_errors: bool = False
    select_only: bool = False
    engine: str = "local"
    ray_address: str | None = None
    num_actors: int = 1
    gpus_per_actor: float = 0.0
    quiet: bool = False
    overwrite: bool = False
    report: bool = True  # write report/report.html at the end (unifilter_hf.report)
    # Publishing (never part of the scoring identity): see unifilter_hf.publishing.hub and docs/hub.md
    push_to_hub: str | None = None
    private: bool = False
    hub_revision: str | None = None
    push_scores_only: bool = False
    license: str | None = None
    extra: dict = field(default_factory=dict)  # free-form notes from a recipe (kept in the manifest)

    def __post_init__(self) -> None:
        if self.threshold is not None and self.top_fraction is not None:
            raise CurationError("give either --threshold or --top-fraction, not both")
        if self.top_fraction is not None and not 0.0 <= self.top_fraction <= 1.0:
            raise CurationError(f"--top-fraction must be within 0..1, got {self.top_fraction}")
        if self.engine not in ("local", "ray"):
            raise CurationError(f"unknown --engine {self.engine!r}: use local or ray")
        if self.batch_size < 1:
            raise CurationError("--batch-size must be at least 1")

    @property
    def window_rows(self) -> int:
        return self.window or self.batch_size * 8

    def selection_settings(self) -> dict:
        """What decides kept/rejected; defaults to the package threshold when neither is given."""
        return {"threshold": self.threshold, "top_fraction": self.top_fraction, "keep_errors": self.keep_errors}

    def scoring_settings(self) -> dict:
        """Settings that change scores (checked on resume); batch size and window do not change them."""
        return {"columns": self.columns, "max_images": self.max_images, "image_root": self.image_root}

    def source_identity(self) -> dict:
        source = self.source if isinstance(self.source, str) else type(self.source).__name__
        return {"source": source, "dataset_config": self.dataset_config, "split": self.split, "revision": self.revision}

    def to_dict(self) -> dict:
        out = asdict(self)
        out["source"] = self.source_identity()["source"]
        return out


def load_recipe(path: str | Path) -> dict:
    """The keys of a YAML recipe, checked against :class:`CurateConfig` (unknown keys are an error).

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "r.yaml")
        >>> _ = open(p, "w").write("top_fraction: 0.3\\nbatch_size: 4\\n")
        >>> load_recipe(p)
        {'top_fraction': 0.3, 'batch_size': 4}
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise CurationError(f"recipe not found: {path} (give a .yaml recipe path, e.g. recipes/curate-obelics.yaml)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise CurationError(f"recipe {path} is not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise CurationError(f"recipe {path} must be a mapping of settings")
    known = {f.name for f in fields(CurateConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise CurationError(f"recipe {path}: unknown keys {unknown}; known keys: {sorted(known)}")
    return data
