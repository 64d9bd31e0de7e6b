"""What a new user hits in the first hour: each failure reproduced, then fixed (one test or more per item)."""

from __future__ import annotations

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
import time
import traceback

import datasets
import pytest
from transformers import pipeline

from tests.badrows import image_dict, jpeg, truncated_jpeg
from tests.kit import photo
from unifilter_hf import undecode_images
from unifilter_hf.cli import main
from unifilter_hf.filtering import unifilter_keep, unifilter_score
from unifilter_hf.row_layouts import SchemaError
from unifilter_hf.scoring import QualityScorer

datasets.disable_progress_bars()
TASK = "multimodal-quality-scoring"


def _captions(n: int = 4) -> list[dict]:
    names = ["coffee", "rocket", "flower", "chelsea", "china", "astronaut"]
    return [{"image": image_dict(jpeg(names[i % 6])), "text": f"A photograph, number {i}."} for i in range(n)]


@pytest.fixture
def count_scored(monkeypatch):
    """Counts the samples that reach the model (every path goes through QualityScorer.score_samples)."""
    seen = []
    real = QualityScorer.score_samples
    monkeypatch.setattr(QualityScorer, "score_samples", lambda self, s: seen.append(len(s)) or real(self, s))
    return seen


class _SlowImages(http.server.SimpleHTTPRequestHandler):
    delay, inflight, max_inflight, lock = 0.3, 0, 0, threading.Lock()

    def do_GET(self):  # noqa: N802 - http.server's name
        cls = type(self)
        with cls.lock:
            cls.inflight += 1
            cls.max_inflight = max(cls.max_inflight, cls.inflight)
        time.sleep(cls.delay)  # the server is slow, not the test: concurrency is counted, not timed
        with cls.lock:
            cls.inflight -= 1
        return super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def slow_server(tmp_path, monkeypatch):
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("UNIFILTER_ALLOW_PRIVATE_URLS", "127.0.0.0/8")  # rows may reach loopback on this opt-in
    (tmp_path / "coffee.jpg").write_bytes(jpeg("coffee"))
    _SlowImages.max_inflight = 0
    handler = functools.partial(_SlowImages, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


# -- 1. num_proc after warm use --------------------------------------------------------------------------------
def test_num_proc_works_after_torch_ran_in_the_parent(model_dir, tmp_path):
    # Before the fix the forked workers waited forever on torch's dead OpenMP pool: the timeout catches it.
    script = textwrap.dedent(f"""
        import datasets, json, torch
        from tests.badrows import image_dict, jpeg
        from unifilter_hf.filtering import unifilter_keep, unifilter_score
        datasets.disable_progress_bars()
        torch.set_num_threads(2)
        rows = [{{"image": image_dict(jpeg(n)), "text": "A photo."}} for n in ("coffee", "rocket", "flower", "china")]
        ds = datasets.Dataset.from_list(rows)
        score = unifilter_score(model={str(model_dir)!r})
        warm = list(ds.map(score, batched=True)["unifilter_score"])  # torch runs in the parent first
        out = {{}}
        for batched in (True, False):
            mapped = ds.map(score, batched=batched, num_proc=2, load_from_cache_file=False)
            out[f"map{{batched}}"] = list(mapped["unifilter_score"])
            keep = unifilter_keep(model={str(model_dir)!r}, threshold=-100.0)
            out[f"filter{{batched}}"] = len(ds.filter(keep, batched=batched, num_proc=2, load_from_cache_file=False))
        print(json.dumps({{"warm": warm, **out}}))
    """)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_CACHE=str(tmp_path / "cache"))
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=240,
                         cwd=os.path.dirname(os.path.dirname(__file__)))
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    for batched in ("True", "False"):
        assert result[f"map{batched}"] == pytest.approx(result["warm"], abs=1e-6)
        assert result[f"filter{batched}"] == 4


# -- 2. a corrupt image in a decoded Image() column ------------------------------------------------------------
@pytest.fixture
def hub_style_parquet(tmp_path):
    rows = _captions(3) + [{"image": image_dict(truncated_jpeg()[:200]), "text": "A broken image."}]
    features = datasets.Features({"image": datasets.Image(), "text": datasets.Value("string")})
    path = tmp_path / "hub.parquet"
    datasets.Dataset.from_list(rows, features=features).to_parquet(path)
    return path


