"""The example grid: rows of each score band as thumbnails and text excerpts, low bands with attribution.

Thumbnails are JPEG data URIs inside the HTML, so the report is one file plus its PNG figures and never
fetches anything. Example rows are read back from the source, but their URLs are not fetched again (what a
server sends now may not be what was scored, and each URL is fetched once per job): such an image shows as
"not fetched again". A row that cannot be drawn is shown with the reason instead of stopping the report.

Example:
    >>> from PIL import Image
    >>> thumbnail_uri(Image.new("RGB", (640, 480), "red"), size=64)[:23]
    'data:image/jpeg;base64,'
    >>> excerpt("word " * 100, 20)
    'word word word word…'
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

from PIL import Image

from ..row_layouts import SampleError, to_sample
from ..sample import Sample
from .attribution import Attribution, explain_many
from .run_data import Example, RunData, column_map


def thumbnail_uri(image: Image.Image, size: int = 160) -> str:
    """A small JPEG of ``image`` as a ``data:`` URI."""
    thumb = image.convert("RGB")
    thumb.thumbnail((size, size))
    buf = io.BytesIO()
    thumb.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def excerpt(text: str, limit: int = 240) -> str:
    """The first ``limit`` characters of ``text``, cut at a word, with an ellipsis when cut."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + "…"


def _sample(run: RunData, example: Example) -> Sample | None:
    max_images = (run.manifest.get("scoring") or {}).get("max_images")
    try:
        return to_sample(example.row, column_map(run), max_images=max_images, fetch_urls=False)
    except SampleError as err:  # the source changed since scoring, or an image can no longer be read
        example.extra["error"] = f"cannot read this row again: {err.reason}"
    except Exception as err:  # noqa: BLE001 - one odd row (unknown schema, ...) must not cost the report
        example.extra["error"] = f"cannot draw this row: {type(err).__name__}"
    return None


def _slots(sample: Sample, attribution: Attribution | None, image_size: int) -> list[dict]:
    if sample.kind == "caption":  # one slot holding both: the image, then its text
        return [{"kind": "image", "src": thumbnail_uri(sample.images[0], image_size)},
                {"kind": "text", "text": excerpt(sample.texts[0], 240)}]
    effects = {s.index: s for s in attribution.slots} if attribution else {}
    largest = max((abs(s.contribution) for s in effects.values() if s.contribution is not None), default=0.0)
    slots = []
    for k, (text, image) in enumerate(zip(sample.texts, sample.images)):
        if image is None and not text:
            continue
        slot = {"kind": "image" if image is not None else "text"}
        if image is not None:
            slot["src"] = thumbnail_uri(image, image_size)
        else:
            slot["text"] = excerpt(text, 160)
        effect = effects.get(k)
        if effect is not None:
            slot["contribution"] = effect.contribution
            slot["error"] = effect.error
            if effect.contribution is not None and largest > 0:
                slot["bar"] = round(100 * abs(effect.contribution) / largest, 1)
        slots.append(slot)
    return slots


def build_examples(run: RunData, examples: Sequence[Example], scorer, explain_bands: Sequence[int]) -> str | None:
    """Fill each example's ``extra["slots"]`` (and attribution for documents in ``explain_bands``).

    ``scorer`` may be None (no attribution). Returns a note on attribution when it was skipped, else None.
    """
    samples = {id(ex): _sample(run, ex) for ex in examples if ex.row is not None}
    to_explain = [ex for ex in examples if samples.get(id(ex)) is not None
                  and samples[id(ex)].kind == "document" and ex.band in explain_bands]
    attributions: dict[int, Attribution] = {}
    note = None
    if to_explain and scorer is None:
        note = "attribution skipped: no model to run (see the command line of `unifilter-hf report`)"
    elif to_explain:
        for ex, attribution in zip(to_explain, explain_many([samples[id(ex)] for ex in to_explain], scorer)):
            attributions[id(ex)] = attribution
            ex.extra["explained"] = True
            if attribution.error is None and abs(attribution.score - ex.score) > 1e-3:
                # The document read back does not score as in the run: the source or the model changed.
                ex.extra["warning"] = (f"scored {attribution.score:.3f} now, {ex.score:.3f} in the run: "
                                       "the source or model changed since")
    for ex in examples:
        sample = samples.get(id(ex))
        if sample is not None:
            try:
                ex.extra["slots"] = _slots(sample, attributions.get(id(ex)), 160 if sample.kind == "caption" else 96)
            except Exception as err:  # noqa: BLE001 - skip what cannot be drawn, and say so
                ex.extra["error"] = f"cannot draw this row: {type(err).__name__}"
                continue
            ex.extra["dropped"] = list(sample.meta.get("dropped", ()))
    return note
