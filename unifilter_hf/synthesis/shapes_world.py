"""The shapes world: an unlimited, seeded, learnable four-level caption set of coloured shapes.

Each scene is one or two *groups*; a group is 1-3 identical shapes of one colour and one kind, placed in one
half of the image (left, right, top or bottom; two groups sit in opposite halves). The positive caption is
rendered from the scene by a strict template, e.g. ``"two red circles on the left and one blue square on the
right"``. The other levels are the captions of *edited scenes*:

- level 3: the exact caption (``edit == "none"``);
- level 2: exactly one property changed, the type drawn evenly from colour, shape, count and position;
- level 1: three different properties changed (``edit`` is e.g. ``"colour+count+position"``);
- level 0: the caption of another scene that shares no colour and no shape word and has the other number of
  groups (``edit == "unrelated"``).

Every edited caption is itself a possible scene (counts 1-3, the two halves opposite, colours and shapes
distinct between groups) rendered by the same template, so the text alone tells nothing about its level.
Shapes are large (about a quarter of the image side at any ``image_size``) so that counts and positions are
visible at 96 px.

Held-out split: the scene space is partitioned by a hash of the canonical caption (1 in 5 scenes belongs to
``"validation"``). *Every* caption of a split, negatives included, lies in that split's partition, so no
validation caption ever appears in training, and a text-only model cannot learn "this caption is never a
positive" from the partition either.

Example:
    >>> ds = shapes_world_dataset(2, split="train", seed=0)
    >>> ds.num_rows, ds[0]["id"], ds[0]["edit"], ds[1]["label"]
    (8, 'train/s000000/L3', 'none', 2)
    >>> ds[0]["image"].size
    (96, 96)
    >>> parse_caption("two red circles on the left and one blue square on the right")[0]
    Group(count=2, colour='red', shape='circle', position='left')
"""

from __future__ import annotations

import hashlib
import io
import itertools
import random
from typing import NamedTuple

import datasets
from PIL import Image, ImageDraw

from ..levels import LEVEL_NAMES

SHAPES_EDIT_TYPES: tuple[str, ...] = ("colour", "shape", "count", "position")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 100, 240),
    "yellow": (240, 220, 40),
    "purple": (160, 70, 210),
    "orange": (245, 140, 20),
}
SHAPES: dict[str, str] = {"circle": "circles", "square": "squares", "triangle": "triangles",
                          "diamond": "diamonds", "cross": "crosses"}
COUNTS: dict[int, str] = {1: "one", 2: "two", 3: "three"}
POSITIONS: dict[str, str] = {"left": "on the left", "right": "on the right", "top": "at the top",
                             "bottom": "at the bottom"}
# Two groups always occupy opposite halves, so they never overlap.
_OPPOSITE = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}
_AXES = (("left", "right"), ("top", "bottom"))
SPLITS: tuple[str, ...] = ("train", "validation")
BACKGROUND = (40, 40, 40)
_VALIDATION_MODULUS = 5  # 1 scene in 5 is validation-only


class Group(NamedTuple):
    """``count`` identical shapes of one colour and kind in one half of the image."""

    count: int
    colour: str
    shape: str
    position: str


Scene = tuple[Group, ...]


# -- scenes and captions ------------------------------------------------------------------------------------
def canonical(scene: Scene) -> Scene:
    """The scene with its groups in caption order (left, right, top, bottom)."""
    order = list(POSITIONS)
    return tuple(sorted(scene, key=lambda g: order.index(g.position)))


def caption(scene: Scene) -> str:
    """The template caption of a scene.

    Example:
        >>> caption((Group(1, "blue", "square", "right"), Group(2, "red", "circle", "left")))
        'two red circles on the left and one blue square on the right'
    """
    parts = []
    for g in canonical(scene):
        noun = g.shape if g.count == 1 else SHAPES[g.shape]
        parts.append(f"{COUNTS[g.count]} {g.colour} {noun} {POSITIONS[g.position]}")
    return " and ".join(parts)


