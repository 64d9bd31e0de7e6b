"""Folders in the layouts real tools write, built from real photographs (scikit-image / scikit-learn).

- img2dataset (its ``writer.py``): the ``parquet`` output format (``NNNNN.parquet`` holding every input row:
  the metadata columns and ``jpg`` bytes, null where the download failed), the ``webdataset`` format (``NNNNN.tar`` of
  the downloaded samples, ``jpg`` + ``txt`` + ``json`` members, beside ``NNNNN.parquet`` with the metadata of
  every row) and the ``files`` format (``NNNNN/`` of ``key.jpg`` + ``key.txt`` + ``key.json``, beside the
  metadata parquet); each with ``NNNNN_stats.json``.
- ``datasets``: ``Dataset.save_to_disk`` and ``DatasetDict.save_to_disk`` folders.
- webdataset tars (plain and ``.tgz``) with mixed image types, JSON lines / JSON array / CSV / Parquet /
  Arrow files with relative image paths, OBELICS JSON lines beside ``images/``, mmc4 JSON lines whose
  ``image_name`` files are in a separate folder.

Every builder returns the folder and the true number of rows in it.
"""

from __future__ import annotations

import csv
import io
import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tests.badrows import encode, truncated_jpeg
from tests.kit import photo

NAMES = ["astronaut", "chelsea", "coffee", "rocket", "china", "flower"]
CAPTIONS = ["An astronaut.", "A cat.", "A cup of coffee.", "A rocket on a pad.", "A temple roof.", "A flower."]
SIZE = 48


def jpg(name: str) -> bytes:
    return encode(photo(name, SIZE).convert("RGB"), "JPEG", quality=90)


def _meta(i: int, ok: bool) -> dict:
    return {
        "url": f"https://example.com/images/{NAMES[i % 6]} {i}.jpg", "caption": CAPTIONS[i % 6],
        "key": f"{i:09d}", "status": "success" if ok else "failed_to_download",
        "error_message": None if ok else "HTTP Error 404: Not Found", "width": SIZE if ok else None,
        "height": SIZE if ok else None, "original_width": 512 if ok else None, "original_height": 512 if ok else None,
        "exif": None, "sha256": None,
    }


_META_SCHEMA = pa.schema([("url", pa.string()), ("caption", pa.string()), ("key", pa.string()),
                          ("status", pa.string()), ("error_message", pa.string()), ("width", pa.int32()),
                          ("height", pa.int32()), ("original_width", pa.int32()), ("original_height", pa.int32()),
                          ("exif", pa.string()), ("sha256", pa.string())])


def _stats(folder: Path, shard: str, ok: list[bool]) -> None:
    (folder / f"{shard}_stats.json").write_text(json.dumps({
        "count": len(ok), "successes": sum(ok), "failed_to_download": len(ok) - sum(ok), "failed_to_resize": 0,
        "duration": 1.5, "status_dict": {"success": sum(ok), "HTTP Error 404: Not Found": len(ok) - sum(ok)},
    }, indent=4))


def _tar_add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def img2dataset(folder: Path, output_format: str, shards: int = 2, rows: int = 5) -> tuple[Path, int]:
    """An img2dataset output folder; the last row of each shard failed to download. Returns the true rows:
    every input row in the ``parquet`` format, the downloaded ones in the others."""
    folder.mkdir(parents=True)
    true_rows = 0
    for s in range(shards):
        shard = f"{s:05d}"
        ok = [i < rows - 1 for i in range(rows)]
        metas = [_meta(s * rows + i, ok[i]) for i in range(rows)]
        if output_format == "parquet":
            schema = _META_SCHEMA.append(pa.field("jpg", pa.binary()))  # the writer's schema: metadata + jpg
            table = [{**m, "jpg": jpg(NAMES[i % 6]) if ok[i] else None} for i, m in enumerate(metas)]
            pq.write_table(pa.Table.from_pylist(table, schema=schema), folder / f"{shard}.parquet")
            true_rows += rows
        else:
            pq.write_table(pa.Table.from_pylist(metas, schema=_META_SCHEMA), folder / f"{shard}.parquet")
            good = [(m, jpg(NAMES[i % 6])) for i, m in enumerate(metas) if ok[i]]
            true_rows += len(good)
            if output_format == "webdataset":
                with tarfile.open(folder / f"{shard}.tar", "w") as tar:
                    for m, data in good:
                        _tar_add(tar, f"{m['key']}.jpg", data)
                        _tar_add(tar, f"{m['key']}.txt", m["caption"].encode())
                        _tar_add(tar, f"{m['key']}.json", json.dumps(m, indent=4).encode())
            else:  # files
                sub = folder / shard
                sub.mkdir()
                for m, data in good:
                    (sub / f"{m['key']}.jpg").write_bytes(data)
                    (sub / f"{m['key']}.txt").write_text(m["caption"])
                    (sub / f"{m['key']}.json").write_text(json.dumps(m, indent=4))
        _stats(folder, shard, ok)
    return folder, true_rows


