"""The scoring settings shared by every door: `score`, `curate` and the `datasets` callables.

One frozen, typed dataclass (as TRL keeps a trainer's config), one function that adds its flags to a command
(`add_scoring_arguments`, an argument group named "scoring") and one that reads them back
(`ScoringSettings.from_args`). `score` and `curate` therefore take the same scoring flags with the same
meaning; `UniFilterSettings` (the `datasets` callables) extends it with the filter's threshold, and
`CurateConfig` holds one.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> _ = add_scoring_arguments(parser)
    >>> args = parser.parse_args(["--batch-size", "16", "--columns", "image=jpg,text=txt"])
    >>> settings = ScoringSettings.from_args(args)
    >>> settings.batch_size, settings.columns.schema, settings.max_images
    (16, 'caption', None)
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any

from .row_layouts import IMAGE_ERROR_POLICIES, ColumnMap, ImageErrorPolicy

DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)


@dataclass(frozen=True)
class ScoringSettings:
    """How rows are read and scored (typed, validated, immutable).

    Attributes:
        model: Hub id or local folder of the scorer (default: `$UNIFILTER_MODEL`, else the official model).
        device: where the model runs (default: CUDA if available).
        batch_size: rows per forward pass (never changes a score).
        columns: a `ColumnMap` (or dict, or "image=jpg,text=txt") naming the row columns; detected otherwise.
        max_images: read at most this many images per document (the rest is dropped, and counted).
        image_timeout: seconds per image URL fetch.
        on_image_error: what a document whose images failed to load gets: `"fail_if_all"` (fail it when none
            loaded), `"fail"` (when any failed) or `"score_rest"` (score what is left). See
            docs/input_handling.md.
        image_root: the folder relative image paths and mmc4 `image_name` resolve against (default: each data
            file's own folder in `score` and `curate`; the working folder for in-memory rows).
        read_workers: threads that read rows (fetch and decode images) at once (`score` and the callables;
            `curate` decodes in `--workers` processes instead). Not a command-line flag.
        max_padding: a micro-batch ends early where its padding would pass this fraction (None: never).
            Not a command-line flag.
        allow_local_files: local paths rows may name besides their data folder: `True` (any) or folders
            (`--allow-local-files FOLDER|all`); None reads `$UNIFILTER_ALLOW_LOCAL_FILES` (docs/security.md).
        allow_private_urls: private networks row URLs may reach: `True` (all) or networks such as
            `127.0.0.0/8` (`--allow-private-urls NETWORK|all`); None reads `$UNIFILTER_ALLOW_PRIVATE_URLS`.
        max_batch_tokens: most decoder positions (rows x longest row) in a micro-batch; bounds peak memory.
        compile: compile the vision and decoder layers (`unifilter_hf.compilation`; docs/scaling.md).
        dtype: `"float32"`, `"bfloat16"`, `"float16"` (GPUs) or `"auto"`/None (fp32 on CPU, bf16 on CUDA).
        prepare_workers: threads that prepare the next micro-batches while the model runs (None: 0 on a CPU,
            up to 4 on a GPU; `unifilter_hf.host_threads`). Never changes a score.

    Example:
        >>> ScoringSettings(max_images=4).replace(batch_size=16).scoring_identity()["max_images"]
        4
    """

    model: str | None = None
    device: str | None = field(default=None, compare=False)
    batch_size: int = 8
    columns: ColumnMap | None = None
    max_images: int | None = None
    image_timeout: float = 10.0
    on_image_error: ImageErrorPolicy = "fail_if_all"
    image_root: str | None = None
    read_workers: int = 8
    max_padding: float | None = 0.1
    allow_local_files: bool | tuple[str, ...] | None = None
    allow_private_urls: bool | tuple[str, ...] | None = None
    max_batch_tokens: int | None = None
    compile: bool = False
    dtype: str | None = None
    prepare_workers: int | None = None

    def __post_init__(self) -> None:
        for name in ("allow_local_files", "allow_private_urls"):
            object.__setattr__(self, name, _opt_in(getattr(self, name), name))
        if isinstance(self.model, os.PathLike):
            object.__setattr__(self, "model", os.fspath(self.model))
        if self.image_root is not None:
            object.__setattr__(self, "image_root", os.path.abspath(os.fspath(self.image_root)))
        if isinstance(self.columns, str):
            object.__setattr__(self, "columns", ColumnMap.parse(self.columns))
        elif self.columns is not None and not isinstance(self.columns, ColumnMap):
            object.__setattr__(self, "columns", ColumnMap.coerce(self.columns))
        if not _is_int(self.batch_size) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if self.max_images is not None and (not _is_int(self.max_images) or self.max_images < 1):
            raise ValueError(f"max_images must be a positive integer or None, got {self.max_images!r}")
        if not _is_number(self.image_timeout) or self.image_timeout <= 0:
            raise ValueError(f"image_timeout must be a positive number of seconds, got {self.image_timeout!r}")
        if self.on_image_error not in IMAGE_ERROR_POLICIES:
            raise ValueError(f"on_image_error must be one of {IMAGE_ERROR_POLICIES}, got {self.on_image_error!r}")
        if not _is_int(self.read_workers) or self.read_workers < 0:
            raise ValueError(f"read_workers must be a non-negative integer, got {self.read_workers!r}")
        if self.max_padding is not None and (not _is_number(self.max_padding) or self.max_padding < 0):
            raise ValueError(f"max_padding must be a non-negative number or None, got {self.max_padding!r}")
        if self.max_batch_tokens is not None and (not _is_int(self.max_batch_tokens) or self.max_batch_tokens < 1):
            raise ValueError(f"max_batch_tokens must be a positive integer or None, got {self.max_batch_tokens!r}")
        if self.prepare_workers is not None and (not _is_int(self.prepare_workers) or self.prepare_workers < 0):
            raise ValueError(f"prepare_workers must be a non-negative integer or None, got {self.prepare_workers!r}")
        if not isinstance(self.compile, bool):
            raise ValueError(f"compile must be True or False, got {self.compile!r}")
        if self.dtype is not None and self.dtype not in DTYPE_CHOICES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPE_CHOICES)} or None, got {self.dtype!r}")

    @classmethod
    def names(cls) -> list[str]:
        return sorted(f.name for f in dataclasses.fields(cls))

    def replace(self, **changes: Any):
        """A copy with `changes`; unknown names raise `TypeError` (a typo must not be ignored)."""
        unknown = sorted(set(changes) - set(self.names()))
        if unknown:
            raise TypeError(f"unknown UniFilter setting(s) {unknown}; valid: {', '.join(self.names())}")
        return dataclasses.replace(self, **changes)

    def scoring_identity(self) -> dict:
        """The settings that change a row's score (not the model, batch size, device or padding)."""
        return {
            "columns": None if self.columns is None else dataclasses.asdict(self.columns),
            "max_images": self.max_images,
            "on_image_error": self.on_image_error,
            "image_timeout": self.image_timeout,
            **({"image_root": self.image_root} if self.image_root is not None else {}),
            # reduced precision changes scores (by up to ~0.05); listed only when set, so older caches still match
            **({"dtype": self.dtype} if self.dtype not in (None, "auto") else {}),
        }

    def columns_dict(self) -> dict[str, str] | None:
        """The column map as `{role: column}` of the roles set (the form manifests and summaries hold)."""
        if self.columns is None:
            return None
        return {role: column for role, column in dataclasses.asdict(self.columns).items() if column}

    def to_dict(self) -> dict:
        """Plain values (JSON-ready), `columns` as `columns_dict()`."""
        return {**{f.name: getattr(self, f.name) for f in dataclasses.fields(ScoringSettings)},
                "columns": self.columns_dict()}

    def scorer_options(self) -> dict:
        """The keyword arguments of `QualityScorer` these settings fix (model and device aside)."""
        return {
            "batch_size": self.batch_size,
            "columns": self.columns,
            "max_images": self.max_images,
            "image_timeout": self.image_timeout,
            "on_image_error": self.on_image_error,
            "image_root": self.image_root,
            "read_workers": self.read_workers,
            "max_padding": self.max_padding,
            "allow_local_files": self.allow_local_files,
            "allow_private_urls": self.allow_private_urls,
            "max_batch_tokens": self.max_batch_tokens,
            "compile": self.compile,
            "dtype": self.dtype,
            "prepare_workers": self.prepare_workers,
        }

    def build_scorer(self, model: Any = None, processor: Any = None):
        """A `QualityScorer` with these settings: of `model` (a name, an in-memory model with `processor`, or a
        scorer whose model is shared), else of `self.model`, else of the default model."""
        from .scoring import QualityScorer, default_model_id

        if isinstance(model, QualityScorer):
            return model.with_options(**self.scorer_options())
        if model is None or isinstance(model, (str, os.PathLike)):
            name = str(model or self.model or default_model_id())
            return QualityScorer.from_pretrained(name, device=self.device, **self.scorer_options())
        if processor is None:
            raise ValueError("pass processor= together with an in-memory model")
        return QualityScorer(model, processor, device=self.device, **self.scorer_options())

    @classmethod
    def from_args(cls, args: argparse.Namespace, base: ScoringSettings | None = None):
        """The settings of a command parsed with `add_scoring_arguments`: the flags given, over `base` (for
        `curate`, its recipe) or the defaults."""
        given = {name: getattr(args, name) for name in _FLAGS if getattr(args, name, None) is not None}
        return (base or cls()).replace(**given)


def _opt_in(value: Any, name: str) -> bool | tuple[str, ...] | None:
    """``None``, ``True``/``False``, or a tuple of folders / networks (``"all"`` among them means ``True``)."""
    if value is None or isinstance(value, bool):
        return value
    values = (value,) if isinstance(value, (str, os.PathLike)) else tuple(value)
    values = tuple(os.fspath(v) for v in values)
    if "all" in values:
        return True
    if name == "allow_private_urls":
        from .safe_fetch import private_networks

        private_networks(values)  # a typo in a network is an error now, not a refusal per row later
    return values


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def _column_map(text: str) -> ColumnMap:
    try:
        return ColumnMap.parse(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


_DEFAULTS = ScoringSettings()
# field name -> (flag, argparse keywords); every flag defaults to None so that `from_args` sees what was given
_FLAGS: dict[str, tuple[str, dict]] = {
    "model": ("--model", {"help": "Hub id or local folder of the scorer (default: $UNIFILTER_MODEL, else "
                                  "weizhiwang/UniFilter-Qwen2.5-1.5B); official checkpoints load too"}),
    "device": ("--device", {"help": "cpu, cuda, cuda:1, ... (default: CUDA if available)"}),
    "batch_size": ("--batch-size", {"type": _positive_int, "metavar": "N",
                                    "help": f"rows per forward pass (default: {_DEFAULTS.batch_size})"}),
    "columns": ("--columns", {"type": _column_map, "metavar": "ROLE=COLUMN,...",
                              "help": "name the columns instead of detecting them, e.g. image=URL,text=TEXT or "
                                      "images=imgs,texts=txt or text_list=..,image_info=.."}),
    "max_images": ("--max-images", {"type": _positive_int, "metavar": "N",
                                    "help": "read at most N images per document (the rest is dropped, and "
                                            "counted in images_dropped; default: 64)"}),
    "image_timeout": ("--image-timeout", {"type": _positive_float, "metavar": "SECONDS",
                                          "help": f"per image URL fetch (default: {_DEFAULTS.image_timeout:g})"}),
    "on_image_error": ("--on-image-error", {"choices": list(IMAGE_ERROR_POLICIES),
                                            "help": "what a document whose images failed to load gets "
                                                    f"(default: {_DEFAULTS.on_image_error}; "
                                                    "docs/input_handling.md)"}),
    "image_root": ("--image-root", {"metavar": "DIR",
                                    "help": "folder relative image paths and mmc4 image_name resolve against "
                                            "(default: the folder of each data file; docs/inputs.md)"}),
    "allow_local_files": ("--allow-local-files", {"action": "append", "metavar": "FOLDER|all",
                                                  "help": "let rows name local files in FOLDER (repeatable), or "
                                                          "anywhere with 'all' (default: only inside the data "
                                                          "folder; docs/security.md)"}),
    "allow_private_urls": ("--allow-private-urls", {"action": "append", "metavar": "NETWORK|all",
                                                    "help": "let row URLs reach a private network such as "
                                                            "127.0.0.0/8 (repeatable), or every one with 'all' "
                                                            "(default: public addresses only; docs/security.md)"}),
    "max_batch_tokens": ("--max-batch-tokens", {"type": _positive_int, "metavar": "N",
                                                "help": "most decoder positions in a micro-batch: bounds peak "
                                                        "memory (a longer row runs alone; default: no budget)"}),
    "compile": ("--compile", {"action": "store_const", "const": True,
                              "help": "compile the vision and decoder layers with torch.compile (eager, with a "
                                      "warning, where torch cannot; docs/scaling.md)"}),
    "dtype": ("--dtype", {"choices": list(DTYPE_CHOICES),
                          "help": "model precision (default: auto = float32 on CPU, bfloat16 on CUDA; float16 "
                                  "needs a GPU)"}),
    "prepare_workers": ("--prepare-workers", {"type": _non_negative_int, "metavar": "N",
                                              "help": "threads preparing the next micro-batches while the model "
                                                      "runs (default: 0 on CPU, up to 4 on a GPU)"}),
}


def add_scoring_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Add the scoring flags (the group "scoring") to a command; read them with `ScoringSettings.from_args`."""
    group = parser.add_argument_group("scoring", "how rows are read and scored (the same in score and curate)")
    for name, (flag, options) in _FLAGS.items():
        group.add_argument(flag, dest=name, default=None, **options)
    return group


__all__ = ["ScoringSettings", "add_scoring_arguments"]
