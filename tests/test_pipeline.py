"""pipeline("multimodal-quality-scoring"): input forms, outputs, batching, defaults and remote code."""

import functools
import http.server
import json
import logging
import math
import os
import subprocess
import sys
import textwrap
import threading

import datasets
import pytest
import torch
from transformers import pipeline

from tests.badrows import jpeg, truncated_jpeg
from tests.kit import TASK, caption_rows, photo, tiny_model_and_processor
from unifilter_hf import Sample
from unifilter_hf.cli import main
from unifilter_hf.filtering import unifilter_score


@pytest.fixture(scope="module")
def photo_server(tmp_path_factory):
    """A local HTTP server on 127.0.0.1 serving real photographs."""
    root = tmp_path_factory.mktemp("www")
    (root / "coffee.jpg").write_bytes(jpeg("coffee"))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_every_image_form_gives_the_same_score(model_dir, tmp_path, photo_server, monkeypatch):
    monkeypatch.setenv("UNIFILTER_ALLOW_PRIVATE_URLS", "127.0.0.0/8")  # the photo server is on loopback
    pipe = pipeline("multimodal-quality-scoring", model=str(model_dir), device="cpu")
    data = jpeg("coffee")
    path = tmp_path / "coffee.jpg"
    path.write_bytes(data)
    import io

    from PIL import Image

    forms = [
        Image.open(io.BytesIO(data)),
        str(path),
        path.as_uri(),
        f"{photo_server}/coffee.jpg",
        data,
        {"bytes": data, "path": None},
    ]
    results = pipe([{"image": f, "text": "A cup of coffee."} for f in forms])
    scores = [r["score"] for r in results]
    assert all(r["error"] is None for r in results)
    assert max(scores) - min(scores) < 1e-6
    assert all(isinstance(r["level"], int) and 0 <= r["level"] <= 3 for r in results)


def test_scores_equal_the_model_and_batching_changes_nothing(model_dir):
    from unifilter_hf import UniFilterForQualityScoring, UniFilterProcessor

    model = UniFilterForQualityScoring.from_pretrained(model_dir).eval()
    proc = UniFilterProcessor.from_pretrained(model_dir)
    inputs = [
        {"image": photo("chelsea"), "text": "An orange tabby cat."},
        {"images": [None, photo("china"), None, photo("rocket")], "texts": ["Trip.", None, "Launch day.", None]},
        {"image": b"broken", "text": "x"},
        {"images": [None], "texts": ["A document with text only."]},
        {"image": photo("coffee"), "text": "Coffee " * 30},
    ]
    pipe = pipeline("multimodal-quality-scoring", model=model, processor=proc, device="cpu")
    one = pipe(inputs)
    batched = pipe(inputs, batch_size=3)
    generated = list(pipe((x for x in inputs), batch_size=2))
    with torch.no_grad():
        direct = model(**proc([Sample.caption(inputs[0]["image"], inputs[0]["text"])])).scores.item()
    assert one[0]["score"] == pytest.approx(direct, abs=1e-5)
    for a, b, c in zip(one, batched, generated):
        if a["error"]:
            assert math.isnan(b["score"]) and b["error"] == c["error"] == a["error"]
        else:
            assert b["score"] == pytest.approx(a["score"], abs=1e-5) and c["score"] == pytest.approx(
                a["score"], abs=1e-5
            )
    assert one[2]["error"] == "image: not a recognized image format" and one[2]["level"] is None


def test_threshold_adds_keep(model_dir):
    pipe = pipeline("multimodal-quality-scoring", model=str(model_dir), device="cpu")
    inputs = [
        {"image": photo(n), "text": t}
        for n, t in [("coffee", "A cup of coffee."), ("rocket", "A rocket on a pad."), ("flower", "A flower.")]
    ]
    results = pipe(inputs, threshold=1.5)
    assert [r["keep"] for r in results] == [r["score"] >= 1.5 for r in results]
    assert {r["keep"] for r in results} == {True, False}  # the fitted head spreads scores around 1.5


def test_four_level_head_reports_probabilities():
    model, proc = tiny_model_and_processor(num_labels=4, seed=2)
    pipe = pipeline("multimodal-quality-scoring", model=model, processor=proc, device="cpu")
    result = pipe({"image": photo("coffee"), "text": "A cup of coffee."})
    probs = result["probs"]
    assert len(probs) == 4 and sum(probs) == pytest.approx(1.0, abs=1e-5)
    assert result["level"] == max(range(4), key=probs.__getitem__)
    assert result["score"] == pytest.approx(sum(k * p for k, p in enumerate(probs)), abs=1e-5)


