"""Shapes-world rows in the OBELICS document layout: captions, and documents of 2-3 scenes at one level.

A scorer trained on single image-caption pairs has never seen the document prompt or several images in one
sequence, and scores documents arbitrarily (the demo's pool holds both kinds). Here a share of the scenes is
grouped into documents, 2, 3, 2, 3, ... scenes each, every scene an image followed by its caption at the
document's level, once per level (as `unifilter_hf.demo.pool` builds its pool). Every row uses the document
layout (`images` / `texts` lists; a caption is `[image, None]` / `[None, text]` with `kind` "caption"), so
captions and documents share one table.

Example:
    >>> ds = shapes_world_mixed_dataset(4, split="validation", document_share=0.5)
    >>> ds["kind"].count("caption"), ds["kind"].count("document"), [len(x) for x in ds["images"]][-1]
    (8, 4, 4)
"""

from __future__ import annotations

import datasets
from PIL import Image

from ..levels import LEVEL_NAMES
from .shapes_world import BACKGROUND, _png, render_scene, shapes_world_scene

__all__ = ["shapes_world_mixed_dataset", "shapes_world_mixed_features"]

DOCUMENT_EDIT = "document"  # not an edit type: per-edit accuracy stays a caption measure


def shapes_world_mixed_features() -> datasets.Features:
    """The columns of :func:`shapes_world_mixed_dataset`."""
    return datasets.Features({
        "id": datasets.Value("string"),
        "group_id": datasets.Value("string"),
        "kind": datasets.Value("string"),
        "images": datasets.List(datasets.Image()),
        "texts": datasets.List(datasets.Value("string")),
        "label": datasets.ClassLabel(names=list(LEVEL_NAMES)),
        "edit": datasets.Value("string"),
    })


def shapes_world_mixed_dataset(num_scenes: int, split: str = "train", seed: int = 0, image_size: int = 96,
                               blank_images: bool = False, document_share: float = 0.25) -> datasets.Dataset:
    """``num_scenes`` scenes: the first ``1 - document_share`` of them as four caption rows each, the rest
    grouped into documents of 2-3 scenes (4 where one would be left over; four rows per document, levels 3, 2,
    1, 0). Every scene is used.

    Scenes are the same as :func:`~unifilter_hf.synthesis.shapes_world.shapes_world_dataset`'s for the same
    ``(split, seed)``; ``blank_images`` draws none of the shapes (the text-only control).
    """
    if not 0.0 <= document_share <= 1.0:
        raise ValueError(f"document_share must be within 0..1, got {document_share}")
    blank = _png(Image.new("RGB", (image_size, image_size), BACKGROUND)) if blank_images else None
    scenes = []
    for index in range(num_scenes):
        s = shapes_world_scene(index, split, seed)
        png = blank or _png(render_scene(s["scene"], image_size, s["layout_seed"]))
        scenes.append((f"{split}/s{index:06d}", png, s))
    num_captions = num_scenes - round(num_scenes * document_share)
    if num_scenes - num_captions == 1:  # one scene cannot make a document
        num_captions += 1
    columns: dict[str, list] = {name: [] for name in shapes_world_mixed_features()}

    def add(group_id: str, kind: str, level: int, members: list, edit: str) -> None:
        columns["id"].append(f"{group_id}/L{level}")
        columns["group_id"].append(group_id)
        columns["kind"].append(kind)
        columns["images"].append([img for _, png, _ in members for img in ({"bytes": png, "path": None}, None)])
        columns["texts"].append([txt for _, _, s in members for txt in (None, s["captions"][level])])
        columns["label"].append(level)
        columns["edit"].append(edit)

    for member in scenes[:num_captions]:
        for level in (3, 2, 1, 0):
            add(member[0], "caption", level, [member], member[2]["edits"][level])
    rest, start, k = scenes[num_captions:], 0, 0
    while start < len(rest):
        size = min(2 + k % 2, len(rest) - start)
        if len(rest) - start - size == 1:  # no scene is left over alone
            size += 1
        group = rest[start:start + size]
        for level in (3, 2, 1, 0):
            add(f"{split}/d{k:06d}", "document", level, group, DOCUMENT_EDIT)
        start, k = start + size, k + 1
    return datasets.Dataset.from_dict(columns, features=shapes_world_mixed_features())
