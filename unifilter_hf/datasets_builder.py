"""``UniFilterSynthetic``: the four-level semi-synthetic data as a ``datasets`` builder, and its Hub push.

Dataset scripts are gone in datasets 5, so the builder is used from code and the result is pushed as
Parquet (one Hub config per builder config):

    >>> from unifilter_hf.datasets_builder import build_synthetic, push_synthetic_to_hub
    >>> dd = build_synthetic("caption", source="bundled")          # DatasetDict: train / validation
    >>> dd["train"].features["label"].names
    ['easy_negative', 'medium_negative', 'hard_negative', 'positive']
    >>> # push_synthetic_to_hub(dd, "me/unifilter-synthetic", "caption")

Sources (``source=``):
- ``"bundled"``: the bundled photographs and documents, levels made in memory by the rule-based backend.
- a folder written by ``unifilter-hf synth`` (has ``records.jsonl``; see :mod:`.synthesis.records`).
- the released ``weizhiwang/unifilter_train_data`` layout: a JSON file, or a folder of JSON files, holding
  lists of ``{"image": path | [paths], "text": "... <image> ...", "label": int}`` (paths relative to
  ``image_folder``, default: the JSON file's folder). A string ``image`` is a caption, a list a document.
  The release has no group ids: captions are grouped by their image, documents by their image set, and
  every image of a released record counts as a source image for the split.

Configs and schema (every config also has ``id``, ``group_id``, ``kind``, ``label`` and ``provenance``):
- ``caption``: ``image`` (``Image``), ``text`` (string).
- ``interleaved``: ``images`` (``List(Image)``), ``texts`` (``List(string)``): OBELICS slots, each position
  holds exactly one of an image or a text (the other is null).
- ``joint``: both kinds in the interleaved schema; a caption is the two slots ``[image, null]`` /
  ``[null, text]`` (image first, as the scorer reads captions) and ``kind`` tells them apart.

``label`` is a ``ClassLabel`` over the four level names. ``provenance`` is a struct
``{generator, model, prompt_version, seed, source, extra}`` (``extra`` is JSON text, e.g. the rule-based
edit records). The train/validation split is by connected group: groups that share a source image (a
caption source and a document using the same photograph) always land in the same split, chosen by a hash
of the component and ``seed``, so no source image is in both splits. Images that a level-0 negative
borrowed from another source as an unrelated distractor are not source images.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets

from .synthesis.levels import LEVEL_NAMES
from .synthesis.records import RECORDS, read_records

logger = logging.getLogger(__name__)

CONFIG_NAMES = ("caption", "interleaved", "joint")
RELEASED_GENERATOR = "unifilter-release"
_PLACEHOLDER = "<image>"


# ------------------------------------------------------------------------------------------ normalized rows
@dataclass
class _Row:
    """One example before it meets the features: images are paths, PIL images or lazy loaders."""

    id: str
    group_id: str
    kind: str
    level: int
    texts: list[str | None]
    images: list[Any]
    provenance: dict[str, Any]
    source_images: list[str] = field(default_factory=list)


def _provenance(generator: str, model=None, prompt_version=None, seed=None, source="", extra=None) -> dict:
    return {
        "generator": generator,
        "model": model,
        "prompt_version": prompt_version,
        "seed": seed,
        "source": source,
        "extra": json.dumps(extra or {}, ensure_ascii=False, sort_keys=True),
    }


def _rows_from_synth(folder: Path) -> list[_Row]:

    rows = []
    for rec in read_records(folder / RECORDS):
        prov = rec.provenance
        extra = dict(prov.extra)
        image_ids = extra.get("image_ids") or rec.image_paths
        if rec.kind == "caption":
            texts, images = [rec.text], [str(folder / rec.image)]
        else:
            texts = list(rec.texts)
            images = [None if p is None else str(folder / p) for p in rec.images]
        rows.append(_Row(rec.id, rec.group_id, rec.kind, rec.level, texts, images,
                         _provenance(prov.generator, prov.model, prov.prompt_version, prov.seed,
                                     str(folder.name), extra),
                         [str(i) for i in image_ids]))
    return rows


def _rows_from_bundled(seed: int) -> list[_Row]:
    from .synthesis.backends.rule_based import RuleBasedBackend
    from .synthesis.bundled import bundled_items

    items = bundled_items("both")
    backend = RuleBasedBackend(seed=seed)
    backend.prepare(items)
    rows = []
    for res in backend.generate(items):
        if not res.ok:  # the bundled set is tested to have none; never emit a partial group
            logger.warning("bundled source %s failed: %s", res.item.id, res.error)
            continue
        for level in (3, 2, 1, 0):
            out = res.outputs[level]
            prov = _provenance(backend.name, None, backend.prompt_version, seed, "bundled",
                               {"edits": out.edits} if out.edits else {})
            if res.item.kind == "caption":
                texts, images, used = [out.text], [res.images[0]], [0]
            else:
                texts = [s if isinstance(s, str) else None for s in out.slots]
                images = [res.images[s] if isinstance(s, int) else None for s in out.slots]
                used = [s for s in out.slots if isinstance(s, int)]
            rows.append(_Row(f"{res.item.id}/L{level}", res.item.id, res.item.kind, level, texts, images, prov,
                             [res.image_ids[i] for i in used]))
    return rows


def _released_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl") and p.is_file())


def _read_json_records(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    data = json.loads(text)
    return data if isinstance(data, list) else []


def _label(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        level = int(round(min(3.0, max(0.0, float(value)))))
        return level
    if isinstance(value, str):
        if value in LEVEL_NAMES:
            return LEVEL_NAMES.index(value)
        if value.strip().isdigit():
            return _label(int(value))
    return None


def _text_to_slots(text: str, n_images: int) -> list[str | int] | None:
    """"a <image> b <image>" -> ["a", 0, "b", 1]; ``None`` if placeholders and images disagree."""
    chunks = text.split(_PLACEHOLDER)
    if len(chunks) - 1 != n_images:
        return None
    slots: list[str | int] = []
    for k, chunk in enumerate(chunks):
        chunk = chunk.strip()
        if chunk:
            slots.append(chunk)
        if k < n_images:
            slots.append(k)
    return slots


def _rows_from_released(path: Path, image_folder: Path) -> list[_Row]:
    rows, skipped = [], 0
    for file in _released_files(path):
        for idx, rec in enumerate(_read_json_records(file)):
            level = _label(rec.get("label"))
            image, text = rec.get("image"), rec.get("text")
            if level is None or not image or not isinstance(text, str):
                skipped += 1
                continue
            rid = f"{file.stem}/{idx}"
            extra = {"file": file.name, "index": idx}
            if isinstance(image, str):
                caption = " ".join(text.replace(_PLACEHOLDER, " ").split())
                if not caption:
                    skipped += 1
                    continue
                rows.append(_Row(rid, f"released/{image}", "caption", level, [caption],
                                 [str(image_folder / image)],
                                 _provenance(RELEASED_GENERATOR, source=file.name, extra=extra), [image]))
                continue
            paths = [str(p) for p in image]
            slots = _text_to_slots(text, len(paths))
            if slots is None or not paths:
                skipped += 1
                continue
            group = "released/" + hashlib.sha1("\n".join(sorted(paths)).encode()).hexdigest()[:16]
            texts = [s if isinstance(s, str) else None for s in slots]
            images = [str(image_folder / paths[s]) if isinstance(s, int) else None for s in slots]
            rows.append(_Row(rid, group, "interleaved", level, texts, images,
                             _provenance(RELEASED_GENERATOR, source=file.name, extra=extra), paths))
    if skipped:
        logger.warning("released layout: skipped %d records (no label/image/text, or placeholders != images)",
                       skipped)
    return rows


def load_rows(source: str, image_folder: str | None = None, seed: int = 0) -> list[_Row]:
    """All rows of a source, both kinds (see the module docstring for source kinds)."""
    if source == "bundled":
        return _rows_from_bundled(seed)
    path = Path(source)
    if path.is_dir() and (path / RECORDS).is_file():
        return _rows_from_synth(path)
    if path.exists():
        folder = Path(image_folder) if image_folder else (path if path.is_dir() else path.parent)
        return _rows_from_released(path, folder)
    raise FileNotFoundError(f"source {source!r} is neither 'bundled', a synth folder nor a released-layout path")


# ------------------------------------------------------------------------------------------------ splits
def split_by_group(rows: list[_Row], validation_fraction: float, seed: int = 0) -> dict[str, str]:
    """``{group_id: "train" | "validation"}`` so that groups sharing a source image share a split.

    Source images of a group are those of its positive (level 3) when it has one, else all its images.
    Components are scored by a hash of (seed, smallest group id); a score below ``validation_fraction``
    goes to validation. For small sets, each kind with at least two components gets one in each split
    (when ``0 < validation_fraction < 1``).
    """
    by_group: dict[str, list[_Row]] = defaultdict(list)
    for r in rows:
        by_group[r.group_id].append(r)
    parent = {g: g for g in by_group}

    def find(g: str) -> str:
        while parent[g] != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    owner: dict[str, str] = {}
    for g, grows in sorted(by_group.items()):
        positives = [r for r in grows if r.level == 3]
        for key in {k for r in (positives or grows) for k in r.source_images}:
            if key in owner:
                a, b = find(owner[key]), find(g)
                if a != b:
                    parent[max(a, b)] = min(a, b)
            else:
                owner[key] = g
    components: dict[str, list[str]] = defaultdict(list)
    for g in by_group:
        components[find(g)].append(g)

    def score(root: str) -> float:
        digest = hashlib.sha256(f"{seed}:{min(components[root])}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    scores = {root: score(root) for root in components}
    kinds_of = {root: {r.kind for g in gs for r in by_group[g]} for root, gs in components.items()}
    val = {root for root, s in scores.items() if s < validation_fraction}
    # Small sets: each kind with two or more components gets at least one in each split.
    for kind in sorted({k for ks in kinds_of.values() for k in ks}):
        roots = [r for r in scores if kind in kinds_of[r]]
        if len(roots) < 2:
            continue
        if validation_fraction > 0 and not any(r in val for r in roots):
            val.add(min(roots, key=scores.get))
        if validation_fraction < 1 and all(r in val for r in roots):
            val.discard(max(roots, key=scores.get))
    return {g: ("validation" if root in val else "train") for root, gs in components.items() for g in gs}


# ----------------------------------------------------------------------------------------------- builder
def _provenance_features() -> dict[str, datasets.Value]:
    return {
        "generator": datasets.Value("string"),
        "model": datasets.Value("string"),
        "prompt_version": datasets.Value("string"),
        "seed": datasets.Value("int64"),
        "source": datasets.Value("string"),
        "extra": datasets.Value("string"),
    }


def synthetic_features(config_name: str) -> datasets.Features:
    """The features of one config (see the module docstring)."""
    common = {
        "id": datasets.Value("string"),
        "group_id": datasets.Value("string"),
        "kind": datasets.Value("string"),
        "label": datasets.ClassLabel(names=list(LEVEL_NAMES)),
    }
    if config_name == "caption":
        media = {"image": datasets.Image(), "text": datasets.Value("string")}
    elif config_name in ("interleaved", "joint"):
        media = {"images": datasets.List(datasets.Image()), "texts": datasets.List(datasets.Value("string"))}
    else:
        raise ValueError(f"config must be one of {CONFIG_NAMES}, got {config_name!r}")
    return datasets.Features({**common, **media, "provenance": _provenance_features()})


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


def _source_fingerprint(source: str, image_folder: str | None) -> str:
    """Changes when the source data changes, so the builder cache never serves stale data."""
    if source == "bundled":
        from .synthesis.backends.rule_based import RULES_VERSION
        from .synthesis.bundled import bundled_documents, bundled_photos

        blob = json.dumps([RULES_VERSION, bundled_photos(), bundled_documents()], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
    path = Path(source)
    files = [path / RECORDS] if (path / RECORDS).is_file() else (
        _released_files(path) if path.exists() else [])
    parts = [f"{f.resolve()}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files]
    return hashlib.sha256("|".join([*parts, str(image_folder)]).encode()).hexdigest()[:16]


class UniFilterSynthetic(datasets.GeneratorBasedBuilder):
    """The four-level synthetic data builder (configs ``caption``, ``interleaved``, ``joint``).

    Example:
        >>> builder = UniFilterSynthetic(config_name="interleaved", source="out/synth", cache_dir="cache")
        >>> builder.download_and_prepare(); dd = builder.as_dataset()
        >>> stream = builder.as_streaming_dataset(split="train")   # no Arrow files written
    """

    BUILDER_CONFIG_CLASS = UniFilterSyntheticConfig
    BUILDER_CONFIGS = [
        UniFilterSyntheticConfig(name="caption", version=datasets.Version("1.0.0"),
                                 description="Image-caption pairs at four quality levels."),
        UniFilterSyntheticConfig(name="interleaved", version=datasets.Version("1.0.0"),
                                 description="Interleaved image-text documents at four quality levels."),
        UniFilterSyntheticConfig(name="joint", version=datasets.Version("1.0.0"),
                                 description="Captions and documents together, as OBELICS slots."),
    ]
    DEFAULT_CONFIG_NAME = "joint"

    def __init__(self, *args, **kwargs):
        if kwargs.get("hash") is None:
            source = kwargs.get("source", "bundled")
            kwargs["hash"] = _source_fingerprint(str(source), kwargs.get("image_folder"))
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
        splits = split_by_group(rows, cfg.validation_fraction, cfg.seed)
        kinds = {"caption": ("caption",), "interleaved": ("interleaved",)}.get(cfg.name, ("caption", "interleaved"))
        rows = [r for r in rows if r.kind in kinds]
        if not rows:
            raise ValueError(f"source {cfg.source!r} has no {' or '.join(kinds)} records")
        gens = []
        for name, split in ((datasets.Split.TRAIN, "train"), (datasets.Split.VALIDATION, "validation")):
            chosen = [r for r in rows if splits[r.group_id] == split]
            if chosen:  # datasets cannot read back an empty split
                gens.append(datasets.SplitGenerator(name=name, gen_kwargs={"rows": chosen}))
        return gens

    def _generate_examples(self, rows: list[_Row]):
        load = functools.lru_cache(maxsize=64)(_image_value)
        for row in rows:
            example: dict[str, Any] = {
                "id": row.id, "group_id": row.group_id, "kind": row.kind, "label": int(row.level),
                "provenance": row.provenance,
            }
            if self.config.name == "caption":
                example.update(image=_image_value_uncached(row.images[0], load), text=row.texts[0])
            elif row.kind == "caption":  # joint: a caption as two slots, image first
                example.update(images=[_image_value_uncached(row.images[0], load), None],
                               texts=[None, row.texts[0]])
            else:
                example.update(images=[None if im is None else _image_value_uncached(im, load)
                                       for im in row.images],
                               texts=list(row.texts))
            yield row.id, example


def _image_value_uncached(src: Any, load) -> Any:
    # paths and lazy loaders are hashable -> cached (a caption's four levels share one image)
    try:
        return load(src)
    except TypeError:  # unhashable (e.g. a PIL image): pass it through
        return src


def _image_value(src: Any) -> Any:
    """Embed image bytes so the prepared Arrow data does not depend on the source files staying put."""
    if hasattr(src, "encoded"):  # bundled photographs: PNG bytes made once per process
        return {"path": f"{getattr(src, 'name', 'image')}.png", "bytes": src.encoded()}
    if callable(src):
        return src()
    if isinstance(src, str | os.PathLike):
        path = Path(src)
        return {"path": path.name, "bytes": path.read_bytes()}
    return src


def build_synthetic(
    config_name: str = "joint",
    source: str = "bundled",
    *,
    cache_dir: str | os.PathLike | None = None,
    **config_kwargs: Any,
) -> datasets.DatasetDict:
    """Prepare one config from one source and return it as a ``DatasetDict`` (train / validation).

    Example:
        >>> dd = build_synthetic("joint", source="out/synth", validation_fraction=0.1, seed=1)
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
        >>> for name in ("caption", "interleaved", "joint"):
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