def saved_dataset(folder: Path, rows: int = 6, num_shards: int = 2) -> tuple[Path, int]:
    import datasets

    features = datasets.Features({"image": datasets.Image(), "text": datasets.Value("string")})
    data = {"image": [{"bytes": jpg(NAMES[i % 6]), "path": None} for i in range(rows)],
            "text": [CAPTIONS[i % 6] for i in range(rows)]}
    datasets.Dataset.from_dict(data, features=features).save_to_disk(str(folder), num_shards=num_shards)
    return folder, rows


def saved_dataset_dict(folder: Path) -> tuple[Path, dict[str, int]]:
    import datasets

    features = datasets.Features({"image": datasets.Image(), "text": datasets.Value("string")})
    splits = {"train": 4, "test": 2}
    dd = datasets.DatasetDict({
        name: datasets.Dataset.from_dict({"image": [{"bytes": jpg(NAMES[i % 6]), "path": None} for i in range(n)],
                                          "text": [CAPTIONS[i % 6] for i in range(n)]}, features=features)
        for name, n in splits.items()
    })
    dd.save_to_disk(str(folder))
    return folder, splits


def mixed_tar(path: Path, compressed: bool) -> tuple[Path, int, int]:
    """A webdataset tar of captions with jpg, png, webp, gif, tiff members and one truncated jpg; returns the
    path, the rows, and the rows whose image is broken."""
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [("jpg", jpg("coffee")), ("png", encode(photo("chelsea", SIZE), "PNG")),
              ("webp", encode(photo("rocket", SIZE), "WEBP")), ("gif", encode(photo("astronaut", SIZE), "GIF")),
              ("tiff", encode(photo("china", SIZE), "TIFF")), ("jpg", truncated_jpeg()[:400])]
    with tarfile.open(path, "w:gz" if compressed else "w") as tar:
        for i, (ext, data) in enumerate(images):
            _tar_add(tar, f"sample{i:04d}.{ext}", data)
            _tar_add(tar, f"sample{i:04d}.txt", f"Photo number {i}.".encode())
            _tar_add(tar, f"sample{i:04d}.cls", str(i % 3).encode())
    return path, len(images), 1


def tables(folder: Path) -> tuple[Path, int]:
    """JSON lines (one malformed line), a JSON array, CSV, Parquet and Arrow files whose image paths are
    relative to the folder (``images/``). Returns the folder and the true rows (the bad line included)."""
    import datasets

    (folder / "images").mkdir(parents=True)
    rows = []
    for i, name in enumerate(NAMES):
        (folder / "images" / f"{name}.jpg").write_bytes(jpg(name))
        rows.append({"image": f"images/{name}.jpg", "text": CAPTIONS[i]})
    (folder / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:3]) + '{"image": "images/x.jpg",\n')
    (folder / "b.json").write_text(json.dumps(rows[3:], indent=2))
    with open(folder / "c.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["image", "text"])
        writer.writeheader()
        writer.writerows(rows)
    features = datasets.Features({"image": datasets.Image(), "text": datasets.Value("string")})
    ds = datasets.Dataset.from_dict({"image": [{"bytes": jpg(n), "path": None} for n in NAMES[:2]],
                                     "text": CAPTIONS[:2]}, features=features)
    ds.to_parquet(str(folder / "d.parquet"))
    with pa.ipc.new_file(str(folder / "e.arrow"), ds.data.table.schema) as writer:
        writer.write_table(ds.data.table)
    return folder, 4 + 3 + 6 + 2 + 2


def obelics_jsonl(folder: Path) -> tuple[Path, int]:
    """OBELICS documents in JSON lines beside their images/ folder (one image missing)."""
    (folder / "images").mkdir(parents=True)
    for name in NAMES[:3]:
        (folder / "images" / f"{name}.jpg").write_bytes(jpg(name))
    docs = [
        {"texts": ["An astronaut in orbit.", None, "The end."], "images": [None, "images/astronaut.jpg", None]},
        {"texts": [None, "A cat on a mat."], "images": ["images/chelsea.jpg", None]},
        {"texts": ["A lost picture.", None], "images": [None, "images/missing.jpg"]},
        {"texts": ["Two photos.", None, None], "images": [None, "images/coffee.jpg", "images/chelsea.jpg"]},
    ]
    (folder / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    return folder, len(docs)


def mmc4_jsonl(folder: Path) -> tuple[Path, Path, int]:
    """mmc4 documents (``text_list`` + ``image_info`` with ``image_name`` and ``raw_url``) and a separate folder
    of the downloaded images, as mmc4's image download leaves them."""
    folder.mkdir(parents=True)
    images = folder.parent / f"{folder.name}-images"
    images.mkdir()
    docs = []
    for d in range(3):
        info = []
        for k in range(2):
            name = f"{d:02d}{k:02d}abcdef.jpg"
            (images / name).write_bytes(jpg(NAMES[(d + k) % 6]))
            info.append({"image_name": name, "raw_url": f"http://example.invalid/{name}", "matched_text_index": k,
                         "matched_sim": 0.3, "face_detections": None})
        docs.append({"url": f"http://example.invalid/page{d}.html", "text_list": ["First.", "Second.", "Third."],
                     "image_info": info, "similarity_matrix": [[0.1, 0.2, 0.3]] * 2, "could_have_url_duplicate": 0})
    (folder / "docs_shard_0.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    return folder, images, len(docs)
