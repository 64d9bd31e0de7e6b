"""`unifilter-hf ablate`: four equal-size sets from a curated pool, four trainings per seed, the table written."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from unifilter_hf.ablation import AblationError
from unifilter_hf.ablation.evaluate import four_level_accuracy
from unifilter_hf.ablation.sets import Pair, check_sets, oracle_set, random_set, unifilter_set
from unifilter_hf.cli import main
from unifilter_hf.curation import CurateConfig, curate
from unifilter_hf.demo.pool import POOL_FILE, build_pool, write_shapes_world
from unifilter_hf.report import write_report
from unifilter_hf.synthesis.shapes_world import render_scene, shapes_world_scene

FIXTURE_MODEL = Path(__file__).parent / "fixtures" / "quickstart-shapes"


@pytest.fixture(scope="module")
def ablated(tmp_path_factory):
    """A 10-scene pool (40 caption rows) curated by the trained fixture, then ablated through the CLI."""
    root = tmp_path_factory.mktemp("ablation")
    shapes = write_shapes_world(root / "shapes", num_scenes=10)  # generator seed 1
    build_pool(shapes, root / "pool", caption_scenes=10, broken_per_defect=1)
    run = root / "run"
    curate(CurateConfig(source=str(root / "pool"), output=str(run), model=str(FIXTURE_MODEL), top_fraction=0.25,
                        quiet=True, report=False))
    # The held-out pairs come from the pool's own generator seed: its scenes must be skipped, not evaluated on.
    assert main(["ablate", str(root / "pool"), str(run), "--seeds", "0,1", "--steps", "3", "--eval-pairs", "12",
                 "--eval-seed", "1"]) == 0
    return root, run, json.loads((run / "ablation.json").read_text())


def test_four_sets_of_equal_size_four_trainings_per_seed(ablated):
    _, _, result = ablated
    assert result["candidates"] == 40 and result["budget"] == 10
    assert set(result["sets"]) == {"unifilter", "random", "clip_score", "oracle"}
    for name, per_seed in result["sets"].items():
        assert [s["seed"] for s in per_seed] == [0, 1]
        for s in per_seed:
            assert len(s["keys"]) == len(set(s["keys"])) == result["budget"], name
    assert sorted((r["seed"], r["set"]) for r in result["runs"]) == sorted(
        (seed, name) for seed in (0, 1) for name in result["sets"])
    for r in result["runs"]:
        for metric in ("i2t_r1", "i2t_r5", "t2i_r1", "t2i_r5"):
            assert 0.0 <= r[metric] <= 1.0
        assert r["i2t_r5"] >= r["i2t_r1"] and r["t2i_r5"] >= r["t2i_r1"]
        assert 0.0 <= r["level_acc"] <= 1.0
    # The oracle takes the ten level-3 rows; random and the filters cannot do better on true level.
    assert all(s["mean_level"] == 3.0 for s in result["sets"]["oracle"])
    assert all(s["mean_level"] <= 3.0 for name in result["sets"] for s in result["sets"][name])
    assert result["summary"]["oracle"]["i2t_r1"]["mean"] == pytest.approx(
        sum(r["i2t_r1"] for r in result["runs"] if r["set"] == "oracle") / 2)


def test_no_set_shares_an_image_or_caption_with_the_evaluation(ablated):
    root, _, result = ablated
    rows = {r["id"]: r for r in pq.read_table(root / "pool" / POOL_FILE).to_pylist()}
    assert len(result["eval_keys"]) == result["eval_pairs"] == 12
    held_texts, held_images = set(), set()
    for key in result["eval_keys"]:  # re-draw each held-out scene from its key, independently of the ablation
        index = int(key.rsplit("/s", 1)[1])
        scene = shapes_world_scene(index, "validation", result["eval_seed"])
        buf = io.BytesIO()
        render_scene(scene["scene"], 96, scene["layout_seed"]).save(buf, format="PNG")
        held_texts.add(scene["captions"][3])
        held_images.add(buf.getvalue())
    assert len(held_texts) == 12
    for name, per_seed in result["sets"].items():
        for s in per_seed:
            for key in s["keys"]:
                assert rows[key]["texts"][1] not in held_texts, (name, key)
                assert rows[key]["images"][0]["bytes"] not in held_images, (name, key)


def test_report_gets_the_ablation_section(ablated):
    _, run, _ = ablated
    html = write_report(run, attribution=False).read_text()
    assert 'id="ablation"' in html and "CLIP-score" in html and "oracle" in html
    assert "contains. No pretrained CLIP offline: " in html  # the CLIP-score note, a sentence of its own
    assert (run / "report" / "ablation.png").stat().st_size > 1000


def test_unequal_or_leaking_sets_are_refused():
    pairs = [Pair(f"k{i}", bytes([i]), f"text {i}", 3) for i in range(6)]
    held = [Pair("eval/0", b"other", "held text", 3)]
    check_sets({"a": pairs[:3], "b": pairs[3:]}, held, 3)
    with pytest.raises(AblationError, match="budget 3"):
        check_sets({"a": pairs[:3], "b": pairs[3:5]}, held, 3)
    with pytest.raises(AblationError, match="shares 1 pairs"):
        check_sets({"a": pairs[:3]}, [Pair("eval/1", b"x", "text 1", 3)], 3)


def test_every_set_takes_one_caption_per_image_by_default(ablated):
    """The pool has four captions per scene image; each filter keeps its best one per image (random: any one)."""
    root, _, result = ablated
    rows = {r["id"]: r for r in pq.read_table(root / "pool" / POOL_FILE).to_pylist()}
    assert result["per_image"] is True and result["images"] == 10
    for name, per_seed in result["sets"].items():
        for s in per_seed:
            images = [rows[key]["images"][0]["bytes"] for key in s["keys"]]
            assert len(set(images)) == len(images) == 10, name


def test_per_image_keeps_each_images_best_caption_and_all_captions_does_not():
    a, b = b"image-a", b"image-b"
    pairs = [Pair("a3", a, "a right", 3), Pair("a2", a, "a wrong", 2), Pair("b1", b, "b wrong", 1),
             Pair("b0", b, "b worse", 0)]
    scores = {"a3": 2.9, "a2": 2.5, "b1": 1.0, "b0": 0.2}
    assert [p.key for p in unifilter_set(pairs, 2, scores, seed=0)] == ["a3", "a2"]
    assert [p.key for p in unifilter_set(pairs, 2, scores, seed=0, per_image=True)] == ["a3", "b1"]
    assert [p.key for p in oracle_set(pairs, 2, seed=0, per_image=True)] == ["a3", "b1"]
    for seed in range(5):
        assert len({p.png for p in random_set(pairs, 2, seed, per_image=True)}) == 2


def test_a_budget_above_the_pools_images_is_refused_unless_all_captions(ablated, capsys):
    root, run, _ = ablated
    assert main(["ablate", str(root / "pool"), str(run), "--budget", "11", "--output", str(root / "over")]) == 2
    err = capsys.readouterr().err
    assert "budget 11 is more than the pool's 10 distinct images" in err and "--all-captions" in err
    assert not (root / "over" / "ablation.json").exists()


def test_a_default_budget_above_the_pools_images_takes_each_image_once(ablated):
    """Half of 40 caption rows is 20, but the pool has 10 images (a pool may repeat an image): 10 per set."""
    root, run, _ = ablated
    assert main(["ablate", str(root / "pool"), str(run), "--top-fraction", "0.5", "--seeds", "0", "--steps", "1",
                 "--eval-pairs", "12", "--eval-seed", "1", "--output", str(root / "half")]) == 0
    result = json.loads((root / "half" / "ablation.json").read_text())
    assert result["budget"] == 10
    assert all(len(s["keys"]) == 10 for per_seed in result["sets"].values() for s in per_seed)


@pytest.mark.parametrize(("args", "message"), [
    (["--budget", "0"], "budget 0 is not between 1 and the 40 candidate caption rows"),
    (["--top-fraction", "2"], "top fraction 2.0 is not in (0, 1]"),
    (["--top-fraction", "0"], "top fraction 0.0 is not in (0, 1]"),
])
def test_a_budget_or_fraction_out_of_range_is_refused(ablated, capsys, args, message):
    root, run, _ = ablated
    assert main(["ablate", str(root / "pool"), str(run), *args, "--output", str(root / "bad")]) == 2
    assert message in capsys.readouterr().err
    assert not (root / "bad" / "ablation.json").exists()


def test_four_level_accuracy_needs_the_level_3_caption_strictly_first():
    images = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=-1)
    right = torch.stack([images.flip(0)] * 3 + [images], dim=1)  # levels 0-2 orthogonal, level 3 the image
    assert four_level_accuracy(images, right) == 1.0
    collapsed = images[:, None, :].repeat(1, 4, 1)  # every caption alike: a tie is a miss, not a hit
    assert four_level_accuracy(images, collapsed) == 0.0
    swapped = torch.stack([images.flip(0), images.flip(0), images, images.flip(0)], dim=1)  # level 2 wins
    assert four_level_accuracy(images, swapped) == 0.0