def parse_caption(text: str) -> Scene:
    """Invert :func:`caption` (raises ``ValueError`` on text the template cannot produce)."""
    numbers = {v: k for k, v in COUNTS.items()}
    nouns = {**{s: s for s in SHAPES}, **{p: s for s, p in SHAPES.items()}}
    phrases = {v: k for k, v in POSITIONS.items()}
    groups = []
    for part in text.split(" and "):
        words = part.split(" ")
        if len(words) != 6 or words[0] not in numbers or words[1] not in COLOURS or words[2] not in nouns:
            raise ValueError(f"not a shapes-world caption: {text!r}")
        count, shape, phrase = numbers[words[0]], nouns[words[2]], " ".join(words[3:])
        if phrase not in phrases or words[2] != (shape if count == 1 else SHAPES[shape]):
            raise ValueError(f"not a shapes-world caption: {text!r}")
        groups.append(Group(count, words[1], shape, phrases[phrase]))
    return tuple(groups)


def is_possible_scene(scene: Scene) -> bool:
    """True if the generator could draw this scene (1-2 groups, valid values, opposite halves, no repeats)."""
    if not 1 <= len(scene) <= 2:
        return False
    if any(g.count not in COUNTS or g.colour not in COLOURS or g.shape not in SHAPES or g.position not in POSITIONS
           for g in scene):
        return False
    if len(scene) == 2:
        a, b = scene
        # Distinct colours and shapes keep every group nameable; opposite halves keep them apart.
        return a.colour != b.colour and a.shape != b.shape and _OPPOSITE[a.position] == b.position
    return True


def scene_split(scene: Scene) -> str:
    """The split a scene belongs to, from a stable hash of its canonical caption."""
    digest = int.from_bytes(hashlib.sha256(caption(scene).encode()).digest()[:8], "big")
    return "validation" if digest % _VALIDATION_MODULUS == 0 else "train"


def changed_properties(a: Scene, b: Scene) -> frozenset[str]:
    """The property types that differ between two scenes with the same number of groups.

    Groups are matched in the way that explains the change with the fewest property types (ties broken by
    name), so a scene whose two groups swapped halves differs only in ``"position"``.

    Example:
        >>> sorted(changed_properties((Group(2, "red", "circle", "left"),), (Group(3, "red", "square", "left"),)))
        ['count', 'shape']
    """
    if len(a) != len(b):
        raise ValueError("scenes with different numbers of groups")
    fields = {"colour": "colour", "shape": "shape", "count": "count", "position": "position"}
    options = []
    for perm in itertools.permutations(b):
        diff = {t for x, y in zip(a, perm) for t, f in fields.items() if getattr(x, f) != getattr(y, f)}
        options.append((len(diff), sorted(diff)))
    return frozenset(min(options)[1])


def _random_scene(rng: random.Random, num_groups: int | None = None) -> Scene:
    first = Group(rng.choice(list(COUNTS)), rng.choice(list(COLOURS)), rng.choice(list(SHAPES)),
                  rng.choice(list(POSITIONS)))
    if num_groups == 1 or (num_groups is None and rng.random() < 0.5):
        return (first,)
    second = Group(rng.choice(list(COUNTS)), rng.choice([c for c in COLOURS if c != first.colour]),
                   rng.choice([s for s in SHAPES if s != first.shape]), _OPPOSITE[first.position])
    return canonical((first, second))


def _single_edits(scene: Scene, edit_type: str) -> list[Scene]:
    """Every possible scene that differs from ``scene`` in exactly one property of ``edit_type``."""
    out = []
    if edit_type == "position":
        if len(scene) == 1:
            return [(scene[0]._replace(position=p),) for p in POSITIONS if p != scene[0].position]
        a, b = scene
        # Swap halves, or move both groups to the other axis (either way round).
        other = _AXES[0] if a.position in _AXES[1] else _AXES[1]
        return [canonical((a._replace(position=b.position), b._replace(position=a.position))),
                canonical((a._replace(position=other[0]), b._replace(position=other[1]))),
                canonical((a._replace(position=other[1]), b._replace(position=other[0])))]
    for i, g in enumerate(scene):
        if edit_type == "colour":
            values = [("colour", c) for c in COLOURS if all(c != h.colour for h in scene)]
        elif edit_type == "shape":
            values = [("shape", s) for s in SHAPES if all(s != h.shape for h in scene)]
        elif edit_type == "count":
            values = [("count", n) for n in COUNTS if n != g.count]
        else:
            raise ValueError(f"edit type must be one of {SHAPES_EDIT_TYPES}, got {edit_type!r}")
        for field_name, value in values:
            groups = list(scene)
            groups[i] = g._replace(**{field_name: value})
            out.append(canonical(tuple(groups)))
    return out