def test_decoded_image_column_error_names_the_fix_and_undecode_images_survives(hub_style_parquet, default_model):
    ds = datasets.Dataset.from_parquet(str(hub_style_parquet))
    assert ds.features["image"].decode  # the Hub default
    with pytest.raises(Exception) as info:
        ds.map(unifilter_score, batched=True)
    assert "undecode_images" in "".join(traceback.format_exception(info.value))
    raw = undecode_images(ds)
    scored = raw.map(unifilter_score, batched=True)
    errors = scored["unifilter_error"]
    assert [bool(e) for e in errors] == [False, False, False, True] and errors[3].startswith("image:")
    assert len(raw.filter(unifilter_keep(threshold=-100.0), batched=True)) == 3
    streamed = list(undecode_images(ds.to_iterable_dataset()).map(unifilter_score, batched=True))
    assert [bool(r["unifilter_error"]) for r in streamed] == [False, False, False, True]


def test_score_command_reads_hub_style_parquet_undecoded(hub_style_parquet, model_dir, tmp_path):
    out = tmp_path / "out.parquet"
    assert main(["score", str(hub_style_parquet), "--model", str(model_dir), "--output", str(out)]) == 0
    errors = datasets.Dataset.from_parquet(str(out))["unifilter_error"]
    assert len(errors) == 4 and sum(bool(e) for e in errors) == 1


# -- 3. documents that lost images say so -----------------------------------------------------------------------
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


# -- 4. no documented recipe scores a row twice ----------------------------------------------------------------
def test_map_then_filter_scores_each_row_once(default_model, count_scored, tmp_path):
    ds = datasets.Dataset.from_list(_captions(6))
    scored = ds.map(unifilter_score, batched=True)
    assert sum(count_scored) == 6
    kept = scored.filter(unifilter_keep(threshold=1.0), batched=True)
    unbatched = scored.filter(unifilter_keep(threshold=1.0))
    assert sum(count_scored) == 6  # decided from the score columns
    expected = sum(s >= 1.0 for s in scored["unifilter_score"])
    assert len(kept) == len(unbatched) == expected
    # columns from another model or settings are not trusted: that filter scores the rows itself
    scored.filter(unifilter_keep(threshold=1.0, max_images=3), batched=True)
    assert sum(count_scored) == 12

    count_scored.clear()
    ds.to_parquet(tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    assert main(["score", str(tmp_path / "in.parquet"), "--output", str(out), "--threshold", "1.0"]) == 0
    assert sum(count_scored) == 6 and len(datasets.Dataset.from_parquet(str(out))) == expected


# -- 5. the CLI never returns an earlier run's results ---------------------------------------------------------
def test_score_command_rerun_from_the_right_folder_is_not_stale(default_model, tmp_path, monkeypatch):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "coffee.jpg").write_bytes(jpeg("coffee"))
    table = tmp_path / "rows.jsonl"
    table.write_text(json.dumps({"image": "coffee.jpg", "text": "A cup of coffee."}) + "\n")
    out = tmp_path / "out.jsonl"
    monkeypatch.chdir(tmp_path)  # relative paths do not resolve here
    assert main(["score", str(table), "--output", str(out)]) == 0
    assert "file not found" in json.loads(out.read_text())["unifilter_error"]
    monkeypatch.chdir(photos)
    assert main(["score", str(table), "--output", str(out)]) == 0
    row = json.loads(out.read_text())
    assert row["unifilter_error"] == "" and math.isfinite(row["unifilter_score"])


# -- 6. CLI errors and options ---------------------------------------------------------------------------------
def _cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "unifilter_hf.cli", *args], capture_output=True, text=True,
                          env=env, timeout=300, cwd=cwd)


