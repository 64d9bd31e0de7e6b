"""Builder rows (captions and documents mixed) -> processor batches with ``labels`` and ``group_index``.

Rows go through :func:`unifilter_hf.row_layouts.to_sample` and then the processor, the one path to model
inputs (no second copy of splicing, padding or image decoding). A row whose ``kind`` is ``"caption"`` is
scored as a caption even in the ``joint`` layout, where a caption is stored as two OBELICS slots.

Example:
    >>> from PIL import Image
    >>> from unifilter_hf.tiny import tiny_processor
    >>> collate = QualityCollator(tiny_processor())
    >>> rows = [{"image": Image.new("RGB", (8, 8)), "text": "a square", "label": 3, "group_id": "g", "kind": "caption"}]
    >>> batch = collate(rows)
    >>> sorted(batch.keys()), batch["labels"].tolist()
    (['attention_mask', 'group_index', 'input_ids', 'labels', 'pixel_values'], [3.0])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from transformers import BatchFeature

from ..image_loading import load_image
from ..row_layouts import to_sample
from ..sample import Sample

# Builder columns that are not media: they must not make a row look like another layout.
_META_COLUMNS = ("id", "group_id", "kind", "label", "provenance", "edit", "layout")


class QualityCollator:
    """Collate training rows into model inputs plus float ``labels`` (levels) and ``group_index``.

    ``group_index`` numbers the distinct ``group_id`` values of the batch; the pairwise loss pairs rows that
    share it and the trainer removes it before the forward pass. The processor's ``num_images`` is dropped:
    the model does not take it.
    """

    def __init__(self, processor, label_column: str = "label", group_column: str = "group_id",
                 truncation: str = "whole_images"):
        self.processor = processor
        self.label_column = label_column
        self.group_column = group_column
        self.truncation = truncation

    def to_sample(self, row: Mapping[str, Any]) -> Sample:
        """One row as a :class:`Sample` (a ``SampleError`` is raised for unusable rows: training data is clean).

        A row of the official layout (``layout == "official"``: ``text`` with ``<image>`` placeholders and the
        ``images`` they stand for) keeps its text verbatim (``meta["prompt"]``).
        """
        if row.get("layout") == "official":
            images = [load_image(im) for im in row["images"]]
            if row.get("kind") == "caption" and len(images) == 1:
                sample = Sample.caption(images[0], row["text"])
            else:
                sample = Sample.document([None] * len(images), images)
            sample.meta["prompt"] = row["text"]
            return sample
        media = {k: v for k, v in row.items() if k not in _META_COLUMNS}
        sample = to_sample(media)
        if row.get("kind") == "caption" and sample.kind == "document":
            texts = [t for t in sample.texts if t is not None]
            sample = Sample.caption(sample.image_list[0], " ".join(texts))
        return sample

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> BatchFeature:
        batch = self.processor([self.to_sample(r) for r in rows], truncation=self.truncation)
        batch.pop("num_images", None)
        batch["labels"] = torch.tensor([float(r[self.label_column]) for r in rows])
        index: dict[Any, int] = {}
        groups = [index.setdefault(r.get(self.group_column, i), len(index)) for i, r in enumerate(rows)]
        batch["group_index"] = torch.tensor(groups, dtype=torch.long)
        return batch
