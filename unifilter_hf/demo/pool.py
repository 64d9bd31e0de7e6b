"""The demo's data: the shapes-world four-level set, the bundled photo set, and the mixed pool to curate.

The pool holds every row in the OBELICS document layout (``images`` / ``texts`` lists) with a ``kind`` column:
a ``"caption"`` row is one image slot then one text slot (read as a caption, see
:func:`unifilter_hf.row_layouts.to_sample`), a ``"document"`` row is 2-3 scenes, each an image slot followed by
its caption, all captions of one level. ``level`` is the ground truth (3 = exact caption ... 0 = unrelated),
``defect`` names what was broken on purpose (``""`` for a sound row). Scenes come from the shapes world's
*validation* split, which no training scene shares.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> out = Path(tempfile.mkdtemp())
    >>> shapes = write_shapes_world(out / "shapes", num_scenes=4)
    >>> counts = build_pool(shapes, out / "pool", caption_scenes=2)
    >>> counts == {"caption": 8, "document": 4, "broken": 8, "rows": 20}
    True
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pyarrow.parquet as pq

from ..synthesis.shapes_world import shapes_world_dataset

POOL_FILE = "pool.parquet"
SHAPES_FILE = "validation.parquet"
# What the broken rows exercise, and the curate error each one must produce.
DEFECTS: dict[str, str] = {
    "corrupt image": "image: ",  # truncated PNG bytes
    "missing file": "image: ",  # a path that does not exist
    "empty text": "caption: empty text",
}


def pool_features() -> datasets.Features:
    """Columns of the pool (and, with the ``unifilter_*`` columns added, of the curated data)."""
    return datasets.Features({
        "id": datasets.Value("string"),
        "kind": datasets.Value("string"),
        "level": datasets.Value("int64"),
        "defect": datasets.Value("string"),
        "images": datasets.List(datasets.Image()),
        "texts": datasets.List(datasets.Value("string")),
    })


def write_shapes_world(out_dir: str | Path, num_scenes: int, seed: int = 1) -> Path:
    """Write ``num_scenes`` validation-split shapes-world scenes (four captions each) as Parquet + card.

    Returns the Parquet file. The quickstart trainer builds its *training* rows in memory from the recipe;
    these held-out scenes are what the demo curates.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ds = shapes_world_dataset(num_scenes, split="validation", seed=seed)
    path = out / SHAPES_FILE
    ds.to_parquet(str(path))
    (out / "README.md").write_text(_shapes_card(ds.num_rows, num_scenes, seed), encoding="utf-8")
    return path


def _shapes_card(rows: int, scenes: int, seed: int) -> str:
    return f"""---
license: apache-2.0
task_categories:
- image-text-to-text
tags:
- unifilter
- synthetic
configs:
- config_name: default
  data_files:
  - split: validation
    path: {SHAPES_FILE}
---
# Shapes world, four quality levels (validation scenes)

{rows} caption rows: {scenes} generated scenes of coloured shapes, each with four captions: level 3 the exact
caption, level 2 one property changed, level 1 three changed, level 0 an unrelated scene's caption (`label`,
`edit`). Scenes belong to the *validation* partition of the scene space (generator seed {seed}), so no model
trained by `recipes/quickstart/train.yaml` has seen them.

Made offline by `unifilter_hf.synthesis.shapes_world.shapes_world_dataset` (`unifilter-hf demo`).
"""


def write_photo_set(out_dir: str | Path, seed: int = 0) -> dict:
    """The bundled photographs' four-level captions and documents (rule-based, offline), as a synth folder."""
    from ..synthesis.backends.rule_based import RuleBasedBackend
    from ..synthesis.bundled import bundled_items
    from ..synthesis.runner import synthesize

    report = synthesize(bundled_items("both"), RuleBasedBackend(seed=seed), out_dir, resume=False)
    records = sum(1 for _ in open(Path(out_dir) / "records.jsonl", encoding="utf-8"))
    return {"sources": report.generated, "failed": report.failed, "records": records}


def _scenes(shapes_parquet: Path) -> list[dict]:
    """One entry per scene: ``{"id", "png", "captions": {level: text}}`` in file order."""
    table = pq.read_table(shapes_parquet, columns=["group_id", "image", "text", "label"])
    scenes: dict[str, dict] = {}
    for row in table.to_pylist():
        scene = scenes.setdefault(row["group_id"], {"id": row["group_id"], "png": row["image"]["bytes"],
                                                    "captions": {}})
        scene["captions"][row["label"]] = row["text"]
    return list(scenes.values())


def _image(png: bytes | None = None, path: str | None = None) -> dict:
    return {"bytes": png, "path": path}