def test_bare_task_uses_the_configured_default(default_model):
    pipe = pipeline("multimodal-quality-scoring", device="cpu")
    assert pipe.model.name_or_path == str(default_model)
    assert math.isfinite(pipe({"image": photo("coffee"), "text": "A cup of coffee."})["score"])


def test_saved_pipeline_runs_as_remote_code_in_a_fresh_process(model_dir, tmp_path):
    pipe = pipeline("multimodal-quality-scoring", model=str(model_dir), device="cpu")
    folder = tmp_path / "saved"
    pipe.save_pretrained(folder)
    assert json.loads((folder / "config.json").read_text())["custom_pipelines"]["multimodal-quality-scoring"]
    photo("coffee").save(tmp_path / "coffee.png")
    expected = pipe({"image": str(tmp_path / "coffee.png"), "text": "A cup of coffee."})["score"]
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.modules["unifilter_hf"] = None  # as if not installed: any import of it raises ImportError
        from transformers import pipeline
        pipe = pipeline(model={str(folder)!r}, trust_remote_code=True, device="cpu")
        out = pipe({{"image": {str(tmp_path / "coffee.png")!r}, "text": "A cup of coffee."}})
        assert sys.modules["unifilter_hf"] is None
        print(json.dumps(out))
        """
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "home"))
    env.pop("UNIFILTER_MODEL", None)
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout.strip().splitlines()[-1])["score"] == pytest.approx(expected, abs=1e-6)


def test_lost_and_cut_images_are_counted_everywhere(default_model, tmp_path, caplog, monkeypatch):
    # The in-memory dataset's rows name files by absolute paths in tmp_path: rows read them on this opt-in.
    monkeypatch.setenv("UNIFILTER_ALLOW_LOCAL_FILES", str(tmp_path))
    for name in ["coffee", "china", "rocket", "flower", "chelsea"]:
        (tmp_path / f"{name}.jpg").write_bytes(jpeg(name))
    (tmp_path / "truncated.jpg").write_bytes(truncated_jpeg()[:300])
    lost_one = {"texts": ["Intro.", None, None], "images": [None, str(tmp_path / "coffee.jpg"), "no/such/x.jpg"]}
    lost_all = {"texts": ["Intro.", None], "images": [None, str(tmp_path / "truncated.jpg")]}
    long_doc = {"texts": [], "images": []}
    for name in ["coffee", "china", "rocket", "flower", "chelsea"] * 10:  # 50 images x 16 tokens > 512
        long_doc["texts"] += ["A paragraph about the photo.", None]
        long_doc["images"] += [None, str(tmp_path / f"{name}.jpg")]
    pipe = pipeline(TASK, device="cpu")
    one, alld, long = pipe([lost_one, lost_all, long_doc])
    assert (one["images_dropped"], one["images_cut"], one["error"]) == (1, 0, None)
    assert math.isnan(alld["score"]) and alld["error"].startswith("document: all images failed to load")
    assert long["error"] is None and long["images_dropped"] == 0 and 20 <= long["images_cut"] < 50
    assert pipe(lost_all, on_image_error="score_rest")["images_dropped"] == 1  # the text-only score, counted

    ds = datasets.Dataset.from_list([lost_one, lost_all, long_doc])
    with caplog.at_level(logging.WARNING, logger="unifilter_hf"):
        scored = ds.map(unifilter_score, batched=True)
    assert scored["unifilter_images_dropped"] == [1, 0, 0]
    assert scored["unifilter_images_cut"] == [0, 0, long["images_cut"]]
    assert scored["unifilter_score"][2] == pytest.approx(long["score"], abs=1e-5)
    assert any("images failed to load" in r.getMessage() for r in caplog.records)  # loud, not silent

    ds.to_json(tmp_path / "docs.jsonl")
    out = tmp_path / "docs-scored.jsonl"
    assert main(["score", str(tmp_path / "docs.jsonl"), "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["unifilter_images_dropped"] for r in rows] == [1, 0, 0] and rows[2]["unifilter_images_cut"] > 0


def test_default_model_offline_names_the_model_and_the_fix(monkeypatch):
    monkeypatch.delenv("UNIFILTER_MODEL", raising=False)
    with pytest.raises(OSError, match=r"UniFilter-Qwen2\.5-1\.5B.*UNIFILTER_MODEL"):
        pipeline(TASK)
    with pytest.raises(OSError, match=r"UniFilter-Qwen2\.5-1\.5B.*UNIFILTER_MODEL"):
        datasets.Dataset.from_list(caption_rows(1)).map(unifilter_score)
