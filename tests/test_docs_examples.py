"""Every ```python block of README.md and docs/*.md runs, offline, with the tiny model as the default model.

Conventions in the markdown (HTML comments on the lines right above a fence, invisible when rendered):

- ``<!-- no-test: needs the Hub -->``: the block is skipped; the reason is reported with the block's id.
- ``<!-- test-setup: ... -->``: Python run before the block, for the inputs a reader brings (``ds``,
  ``scores``, a loaded ``model``), so the block itself stays as a user would write it.

The blocks of one file run in order in one namespace (as a reader runs them one after another), all files in
one subprocess whose working folder holds the photographs and folders the blocks name (``cat.jpg``, ``a.jpg``,
``path/to/checkpoint``, ``data/shards/``, ...), with ``UNIFILTER_MODEL`` pointing at the tiny saved model.
Each block is one test, named ``FILE#INDEX`` (its index among the file's python blocks).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
COMMENT = re.compile(r"<!--\s*(no-test|test-setup):(.*?)-->", re.S)


class Block(NamedTuple):
    id: str  # "docs/metrics.md#1"
    code: str
    setup: str = ""
    skip: str = ""  # the reason, for a block that cannot run offline


def doc_blocks() -> list[Block]:
    """The python blocks of README.md and docs/*.md with the markers written right above each fence."""
    blocks = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text()
        for index, fence in enumerate(FENCE.finditer(text)):
            before = text[: fence.start()].rstrip("\n")
            # the HTML comments directly above the fence (no blank line between them and it)
            above = before[before.rfind("\n\n") + 2:] if "\n\n" in before else before
            setup, skip = "", ""
            for kind, body in COMMENT.findall(above):
                if kind == "no-test":
                    skip = body.strip() or "marked no-test"
                else:
                    setup += body.strip("\n") + "\n"
            blocks.append(Block(f"{path.relative_to(ROOT)}#{index}", fence.group(1), setup, skip))
    return blocks


BLOCKS = doc_blocks()

# Runs the blocks given as JSON on stdin; one namespace per file; prints {id: None or the traceback}.
RUNNER = r"""
import json, sys, time, traceback
import matplotlib
matplotlib.use("Agg")
blocks, results, spaces = json.load(sys.stdin), {}, {}
for block in blocks:
    space = spaces.setdefault(block["id"].split("#")[0], {"__name__": "__main__"})
    started = time.perf_counter()
    try:
        exec(compile(block["setup"], block["id"] + " (test-setup)", "exec"), space)
        exec(compile(block["code"], block["id"], "exec"), space)
        results[block["id"]] = None
    except BaseException:
        results[block["id"]] = traceback.format_exc()[-3000:]
    print(f"{block['id']}: {time.perf_counter() - started:.1f} s", file=sys.stderr)
print("RESULTS " + json.dumps(results))
"""


def _workspace(folder: Path, model_dir: Path) -> None:
    """The files the blocks name, made from real photographs and the tiny model."""
    import datasets

    from tests.badrows import image_dict, jpeg
    from tests.kit import photo

    photos = {"cat.jpg": "chelsea", "a.jpg": "coffee", "flower.jpg": "flower", "photo.jpg": "astronaut"}
    for name, source in photos.items():
        photo(source, 256).convert("RGB").save(folder / name)
    for link in ("path/to/checkpoint", "out/model"):
        (folder / link).parent.mkdir(parents=True, exist_ok=True)
        (folder / link).symlink_to(model_dir, target_is_directory=True)
    rows = [{"image": image_dict(jpeg(n)), "text": f"A photograph of a {n}."} for n in ("coffee", "rocket", "chelsea")]
    features = datasets.Features({"image": datasets.Image(), "text": datasets.Value("string")})
    datasets.Dataset.from_list(rows, features=features).to_parquet(folder / "captions.parquet")  # Hub style
    (folder / "data" / "shards").mkdir(parents=True)
    datasets.Dataset.from_list(rows).to_parquet(folder / "data" / "shards" / "part-0.parquet")


@pytest.fixture(scope="module")
def results(model_dir, tmp_path_factory) -> dict[str, str | None]:
    """All runnable blocks, run once in one subprocess (a block's failure does not stop the others)."""
    folder = tmp_path_factory.mktemp("docs-cwd")
    _workspace(folder, model_dir)
    env = dict(os.environ, HF_HUB_OFFLINE="1", UNIFILTER_MODEL=str(model_dir), PYTHONPATH=str(ROOT),
               HF_DATASETS_CACHE=str(folder / ".cache"), MPLBACKEND="Agg")
    todo = [b._asdict() for b in BLOCKS if not b.skip]
    run = subprocess.run([sys.executable, "-c", RUNNER], input=json.dumps(todo), capture_output=True, text=True,
                         env=env, cwd=folder, timeout=600)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULTS ")]
    assert run.returncode == 0 and lines, run.stderr[-3000:]
    return json.loads(lines[-1][len("RESULTS "):])


@pytest.mark.parametrize(
    "block", [pytest.param(b, id=b.id, marks=[pytest.mark.skip(reason=b.skip)] if b.skip else []) for b in BLOCKS]
)
def test_doc_block_runs(block, results):
    assert results[block.id] is None, f"{block.id} failed:\n{results[block.id]}"


def test_every_doc_block_is_found_and_skips_say_why():
    """The extraction sees the blocks (a broken fence regex would make the suite vacuous)."""
    ids = [b.id for b in BLOCKS]
    assert "README.md#0" in ids and len(ids) >= 15 and len(set(ids)) == len(ids)
    assert all(b.skip != "marked no-test" for b in BLOCKS)  # every skip names its reason
    assert sum(1 for b in BLOCKS if not b.skip) > sum(1 for b in BLOCKS if b.skip)


def test_readme_example_output_lists_every_key(model_dir, tmp_path):
    """The output README's first example shows in a comment has the keys the pipeline returns."""
    from transformers import pipeline

    from tests.kit import photo

    shown = re.search(r"^# (\{'score'.*\})$", BLOCKS[0].code, re.M)
    assert shown, BLOCKS[0].code
    keys = re.findall(r"'(\w+)':", shown.group(1))
    photo("chelsea", 128).save(tmp_path / "cat.png")
    pipe = pipeline("multimodal-quality-scoring", model=str(model_dir), device="cpu")
    result = pipe({"image": str(tmp_path / "cat.png"), "text": "An orange tabby cat on a sofa."}, threshold=2.0)
    assert keys == list(result)