def test_cli_errors_are_one_line_with_the_fix(model_dir, tmp_path):
    table = tmp_path / "rows.parquet"
    datasets.Dataset.from_list(_captions(2)).to_parquet(table)
    renamed = tmp_path / "renamed.parquet"
    datasets.Dataset.from_list([{"URL": r["image"], "TEXT": r["text"]} for r in _captions(2)]).to_parquet(renamed)
    out = str(tmp_path / "o.parquet")
    cases = {
        "missing input": (["score", str(tmp_path / "nope.parquet"), "--output", out, "--model", str(model_dir)],
                          "no such file"),
        "bad model path": (["score", str(table), "--output", out, "--model", str(tmp_path / "no-model")],
                           "--model"),
        "wrong columns": (["score", str(renamed), "--output", out, "--model", str(model_dir)], "--columns"),
        "batch size 0": (["score", str(table), "--output", out, "--batch-size", "0"], "at least 1"),
        "bad output": (["score", str(table), "--output", str(tmp_path / "o.txt"), "--model", str(model_dir)],
                       ".parquet, .jsonl or .csv"),
    }
    for name, (args, fix) in cases.items():
        run = _cli(*args)
        assert run.returncode == 2, (name, run.stderr)
        lines = [line for line in run.stderr.splitlines()
                 if line.strip() and not line.startswith("usage:") and "/s]" not in line]  # progress bars
        assert len(lines) == 1 and fix in lines[0] and "Traceback" not in run.stderr, (name, run.stderr)
    debug = _cli(*cases["missing input"][0], "--debug")
    assert "Traceback" in debug.stderr