def _hard_negative(scene: Scene, edit_type: str, split: str, rng: random.Random) -> Scene | None:
    options = [s for s in _single_edits(scene, edit_type) if scene_split(s) == split]
    return rng.choice(options) if options else None


def _medium_negative(scene: Scene, types: tuple[str, ...], split: str, rng: random.Random) -> Scene | None:
    for _ in range(50):
        edited = scene
        for t in types:
            edited = rng.choice(_single_edits(edited, t))
        # Keep only edits that no simpler explanation undoes (see changed_properties) and the split's own scenes.
        if changed_properties(scene, edited) == frozenset(types) and scene_split(edited) == split:
            return edited
    return None


def _unrelated(scene: Scene, split: str, rng: random.Random) -> Scene:
    colours = {g.colour for g in scene}
    shapes = {g.shape for g in scene}
    while True:
        other = _random_scene(rng)
        # A different number of groups keeps level 0 further from the scene than level 1 (which may change
        # colour and shape of a single group), and keeps the 1-vs-2-group mix of level-0 texts at 50/50.
        if (len(other) != len(scene) and scene_split(other) == split
                and not ({g.colour for g in other} & colours or {g.shape for g in other} & shapes)):
            return other


def shapes_world_scene(index: int, split: str = "train", seed: int = 0) -> dict:
    """Scene ``index`` of a split and its four captions, deterministically for ``(split, seed, index)``.

    Returns ``{"scene", "scenes": {level: Scene}, "captions": {level: text}, "edits": {level: str},
    "layout_seed": int}`` (the seed of the drawing jitter).

    Example:
        >>> s = shapes_world_scene(0)
        >>> s["captions"][3] == caption(s["scene"]), s["edits"][3], s["edits"][0]
        (True, 'none', 'unrelated')
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    # Edit types of level 2 come from a shuffled block of four, so every four scenes use each type once; so do
    # the numbers of groups (two scenes of one group, two of two): the acceptance below rejects more scenes of
    # one kind than of the other in a split (a 56/44 mix in validation when the number was drawn per scene),
    # and level 0 always has the other number of groups than the scene, so the mix must be even at every level.
    block_rng = random.Random(f"shapes-world|{split}|{seed}|block|{index // 4}")
    edit_type = block_rng.sample(SHAPES_EDIT_TYPES, 4)[index % 4]
    num_groups = block_rng.sample((1, 1, 2, 2), 4)[index % 4]
    rng = random.Random(f"shapes-world|{split}|{seed}|{index}")
    while True:
        scene = _random_scene(rng, num_groups)
        if scene_split(scene) != split:
            continue
        hard = _hard_negative(scene, edit_type, split, rng)
        medium_types = tuple(sorted(rng.sample(SHAPES_EDIT_TYPES, 3), key=SHAPES_EDIT_TYPES.index))
        medium = _medium_negative(scene, medium_types, split, rng)
        if hard is not None and medium is not None:
            break
    unrelated = _unrelated(scene, split, rng)
    scenes = {3: scene, 2: hard, 1: medium, 0: unrelated}
    edits = {3: "none", 2: edit_type, 1: "+".join(medium_types), 0: "unrelated"}
    return {"scene": scene, "scenes": scenes, "captions": {k: caption(v) for k, v in scenes.items()}, "edits": edits,
            "layout_seed": rng.getrandbits(32)}


# -- images -------------------------------------------------------------------------------------------------
def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, size: float, fill) -> None:
    r = size / 2
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "square":
        q = r * 0.88  # a little smaller than the circle, so that both cover similar areas
        draw.rectangle((cx - q, cy - q, cx + q, cy + q), fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx + r, cy + r * 0.85), (cx - r, cy + r * 0.85)], fill=fill)
    elif shape == "diamond":
        draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill)
    elif shape == "cross":
        t = r / 3
        draw.rectangle((cx - r, cy - t, cx + r, cy + t), fill=fill)
        draw.rectangle((cx - t, cy - r, cx + t, cy + r), fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def render_scene(scene: Scene, image_size: int = 96, layout_seed: int = 0) -> Image.Image:
    """Draw a scene: each group's shapes evenly spaced along its half, with a small seeded jitter.

    Example:
        >>> render_scene((Group(1, "red", "circle", "left"),)).getpixel((24, 48))
        (220, 40, 40)
    """
    rng = random.Random(layout_seed)
    image = Image.new("RGB", (image_size, image_size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    half = image_size / 2
    # Up to three shapes in a half: one cell is a third of the long side; shapes fill ~80% of it.
    cell = image_size / 3
    for g in scene:
        size = cell * rng.uniform(0.74, 0.82)
        across = half / 2 + rng.uniform(-0.06, 0.06) * half  # centre of the half, across its long side
        if g.position in ("right", "bottom"):
            across += half
        for k in range(g.count):
            along = image_size * (2 * k + 1) / (2 * g.count) + rng.uniform(-0.02, 0.02) * image_size
            x, y = (across, along) if g.position in ("left", "right") else (along, across)
            _draw_shape(draw, g.shape, x, y, size, COLOURS[g.colour])
    return image


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


# -- dataset and tokenizer ----------------------------------------------------------------------------------
def shapes_world_features() -> datasets.Features:
    """The columns of :func:`shapes_world_dataset`."""
    return datasets.Features({
        "id": datasets.Value("string"),
        "group_id": datasets.Value("string"),
        "kind": datasets.Value("string"),
        "image": datasets.Image(),
        "text": datasets.Value("string"),
        "label": datasets.ClassLabel(names=list(LEVEL_NAMES)),
        "edit": datasets.Value("string"),
    })


def shapes_world_dataset(num_scenes: int, split: str = "train", seed: int = 0, image_size: int = 96,
                         blank_images: bool = False) -> datasets.Dataset:
    """Four rows per scene (levels 3, 2, 1, 0), scenes in order; deterministic for ``(split, seed, index)``.

    ``blank_images=True`` keeps the texts and labels but draws no shapes: the control that shows whether a
    model uses the image at all (it should then score at chance).

    Example:
        >>> ds = shapes_world_dataset(1, split="validation", seed=3, blank_images=True)
        >>> list(ds["label"]), ds[0]["image"].getextrema()[0]
        ([3, 2, 1, 0], (40, 40))
    """
    columns: dict[str, list] = {name: [] for name in shapes_world_features()}
    blank = _png(Image.new("RGB", (image_size, image_size), BACKGROUND)) if blank_images else None
    for index in range(num_scenes):
        s = shapes_world_scene(index, split, seed)
        group_id = f"{split}/s{index:06d}"
        png = blank or _png(render_scene(s["scene"], image_size, s["layout_seed"]))
        for level in (3, 2, 1, 0):
            columns["id"].append(f"{group_id}/L{level}")
            columns["group_id"].append(group_id)
            columns["kind"].append("caption")
            columns["image"].append({"bytes": png, "path": None})
            columns["text"].append(s["captions"][level])
            columns["label"].append(level)
            columns["edit"].append(s["edits"][level])
    return datasets.Dataset.from_dict(columns, features=shapes_world_features())


__all__ = [
    "COLOURS",
    "COUNTS",
    "POSITIONS",
    "SHAPES",
    "SHAPES_EDIT_TYPES",
    "Group",
    "Scene",
    "caption",
    "changed_properties",
    "is_possible_scene",
    "parse_caption",
    "render_scene",
    "scene_split",
    "shapes_world_dataset",
    "shapes_world_features",
    "shapes_world_scene",
]