def build_pool(shapes_parquet: str | Path, out_dir: str | Path, caption_scenes: int,
               broken_per_defect: int = 2) -> dict[str, int]:
    """Write ``out_dir/pool.parquet`` from the scenes of ``shapes_parquet``; returns the row counts.

    The first ``caption_scenes`` scenes give four caption rows each (one per level); the others are grouped
    into documents of 2, 3, 2, 3, ... scenes, once per level. ``broken_per_defect`` rows of each
    :data:`DEFECTS` entry are added: caption rows, and for the image defects also one document whose images
    are all broken (a document with *some* broken images is still scored on the rest).
    """
    scenes = _scenes(Path(shapes_parquet))
    rows: list[dict] = []
    for scene in scenes[:caption_scenes]:
        for level in (3, 2, 1, 0):
            rows.append({"id": f"{scene['id']}/caption/L{level}", "kind": "caption", "level": level,
                         "defect": "", "images": [_image(scene["png"]), None],
                         "texts": [None, scene["captions"][level]]})
    doc_scenes, groups, start = scenes[caption_scenes:], [], 0
    while start + 2 <= len(doc_scenes):
        size = 2 + len(groups) % 2
        groups.append(doc_scenes[start:start + size])
        start += size
    for k, group in enumerate(groups):
        for level in (3, 2, 1, 0):
            images, texts = [], []
            for scene in group:
                images += [_image(scene["png"]), None]
                texts += [None, scene["captions"][level]]
            rows.append({"id": f"doc{k:04d}/L{level}", "kind": "document", "level": level, "defect": "",
                         "images": images, "texts": texts})
    counts = {"caption": sum(r["kind"] == "caption" for r in rows), "document": len(groups) * 4}
    rows += _broken_rows(scenes, broken_per_defect, Path(out_dir))
    counts["broken"] = len(rows) - counts["caption"] - counts["document"]
    counts["rows"] = len(rows)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # pyarrow writes the table as is (Dataset.to_parquet would stat the missing files and fail)
    table = datasets.Dataset.from_list(rows, features=pool_features()).data.table
    pq.write_table(table, out / POOL_FILE)
    return counts


def _broken_rows(scenes: list[dict], per_defect: int, out_dir: Path) -> list[dict]:
    """Caption rows with a truncated PNG, a missing file or an empty text; documents with only broken images."""
    missing_dir = out_dir.resolve() / "missing-images"  # never created: every path below is missing
    rows = []
    for k in range(per_defect):
        scene = scenes[k % len(scenes)]
        level = 3 - k % 4
        text = scene["captions"][level]
        truncated = scene["png"][: len(scene["png"]) // 2]
        variants = {
            "corrupt image": ([_image(truncated), None], [None, text]),
            "missing file": ([_image(path=str(missing_dir / f"scene{k}.png")), None], [None, text]),
            "empty text": ([_image(scene["png"]), None], [None, ""]),
        }
        for defect, (images, texts) in variants.items():
            rows.append({"id": f"broken/{defect.replace(' ', '-')}/{k}", "kind": "caption", "level": level,
                         "defect": defect, "images": images, "texts": texts})
    scene = scenes[0]
    for defect, image in (("corrupt image", _image(scene["png"][:40])),
                          ("missing file", _image(path=str(missing_dir / "doc.png")))):
        rows.append({"id": f"broken/{defect.replace(' ', '-')}/doc", "kind": "document", "level": 3,
                     "defect": defect, "images": [image, None, image, None],
                     "texts": [None, scene["captions"][3], None, scene["captions"][3]]})
    return rows


def level_means(curation_dir: str | Path, pool_parquet: str | Path) -> dict:
    """Mean ground-truth level of the pool's sound rows and of the kept rows, per kind and overall.

    Also the row accounting: ``kept + rejected == rows``, and ``errors`` (rejected for an error) with the
    defect each errored row was built with.
    """
    pool = pq.read_table(pool_parquet, columns=["id", "kind", "level", "defect"]).to_pylist()
    curation = Path(curation_dir)
    kept = _read_dir(curation / "curated", ["id", "kind", "level"])
    rejected = _read_dir(curation / "rejected", ["key", "kind", "reason"])
    by_id = {r["id"]: r for r in pool}
    errors = [{"id": r["key"], "defect": by_id[r["key"]]["defect"], "reason": r["reason"]}
              for r in rejected if str(r["reason"]).startswith("error")]
    out: dict = {"rows": len(pool), "kept": len(kept), "rejected": len(rejected), "errors": errors,
                 "pool_mean_level": {}, "kept_mean_level": {}}
    sound = [r for r in pool if not r["defect"]]
    for kind in ("caption", "document", "all"):
        pool_levels = [r["level"] for r in sound if kind in ("all", r["kind"])]
        kept_levels = [r["level"] for r in kept if kind in ("all", r["kind"])]
        out["pool_mean_level"][kind] = _mean(pool_levels)
        out["kept_mean_level"][kind] = _mean(kept_levels)
    return out


def _read_dir(folder: Path, columns: list[str]) -> list[dict]:
    rows: list[dict] = []
    for path in sorted(folder.glob("*.parquet")):
        rows += pq.read_table(path, columns=columns).to_pylist()
    return rows


def _mean(values: list[int]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def dump_json(path: str | Path, data: dict) -> None:
    """Write ``data`` as indented JSON (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


__all__ = ["DEFECTS", "POOL_FILE", "build_pool", "dump_json", "level_means", "pool_features",
           "write_photo_set", "write_shapes_world"]