def test_cli_options_jsonl_output_shards_folder_columns_keep_errors(model_dir, tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    rows = [{"URL": r["image"], "TEXT": r["text"]} for r in _captions(4)]
    rows.append({"URL": image_dict(b"broken"), "TEXT": "A broken image."})
    datasets.Dataset.from_list(rows[:3]).to_parquet(shards / "part-0.parquet")
    datasets.Dataset.from_list(rows[3:]).to_parquet(shards / "part-1.parquet")
    out = tmp_path / "kept.jsonl"
    run = _cli("score", str(shards), "--model", str(model_dir), "--output", str(out), "--columns",
               "image=URL,text=TEXT", "--threshold", "100", "--keep-errors", "--device", "cpu")
    assert run.returncode == 0, run.stderr
    kept = [json.loads(line) for line in out.read_text().splitlines()]  # JSON lines, not Parquet
    assert [r["TEXT"] for r in kept] == ["A broken image."]  # nothing reaches 100; the error row is kept
    hub = _cli("score", "someone/some-dataset", "--model", str(model_dir), "--output", str(out))
    assert hub.returncode == 2 and "Hub dataset" in hub.stderr and "Traceback" not in hub.stderr


# -- 7. settings are never silently ignored --------------------------------------------------------------------
def test_settings_are_honoured_or_refused(default_model, count_scored):
    pipe = pipeline(TASK, device="cpu")
    row = _captions(1)[0]
    for bad in ({"treshold": 2.0}, {"top_k": 3}):
        with pytest.raises(TypeError, match="unknown parameter"):
            pipe(row, **bad)
    assert pipe([]) == []
    ds = datasets.Dataset.from_list(_captions(3))
    from_dataset = list(pipe(ds))
    assert [r["score"] for r in from_dataset] == pytest.approx([r["score"] for r in pipe(list(ds))], abs=1e-6)

    low = ds.filter(unifilter_keep, fn_kwargs={"threshold": -100.0}, batched=True)
    high = ds.filter(unifilter_keep, fn_kwargs={"threshold": 100.0})
    assert (len(low), len(high)) == (3, 0)
    with pytest.raises(TypeError, match="unknown UniFilter setting"):
        ds.filter(unifilter_keep, fn_kwargs={"treshold": 1.0}, batched=True)
    # settings that change how rows are read reach the scorer too, not only the threshold
    lost_all = datasets.Dataset.from_list([{"texts": ["Intro.", None], "images": [None, "no/such/file.jpg"]}])
    strict = lost_all.map(unifilter_score, batched=True)["unifilter_error"][0]
    lenient = lost_all.map(unifilter_score, fn_kwargs={"on_image_error": "score_rest"}, batched=True)
    assert strict.startswith("document: all images failed") and lenient["unifilter_error"][0] == ""
    assert lenient["unifilter_images_dropped"][0] == 1

    before = sum(count_scored)
    for batched in (True, False):
        with pytest.raises(SchemaError, match=r"\['URL'\] are not in the dataset"):
            ds.map(unifilter_score(columns={"image": "URL", "text": "text"}), batched=batched)
    assert sum(count_scored) == before  # refused before any row was read


# -- 8. the default model offline ------------------------------------------------------------------------------
def test_default_model_offline_names_the_model_and_the_fix(monkeypatch):
    monkeypatch.delenv("UNIFILTER_MODEL", raising=False)
    with pytest.raises(OSError, match=r"UniFilter-Qwen2\.5-1\.5B.*UNIFILTER_MODEL"):
        pipeline(TASK)
    with pytest.raises(OSError, match=r"UniFilter-Qwen2\.5-1\.5B.*UNIFILTER_MODEL"):
        datasets.Dataset.from_list(_captions(1)).map(unifilter_score)


# -- 10. image URLs of a batch are fetched concurrently --------------------------------------------------------
def test_image_urls_of_a_batch_are_fetched_concurrently(default_model, slow_server):
    rows = [{"image": f"{slow_server}/coffee.jpg", "text": f"A cup of coffee {i}."} for i in range(8)]
    scored = datasets.Dataset.from_list(rows).map(unifilter_score, batched=True, batch_size=8)
    assert all(e == "" for e in scored["unifilter_error"])
    assert _SlowImages.max_inflight >= 4  # one at a time before


# -- 11. the builder's joint config reads captions as captions -------------------------------------------------
def test_joint_config_caption_scores_equal_the_caption_config(default_model):
    from unifilter_hf.datasets_builder import build_synthetic

    captions = build_synthetic("caption", source="bundled")["train"].select(range(8))
    joint = build_synthetic("joint", source="bundled")["train"]
    joint = joint.filter(lambda kind, id: kind == "caption" and id in set(captions["id"]),
                         input_columns=["kind", "id"])
    by_id = dict(zip(captions["id"], undecode_images(captions).map(unifilter_score, batched=True)["unifilter_score"]))
    joint_scores = undecode_images(joint).map(unifilter_score, batched=True)
    assert len(joint_scores) == 8
    for row_id, score in zip(joint_scores["id"], joint_scores["unifilter_score"]):
        assert score == pytest.approx(by_id[row_id], abs=1e-6)


# -- 12. smaller: fingerprints and log noise -------------------------------------------------------------------
def test_batch_size_and_threshold_do_not_recompute_the_map(model_dir, tmp_path, count_scored, caplog):
    datasets.Dataset.from_list(_captions(4)).to_parquet(tmp_path / "rows.parquet")
    ds = datasets.Dataset.from_parquet(str(tmp_path / "rows.parquet"), cache_dir=str(tmp_path / "cache"))
    first = ds.map(unifilter_score(model=str(model_dir)), batched=True)
    n = sum(count_scored)
    for options in ({"batch_size": 2}, {"threshold": 0.5}):
        again = ds.map(unifilter_score(model=str(model_dir), **options), batched=True)
        assert again._fingerprint == first._fingerprint and sum(count_scored) == n, options

    bad = datasets.Dataset.from_list([{"image": image_dict(b"junk"), "text": f"bad {i}"} for i in range(5)])
    with caplog.at_level(logging.WARNING, logger="unifilter_hf"):
        assert len(bad.filter(unifilter_keep(model=str(model_dir)))) == 0
    assert sum("could not be scored" in r.getMessage() for r in caplog.records) == 1


def test_convert_refuses_a_non_empty_destination_and_saves_a_runnable_pipeline(tmp_path):
    from tests.test_convert_official import FIXTURE, copy_tree

    src = copy_tree(FIXTURE / "checkpoint", tmp_path / "official")
    dst = tmp_path / "native"
    dst.mkdir()
    (dst / "notes.txt").write_text("mine")
    run = _cli("convert", str(src), str(dst))
    assert run.returncode == 2 and "--overwrite" in run.stderr and (dst / "notes.txt").read_text() == "mine"
    assert _cli("convert", str(src), str(dst), "--overwrite").returncode == 0
    card = (dst / "README.md").read_text()
    assert "image-text-to-text" not in card and "multimodal-quality-scoring" in card
    assert json.loads((dst / "config.json").read_text())["custom_pipelines"][TASK]
    photo("coffee").save(tmp_path / "coffee.png")
    script = textwrap.dedent(f"""
        import json, sys
        sys.modules["unifilter_hf"] = None  # as if not installed
        from transformers import pipeline
        pipe = pipeline({TASK!r}, model={str(dst)!r}, trust_remote_code=True, device="cpu")
        print(json.dumps(pipe({{"image": {str(tmp_path / "coffee.png")!r}, "text": "A cup."}})))
    """)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "home"))
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert math.isfinite(json.loads(run.stdout.strip().splitlines()[-1])["score"])
