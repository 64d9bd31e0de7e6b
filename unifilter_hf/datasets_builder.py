"""``UniFilterSynthetic``: the four-level semi-synthetic data as a ``datasets`` builder, and its Hub push.

Dataset scripts are gone in datasets 5, so the builder is used from code and the result is pushed as
Parquet (one Hub config per builder config):

    >>> from unifilter_hf.datasets_builder import build_synthetic, push_synthetic_to_hub
    >>> dd = build_synthetic("caption", source="bundled")          # DatasetDict: train / validation
    >>> dd["train"].features["label"].names
    ['easy_negative', 'medium_negative', 'hard_negative', 'positive']
    >>> # push_synthetic_to_hub(dd, "me/unifilter-synthetic", "caption")

The builder only wires the parts together, as datasets' packaged Parquet builder does:
- :mod:`.synthesis.dataset_rows`: the records of a source (``"bundled"``, a ``unifilter-hf synth`` folder,
  or the released ``weizhiwang/unifilter_train_data`` layout, read by :mod:`.synthesis.released`);
- :mod:`.synthesis.splits`: the train/validation split by connected group (no source image in both);
- :mod:`.synthesis.dataset_schema`: the configs ``caption``, ``interleaved``, ``joint``, their features,
  and a record as one example.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

import datasets

from .levels import LEVEL_NAMES
from .synthesis.dataset_rows import load_rows, source_fingerprint
from .synthesis.dataset_schema import (
    CONFIG_KINDS,
    CONFIG_NAMES,
    image_embedder,
    record_to_example,
    synthetic_features,
)
from .synthesis.records import SynthRecord
from .synthesis.released import RELEASED_GENERATOR
from .synthesis.splits import split_by_group

__all__ = [
    "CONFIG_NAMES",
    "RELEASED_GENERATOR",
    "UniFilterSynthetic",
    "UniFilterSyntheticConfig",
    "build_synthetic",
    "load_rows",
    "push_synthetic_to_hub",
    "split_by_group",
    "synthetic_features",
]


@dataclass
class UniFilterSyntheticConfig(datasets.BuilderConfig):
    """A builder config: which kinds (``name``), which ``source``, and how to split.

    Attributes:
        source: ``"bundled"``, a synth output folder, or a released-layout JSON file/folder.
        image_folder: root of relative image paths for the released layout (default: the JSON's folder).
        validation_fraction: share of group components that go to the validation split.
        seed: seed of the split hash (and of the rule-based backend for ``"bundled"``).
    """

    source: str = "bundled"
    image_folder: str | None = None
    validation_fraction: float = 0.2
    seed: int = 0


# 1.1.0: ``kind`` says "document" (was "interleaved"); a new version keeps old prepared caches apart.
_VERSION = datasets.Version("1.1.0")


class UniFilterSynthetic(datasets.GeneratorBasedBuilder):
    """The four-level synthetic data builder (configs ``caption``, ``interleaved``, ``joint``).

    Example:
        >>> builder = UniFilterSynthetic(config_name="interleaved", source="out/synth")  # doctest: +SKIP
        >>> builder.download_and_prepare(); dd = builder.as_dataset()  # doctest: +SKIP
        >>> stream = builder.as_streaming_dataset(split="train")  # no Arrow files  # doctest: +SKIP
    """

    BUILDER_CONFIG_CLASS = UniFilterSyntheticConfig
    BUILDER_CONFIGS = [
        UniFilterSyntheticConfig(name="caption", version=_VERSION,
                                 description="Image-caption pairs at four quality levels."),
        UniFilterSyntheticConfig(name="interleaved", version=_VERSION,
                                 description="Interleaved image-text documents at four quality levels."),
        UniFilterSyntheticConfig(name="joint", version=_VERSION,
                                 description="Captions and documents together, as OBELICS slots."),
    ]
    DEFAULT_CONFIG_NAME = "joint"

    def __init__(self, *args, **kwargs):
        if kwargs.get("hash") is None:
            source = kwargs.get("source", "bundled")
            kwargs["hash"] = source_fingerprint(str(source), kwargs.get("image_folder"))
        kwargs.setdefault("dataset_name", "unifilter_synthetic")
        super().__init__(*args, **kwargs)

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description="UniFilter semi-synthetic quality data: real images, texts at four quality levels "
            "(0 easy negative, 1 medium negative, 2 hard negative, 3 positive).",
            features=synthetic_features(self.config.name),
            homepage="https://arxiv.org/abs/2510.15162",
        )

    def _split_generators(self, dl_manager):
        cfg = self.config
        rows = load_rows(str(cfg.source), cfg.image_folder, cfg.seed)
        splits = split_by_group(rows, cfg.validation_fraction, cfg.seed)  # over all kinds: shared images
        kinds = CONFIG_KINDS[cfg.name]
        rows = [r for r in rows if r.kind in kinds]
        if not rows:
            raise ValueError(f"source {cfg.source!r} has no {' or '.join(kinds)} records")
        gens = []
        for name, split in ((datasets.Split.TRAIN, "train"), (datasets.Split.VALIDATION, "validation")):
            chosen = [r for r in rows if splits[r.group_id] == split]
            if chosen:  # datasets cannot read back an empty split
                gens.append(datasets.SplitGenerator(name=name, gen_kwargs={"rows": chosen}))
        return gens

    def _generate_examples(self, rows: list[SynthRecord]):
        embed = image_embedder()
        for row in rows:
            yield row.id, record_to_example(row, self.config.name, embed)


def build_synthetic(
    config_name: str = "joint",
    source: str = "bundled",
    *,
    cache_dir: str | os.PathLike | None = None,
    **config_kwargs: Any,
) -> datasets.DatasetDict:
    """Prepare one config from one source and return it as a ``DatasetDict`` (train / validation).

    Example:
        >>> dd = build_synthetic("joint", source="out/synth", validation_fraction=0.1, seed=1)  # doctest: +SKIP
    """
    builder = UniFilterSynthetic(config_name=config_name, source=str(source),
                                 cache_dir=str(cache_dir) if cache_dir else None, **config_kwargs)
    builder.download_and_prepare()
    return builder.as_dataset()


# ------------------------------------------------------------------------------------------------- push
def push_synthetic_to_hub(
    dataset_dict: datasets.DatasetDict,
    repo_id: str,
    config_name: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    max_shard_size: str | int | None = None,
    set_default: bool | None = None,
):
    """Push one built config to a Hub dataset repo as Parquet (``<config_name>/<split>-*.parquet``).

    Push each config of the builder with its own ``config_name``; the README's ``configs`` metadata then
    lets ``load_dataset(repo_id, config_name)`` pick it. Images are embedded in the Parquet files.

    Example:
        >>> for name in ("caption", "interleaved", "joint"):  # doctest: +SKIP
        ...     push_synthetic_to_hub(build_synthetic(name, "out/synth"), "me/unifilter-synth", name)
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", config_name) or config_name in ("data", "default"):
        raise ValueError(f"config_name must be a plain name other than 'data'/'default', got {config_name!r}")
    if not isinstance(dataset_dict, datasets.DatasetDict) or not dataset_dict:
        raise TypeError("push_synthetic_to_hub expects a non-empty datasets.DatasetDict")
    for split, ds in dataset_dict.items():
        label = ds.features.get("label")
        if not isinstance(label, datasets.ClassLabel) or list(label.names) != list(LEVEL_NAMES):
            raise ValueError(f"split {split!r}: 'label' must be a ClassLabel over {list(LEVEL_NAMES)}")
    commit_message = commit_message or f"Upload UniFilter synthetic data ({config_name})"
    return dataset_dict.push_to_hub(
        repo_id,
        config_name=config_name,
        set_default=set_default,
        private=private,
        token=token,
        commit_message=commit_message,
        revision=revision,
        create_pr=create_pr,
        max_shard_size=max_shard_size,
    )
