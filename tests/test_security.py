"""Untrusted data stays data (issue 25): each test is an attack a row, a recipe or an output folder makes.

Network rule: every server here listens on 127.0.0.1, and a guard (autouse) fails any test that tries to
connect anywhere else, so "refused before connecting" is checked by the address check, never by a real
connection to a private or public address.
"""

from __future__ import annotations

import http.server
import io
import json
import os
import socket
import threading
import time
import tracemalloc
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from tests import badrows
from unifilter_hf import safe_fetch
from unifilter_hf.curation.manifest import Layout, check_or_write_manifest
from unifilter_hf.image_loading import load_image
from unifilter_hf.row_layouts import DEFAULT_MAX_IMAGES, to_sample, try_to_sample
from unifilter_hf.sample import SampleError

REFUSED_PATH = "image: local path outside the data folder refused (see allow_local_files)"
REFUSED_URL = "image: URL refused (resolves to a private or local address; see allow_private_urls)"
LOOPBACK = "127.0.0.0/8"


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch):
    """No test here may open a connection to anything but loopback, and no environment opt-in leaks in."""
    real_connect = socket.socket.connect

    def guarded(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        assert host in ("127.0.0.1", "::1", "localhost"), f"test tried to connect to {address!r}"
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    for name in ("UNIFILTER_ALLOW_PRIVATE_URLS", "UNIFILTER_ALLOW_LOCAL_FILES", "http_proxy", "HTTP_PROXY",
                 "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def reason(obj, **kwargs) -> str:
    with pytest.raises(SampleError) as info:
        load_image(obj, **kwargs)
    return info.value.reason


class _Server:
    """A loopback HTTP server whose handler is a function of the request; counts the requests it saw."""

    def __init__(self, respond):
        outer = self
        self.requests: list[tuple[str, str]] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                outer.requests.append((self.path, self.headers.get("Host", "")))
                respond(self)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _send(handler, body: bytes, status: int = 200, headers: dict | None = None):
    handler.send_response(status)
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@pytest.fixture
def photo_server():
    server = _Server(lambda h: _send(h, badrows.jpeg("chelsea")))
    yield server
    server.close()


# ---------------------------------------------------------------------------------------- local files


def test_row_naming_a_file_outside_its_root_is_refused_and_existence_never_told(tmp_path):
    data, secret = tmp_path / "data", tmp_path / "private"
    (data / "images").mkdir(parents=True)
    secret.mkdir()
    (data / "images" / "ok.png").write_bytes(badrows.png("rocket"))
    (secret / "holiday.png").write_bytes(badrows.png("astronaut"))
    (data / "images" / "link.png").symlink_to(secret / "holiday.png")
    for name in ("holiday.png", "does-not-exist.png"):  # the same answer whether the file exists or not
        attacks = [str(secret / name), f"../private/{name}", f"images/../../private/{name}",
                   (secret / name).as_uri(), f"~/{name}", {"bytes": None, "path": str(secret / name)}]
        for attack in attacks:
            assert try_to_sample({"image": attack, "text": "A photo."}, image_root=data) == (None, REFUSED_PATH)
    assert try_to_sample({"image": "images/link.png", "text": "x"}, image_root=data) == (None, REFUSED_PATH)
    # what the data folder holds still loads, by a relative path or an absolute one inside it
    for inside in ("images/ok.png", str(data / "images" / "ok.png")):
        sample, why = try_to_sample({"image": inside, "text": "A rocket."}, image_root=data)
        assert why is None and sample.images[0].size == (96, 64)
    # the explicit opt-in names what else may be read
    sample, why = try_to_sample({"image": str(secret / "holiday.png"), "text": "x"}, image_root=data,
                                allow_local_files=[str(secret)])
    assert why is None and sample.images[0].size == (96, 96)


def test_rows_without_a_root_are_confined_to_the_working_folder(tmp_path, monkeypatch):
    (tmp_path / "outside.png").write_bytes(badrows.png("rocket"))
    work = tmp_path / "work"
    work.mkdir()
    (work / "here.png").write_bytes(badrows.png("rocket"))
    monkeypatch.chdir(work)
    assert try_to_sample({"image": str(tmp_path / "outside.png"), "text": "x"}) == (None, REFUSED_PATH)
    assert try_to_sample({"image": "here.png", "text": "x"})[1] is None
    # the caller's own argument (no root) is trusted: load_image and the pipeline read it as given
    assert load_image(str(tmp_path / "outside.png")).size == (96, 64)


def test_devices_and_fifos_are_refused_without_reading_or_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    outcome = {}

    def attempt():
        outcome["fifo"] = try_to_sample({"image": "pipe.png", "text": "x"}, image_root=tmp_path)[1]
        outcome["zero"] = try_to_sample({"image": "/dev/zero", "text": "x"}, allow_local_files=True)[1]

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "reading a FIFO or /dev/zero blocked"
    assert outcome["fifo"].endswith("(not a regular file)") and outcome["zero"].endswith("(not a regular file)")


# ---------------------------------------------------------------------------------------- URLs


def test_row_urls_to_internal_addresses_reach_no_server_by_default(photo_server):
    port = photo_server.port
    attacks = [f"http://127.0.0.1:{port}/x.jpg", f"http://localhost:{port}/x.jpg", f"http://2130706433:{port}/x",
               f"http://0x7f.0.0.1:{port}/x", f"http://[::1]:{port}/x", f"http://[::ffff:127.0.0.1]:{port}/x",
               f"http://0.0.0.0:{port}/x"]
    for attack in attacks:
        assert try_to_sample({"image": attack, "text": "x"}) == (None, REFUSED_URL), attack
        assert reason(attack) == REFUSED_URL  # a direct call's URL goes through the same check
    assert photo_server.requests == []
    # the explicit opt-in names the network it allows
    assert load_image(f"{photo_server.url}/cat.jpg", allow_private_urls=LOOPBACK).size == (96, 64)
    assert len(photo_server.requests) == 1


def test_redirects_to_private_addresses_and_other_schemes_are_refused_before_connecting(monkeypatch):
    targets = {"/meta": "http://169.254.169.254/latest/meta-data/", "/lan": "http://10.0.0.7/admin",
               "/ftp": "ftp://127.0.0.1/banner", "/file": "file:///etc/passwd"}
    server = _Server(lambda h: _send(h, b"", 302, {"Location": targets[h.path]}))
    connected = []
    real_connect = safe_fetch._connect
    monkeypatch.setattr(safe_fetch, "_connect", lambda address, timeout: connected.append(address[1][0])
                        or real_connect(address, timeout))
    try:
        assert reason(f"{server.url}/meta", allow_private_urls=LOOPBACK) == REFUSED_URL
        assert reason(f"{server.url}/lan", allow_private_urls=LOOPBACK) == REFUSED_URL
        assert reason(f"{server.url}/ftp", allow_private_urls=LOOPBACK).startswith("image: bad URL (scheme 'ftp'")
        assert reason(f"{server.url}/file", allow_private_urls=LOOPBACK).startswith("image: bad URL (scheme 'file'")
    finally:
        server.close()
    assert connected == ["127.0.0.1"] * 4  # only the first hop of each: the refused hops never connect


def test_the_checked_address_is_the_one_connected_to(monkeypatch, photo_server):
    """DNS rebinding: a name that answers loopback first and an internal address after cannot swap it."""
    answers = iter(["127.0.0.1", "10.0.0.9", "10.0.0.9"])
    calls = []

    def resolver(host, port, *args, **kwargs):
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    image = load_image(f"http://images.rebind.test:{photo_server.port}/cat.jpg", allow_private_urls=LOOPBACK)
    assert image.size == (96, 64)
    assert calls == ["images.rebind.test"]  # resolved once, then that address was used
    assert photo_server.requests == [("/cat.jpg", f"images.rebind.test:{photo_server.port}")]


def _trickle(handler):
    """Send its status line and headers one byte at a time, 0.1 s apart: each read is fast, the whole is not."""
    for byte in b"HTTP/1.1 200 OK\r\nX-Padding: " + b"a" * 200 + b"\r\n\r\n":
        try:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
        except OSError:
            return
        time.sleep(0.1)


def test_a_server_that_trickles_headers_hits_the_total_deadline():
    server = _Server(_trickle)
    try:
        start = time.monotonic()
        why = reason(f"{server.url}/slow.jpg", timeout=1.0, allow_private_urls=LOOPBACK)
        elapsed = time.monotonic() - start
    finally:
        server.close()
    assert why == "image: URL fetch timed out after 1s"
    assert elapsed < 2.5  # the trickle would take 20 s


def test_reasons_never_carry_server_text():
    with socket.socket() as listener:  # a non-HTTP service on loopback: an FTP-style banner, then close
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def banner():
            conn, _ = listener.accept()
            conn.sendall(b"220 internal-ftp.corp SECRET-VERSION 1.2 ready\r\n")
            conn.close()

        threading.Thread(target=banner, daemon=True).start()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/x.jpg"
        why = reason(url, timeout=5, allow_private_urls=LOOPBACK)
    assert why == "image: URL unreachable (not an HTTP response)"


def test_urls_with_spaces_and_non_ascii_are_fetched_percent_encoded():
    server = _Server(lambda h: _send(h, badrows.jpeg("chelsea")) if h.path == "/my%20photos/caf%C3%A9.jpg?q=%C3%A9"
                     else _send(h, b"", 404))
    try:
        image = load_image(f"{server.url}/my photos/café.jpg?q=é", allow_private_urls=LOOPBACK)
        assert image.size == (96, 64)
        assert reason(f"{server.url}/missing.jpg", allow_private_urls=LOOPBACK) == "image: URL fetch failed (HTTP 404)"
    finally:
        server.close()
    assert safe_fetch.encode_url("http://bücher.example/ä b") == "http://xn--bcher-kva.example/%C3%A4%20b"
    assert reason("http:///no-host.jpg").startswith("image: bad URL")


def test_the_report_reading_never_fetches_a_url_again(photo_server):
    row = {"image": f"{photo_server.url}/cat.jpg", "text": "A cat."}
    sample, why = try_to_sample(row, allow_private_urls=LOOPBACK, fetch_urls=False)
    assert sample is None and "not fetched again" in why
    assert photo_server.requests == []


# ---------------------------------------------------------------------------------------- memory budgets


def _saved(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def test_small_float_tiff_and_16_bit_png_over_the_decoded_byte_budget_are_refused_before_decoding():
    float_tiff = _saved(Image.new("F", (6000, 6000)), "TIFF", compression="tiff_adobe_deflate")
    gray16_png = _saved(Image.new("I;16", (8000, 8000)), "PNG")
    assert len(float_tiff) < 2_000_000 and len(gray16_png) < 2_000_000  # kilobytes that decode to gigabytes
    for data in (float_tiff, gray16_png):
        why = reason(data)
        assert why.startswith("image: decompression bomb") and "max_decoded_bytes" in why, why
    # the same picture in 8-bit RGB, which costs half as much to hold, is within budget
    assert load_image(_saved(Image.new("RGB", (6000, 6000)), "PNG")).size == (2048, 2048)


def test_16_bit_and_float_conversion_makes_no_full_size_float_copy():
    values = (np.arange(2000 * 2000, dtype=np.uint32).reshape(2000, 2000) % 65536).astype(np.uint16)
    gray16 = _saved(Image.fromarray(values), "PNG")
    floats = _saved(Image.fromarray(values.astype(np.float32) / 65535.0), "TIFF")
    for data in (gray16, floats):
        tracemalloc.start()
        image = load_image(data, max_side=None)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert image.size == (2000, 2000)
        assert peak < 3 * 2000 * 2000, f"{peak / 2**20:.0f} MiB of numpy copies for a 4 Mpx image"


def test_ten_thousand_tiny_image_slots_are_not_all_decoded():
    tiny = badrows.png("rocket", 4)
    row = {"texts": ["A gallery."] + [None] * 10_000, "images": [None] + [tiny] * 10_000}
    sample = to_sample(row)
    assert sample.num_images == DEFAULT_MAX_IMAGES == 64
    assert sum("over max_images=64" in d for d in sample.meta["dropped"]) == 10_000 - 64


def test_a_huge_image_is_shrunk_as_soon_as_it_is_loaded():
    big = _saved(Image.new("RGB", (8192, 4096), "white"), "PNG")
    assert load_image(big).size == (2048, 1024)


def test_a_5_mib_caption_is_cut_before_it_is_tokenized(tiny):
    _, processor = tiny
    seen = []
    tokenizer = processor.tokenizer
    real_call = type(tokenizer).__call__

    def spy(self, text, *args, **kwargs):
        seen.append(max(len(t) for t in text) if isinstance(text, list) else len(text))
        return real_call(self, text, *args, **kwargs)

    caption = "A long caption about a rocket launch. " * (5 * 2**20 // 38)
    limit = 16 * processor.max_length
    type(tokenizer).__call__ = spy
    try:
        long_ids = processor(images=[badrows_photo()], text=[caption])["input_ids"]
        cut_ids = processor(images=[badrows_photo()], text=[caption[:limit]])["input_ids"]
    finally:
        type(tokenizer).__call__ = real_call
    assert max(seen) <= limit < len(caption)
    assert long_ids.tolist() == cut_ids.tolist()  # the model sees the same tokens


def badrows_photo() -> Image.Image:
    return Image.open(io.BytesIO(badrows.jpeg("rocket")))


# ---------------------------------------------------------------------------------------- one bad row


def test_a_lone_surrogate_is_the_row_error_not_the_job(model_dir):
    from transformers import pipeline

    good = badrows.image_dict(badrows.jpeg("rocket"))
    rows = [{"image": good, "text": json.loads('"A rocket \\ud800 launch."')},
            {"texts": ["Intro.", json.loads('"\\udfff"')], "images": [None, None]},
            {"image": good, "text": "A rocket."}]
    assert [try_to_sample(r)[1] for r in rows] == [
        "caption: text is not valid Unicode (lone surrogate)", "text 1: text is not valid Unicode (lone surrogate)",
        None]
    results = pipeline("multimodal-quality-scoring", model=str(model_dir), device="cpu")(rows)
    assert [r["error"] is None for r in results] == [False, False, True]


def test_a_deeply_nested_json_value_is_the_row_error():
    deep = "[" * 100_000 + "]" * 100_000
    row = {"jpg": badrows.jpeg("rocket"), "json": deep}
    assert try_to_sample(row) == (None, "caption: json column nested too deeply")


# ---------------------------------------------------------------------------------------- outputs, plots, recipes


def test_overwrite_refuses_a_folder_that_holds_no_job(tmp_path):
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "thesis.tex").write_text("\\documentclass{article}")
    (folder / "manifest.json").write_text('{"name": "someone else\'s manifest"}')
    manifest = {"manifest_version": 1, "model_fingerprint": "abc", "source": {}, "scoring": {}, "shards": []}
    from unifilter_hf.curation.settings import CurationError

    with pytest.raises(CurationError, match="--overwrite refused"):
        check_or_write_manifest(Layout(folder), manifest, overwrite=True)
    assert (folder / "thesis.tex").read_text() == "\\documentclass{article}"
    # a folder our job wrote is replaced
    job = tmp_path / "job"
    check_or_write_manifest(Layout(job), manifest, overwrite=False)
    (job / "old-sidecar.parquet").write_bytes(b"x")
    check_or_write_manifest(Layout(job), {**manifest, "model_fingerprint": "new"}, overwrite=True)
    assert not (job / "old-sidecar.parquet").exists()
    assert json.loads((job / "manifest.json").read_text())["model_fingerprint"] == "new"


def test_a_math_text_path_in_a_plot_label_is_drawn_as_written(tmp_path):
    from unifilter_hf.report.figures import errors_by_reason

    run = SimpleNamespace(summary={"errors_by_reason": {r"image: file not found: /data/$\foo{$.jpg": 3,
                                                        "image: truncated file": 1}})
    path = errors_by_reason(run, tmp_path / "errors.png")
    assert path is not None and Image.open(path).size[0] > 100


def test_a_recipe_may_set_only_documented_environment_variables(tmp_path, monkeypatch):
    from unifilter_hf.training.arguments import parse_train_args

    monkeypatch.delenv("LD_PRELOAD", raising=False)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("output_dir: out\nenv:\n  LD_PRELOAD: /tmp/evil.so\n  OMP_NUM_THREADS: '1'\n")
    with pytest.raises(ValueError, match="LD_PRELOAD may not be set by a recipe"):
        parse_train_args(["--config", str(recipe)])
    assert "LD_PRELOAD" not in os.environ



def test_hostile_lines_and_members_are_row_errors_in_score_and_curate(tmp_path, model_dir):
    # A JSONL line or a tar's json member nested 100,000 deep (RecursionError in json) and texts with lone
    # surrogates: each is its row's error in both jobs; the good rows around them are scored.
    import tarfile

    import pyarrow.parquet as pq

    from unifilter_hf.cli import main

    photo = badrows.image_dict(badrows.jpeg("rocket"))
    deep = "[" * 100_000 + "]" * 100_000
    lines = [json.dumps({"image": "rocket.jpg", "text": "A rocket."}), '{"image": "rocket.jpg", "text": ' + deep + "}",
             '{"image": "rocket.jpg", "text": "A \\ud800 rocket."}', json.dumps({"image": "rocket.jpg", "text": "Go."})]
    table = tmp_path / "table"
    table.mkdir()
    (table / "rocket.jpg").write_bytes(photo["bytes"])
    (table / "rows.jsonl").write_text("\n".join(lines) + "\n")
    shards = tmp_path / "shards"
    shards.mkdir()
    with tarfile.open(shards / "00000.tar", "w") as tar:
        for key, doc in (("a", b'{"caption": "A rocket."}'), ("b", deep.encode()), ("c", b'{"caption": "Go."}')):
            for ext, data in (("jpg", photo["bytes"]), ("json", doc)):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    expected = {"table": [False, True, True, False], "shards": [False, True, False]}
    for source, failed in expected.items():
        out = tmp_path / f"{source}.jsonl"
        assert main(["score", str(tmp_path / source), "--model", str(model_dir), "--output", str(out)]) == 0
        errors = [json.loads(line)["unifilter_error"] for line in out.read_text().splitlines()]
        assert [bool(e) for e in errors] == failed, errors
        assert any("nested too deeply" in e for e in errors)
        if source == "table":  # the row is written, its lone surrogate replaced (no format can store it)
            assert json.loads(out.read_text().splitlines()[2])["text"] == "A \ufffd rocket."
        job = tmp_path / f"{source}-job"
        assert main(["curate", str(tmp_path / source), "--model", str(model_dir), "--output", str(job),
                     "--quiet", "--no-report"]) == 0
        sidecars = [r for p in sorted((job / "scores").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
        assert [r["error"] or "" for r in sidecars] == errors
