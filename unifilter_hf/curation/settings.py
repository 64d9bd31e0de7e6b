"""The settings of a curation job (one dataclass) and recipe files (YAML holding the same keys).

Example:
    >>> cfg = CurateConfig(source="shards/", output="out/", threshold=2.5)
    >>> cfg.selection_settings()["threshold"]
    2.5
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..scoring_settings import ScoringSettings


class CurationError(RuntimeError):
    """A job-level problem; the message is one line that names the fix (the CLI exits 2 with it)."""


@dataclass(init=False)
class CurateConfig:
    """Everything a job needs; recipes (YAML) and CLI flags fill the same fields.

    ``scoring`` is a :class:`~unifilter_hf.scoring_settings.ScoringSettings` (model, device, batch size,
    columns, max_images, image_timeout, on_image_error, ...), the very settings ``unifilter-hf score`` takes;
    its fields may also be given flat, as recipes and ``CurateConfig(model=..., batch_size=...)`` do.

    Scoring identity (must match to resume): the model fingerprint, the source (with ``dataset_config``,
    ``split``, ``revision``), ``columns``, ``max_images`` and, when not the defaults, ``on_image_error`` and
    ``image_timeout``. Selection (``threshold`` / ``top_fraction`` / ``keep_errors``) can change between
    runs: the sidecars are reused and only the selection is redone.

    Example:
        >>> CurateConfig(source="shards/", output="out/", batch_size=4).scoring.batch_size
        4
    """

    source: Any = None
    output: str | None = None
    scoring: ScoringSettings = field(default_factory=ScoringSettings)
    dataset_config: str | None = None
    split: str = "train"
    revision: str | None = None
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

    def __init__(self, scoring: ScoringSettings | Mapping[str, Any] | None = None, **values: Any) -> None:
        flat = {name: values.pop(name) for name in ScoringSettings.names() if name in values}
        unknown = sorted(set(values) - set(_JOB_FIELDS))
        if unknown:
            raise TypeError(f"unknown curation setting(s) {unknown}; valid: {sorted(_JOB_FIELDS + _SCORING)}")
        for f in fields(self):
            if f.name != "scoring":
                default = f.default_factory() if f.default_factory is not MISSING else f.default
                setattr(self, f.name, values.get(f.name, default))
        try:
            base = scoring if isinstance(scoring, ScoringSettings) else ScoringSettings(**(scoring or {}))
            self.scoring = base.replace(**flat)
        except (TypeError, ValueError) as err:
            raise CurationError(f"scoring settings: {err}") from None
        self.__post_init__()

    def __post_init__(self) -> None:
        if self.threshold is not None and self.top_fraction is not None:
            raise CurationError("give either --threshold or --top-fraction, not both")
        if self.top_fraction is not None and not 0.0 <= self.top_fraction <= 1.0:
            raise CurationError(f"--top-fraction must be within 0..1, got {self.top_fraction}")
        if self.engine not in ("local", "ray"):
            raise CurationError(f"unknown --engine {self.engine!r}: use local or ray")

    @property
    def window_rows(self) -> int:
        return self.window or self.scoring.batch_size * 8

    def selection_settings(self) -> dict:
        """What decides kept/rejected; defaults to the package threshold when neither is given."""
        return {"threshold": self.threshold, "top_fraction": self.top_fraction, "keep_errors": self.keep_errors}

    def scoring_settings(self) -> dict:
        """Settings that change scores (the manifest's ``scoring``, checked on resume); batch size and window
        do not change them. The reading policies appear only when not the defaults, so the manifests of jobs
        started before they could be set still match."""
        out: dict[str, Any] = {"columns": self.scoring.columns_dict(), "max_images": self.scoring.max_images}
        for name in ("on_image_error", "image_timeout"):
            value = getattr(self.scoring, name)
            if value != getattr(_SCORING_DEFAULTS, name):
                out[name] = value
        return out

    def source_identity(self) -> dict:
        source = self.source if isinstance(self.source, str) else type(self.source).__name__
        return {"source": source, "dataset_config": self.dataset_config, "split": self.split, "revision": self.revision}

    def to_dict(self) -> dict:
        """Flat, JSON-ready settings (the summary's ``settings``): job fields and scoring fields side by side."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "scoring"}
        out.update(self.scoring.to_dict())
        out["source"] = self.source_identity()["source"]
        return out


_SCORING_DEFAULTS = ScoringSettings()
_SCORING = ScoringSettings.names()
_JOB_FIELDS = [f.name for f in fields(CurateConfig) if f.name != "scoring"]


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
    known = {f.name for f in fields(CurateConfig)} | set(_SCORING)  # scoring keys flat, or under `scoring:`
    unknown = sorted(set(data) - known)
    if unknown:
        raise CurationError(f"recipe {path}: unknown keys {unknown}; known keys: {sorted(known)}")
    return data
