"""Records in the official training layout, kept verbatim: ``{"image": path | [paths], "text", "label"}``.

LLaVA-Pretrain records (``{"image", "conversations"}``, stage 1's captions) are read as level-3 captions.

The official training code tokenizes each record's ``text`` as it is, ``<image>`` placeholders where the
images go; this loader keeps that text untouched (no stripping, no re-joining) in a ``text`` column, the
image paths in ``images``, and marks the rows ``layout = "official"`` so that
:class:`~unifilter_hf.training.QualityCollator` feeds them verbatim. Rows are grouped by their image set
(the release has no group ids), so a held-out split never shares an image set with training.

Example:
    >>> ds = official_dataset("data/train.json", image_folder="data/images")  # doctest: +SKIP
    >>> ds[0]["layout"], ds[0]["text"][:8]  # doctest: +SKIP
    ('official', '<image>\\n')
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import datasets

OFFICIAL_LAYOUT = "official"
_FEATURES = datasets.Features({
    "id": datasets.Value("string"), "group_id": datasets.Value("string"), "kind": datasets.Value("string"),
    "layout": datasets.Value("string"), "text": datasets.Value("string"),
    "images": datasets.List(datasets.Value("string")), "label": datasets.Value("int64"),
})


def _records(path: Path) -> list[dict]:
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl"))
    out = []
    for file in files:
        text = file.read_text(encoding="utf-8")
        rows = ([json.loads(line) for line in text.splitlines() if line.strip()] if file.suffix == ".jsonl"
                else json.loads(text))
        out.extend((f"{file.stem}/{k}", r) for k, r in enumerate(rows))
    return out


def official_dataset(path: str | Path, image_folder: str | Path | None = None) -> datasets.Dataset:
    """The records of a JSON/JSONL file (or folder of them) in the official layout, text verbatim.

    A record whose placeholders do not match its images, or whose label is not 0..3, raises a ``ValueError``
    naming it: training data must be clean, and a silently skipped record would change the recipe.
    """
    root = Path(image_folder) if image_folder else Path(path).parent
    rows = []
    for rid, raw in _records(Path(path)):
        if "conversations" in raw and "text" not in raw:  # LLaVA-Pretrain: the caption is the answer turn
            raw = {"image": raw.get("image"), "label": 3,
                   "text": "<image>\n" + str(raw["conversations"][-1].get("value", "")).replace("<image>", "")}
        image, text, label = raw.get("image"), raw.get("text"), raw.get("label")
        paths = [image] if isinstance(image, str) else list(image or [])
        if not isinstance(text, str) or text.count("<image>") != len(paths) or not paths:
            raise ValueError(f"{path} record {rid}: needs a text with one <image> per image ({len(paths)} images)")
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label <= 3:
            raise ValueError(f"{path} record {rid}: label must be an integer 0..3, got {label!r}")
        group = hashlib.sha1("\n".join(sorted(paths)).encode()).hexdigest()[:16]
        rows.append({"id": rid, "group_id": group, "kind": "caption" if isinstance(image, str) else "document",
                     "layout": OFFICIAL_LAYOUT, "text": text, "images": [str(root / p) for p in paths],
                     "label": label})
    return datasets.Dataset.from_list(rows, features=_FEATURES)


def split_by_group(ds: datasets.Dataset, fraction: float, seed: int) -> datasets.DatasetDict:
    """Hold out about ``fraction`` of the groups (deterministic for a seed)."""
    def held_out(group: str) -> bool:
        digest = hashlib.sha1(f"{seed}/{group}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < fraction

    flags = [held_out(g) for g in ds["group_id"]]
    return datasets.DatasetDict({
        "train": ds.select([k for k, f in enumerate(flags) if not f]),
        "validation": ds.select([k for k, f in enumerate(flags) if f]),
    })
