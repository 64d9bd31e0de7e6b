"""The OpenAI-compatible HTTP backend against a local chat-completions server with canned replies.

The server (127.0.0.1, started here) picks its behaviour from a ``scenario:<name>`` tag in the request text
and counts requests per scenario, so retries, timeouts, the cache and parsing are checked by exact counts.
"""

import base64
import io
import json
import re
import threading
import time
from collections import Counter
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from tests.kit import photo
from unifilter_hf.synthesis import OpenAIChatBackend, SourceItem, synthesize
from unifilter_hf.synthesis.backends.openai_http import parse_retry_after


def good_reply(tag: str) -> str:
    return json.dumps({"0": f"a bus in the rain ({tag})", "1": f"two dogs on grass ({tag})",
                       "2": f"a cat with blue eyes ({tag})", "3": f"a cat with green eyes ({tag})"})


class FakeChatServer:
    def __init__(self):
        self.counts = Counter()
        self.lock = threading.Lock()
        self.inflight = 0
        self.max_inflight = 0
        self.image_sizes = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                assert self.path == "/v1/chat/completions" and body["model"] == "fake-vlm"
                owner.handle(self, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda *a: None  # a client that timed out closes the socket: expected
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.server.server_port}/v1"

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def handle(self, h, body):
        texts = []
        images = []
        for msg in body["messages"]:
            content = msg["content"]
            if isinstance(content, str):
                texts.append(content)
                continue
            for part in content:
                if part["type"] == "text":
                    texts.append(part["text"])
                else:
                    images.append(part["image_url"]["url"])
        scenario = re.search(r"scenario:(\w+)", "\n".join(texts)).group(1)
        with self.lock:
            self.counts[scenario] += 1
            n = self.counts[scenario]
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            self.respond(h, scenario, n, images)
        finally:
            with self.lock:
                self.inflight -= 1

    def respond(self, h, scenario, n, images):
        content = good_reply(scenario)
        if scenario == "malformed_then_ok" and n == 1:
            content = "Sure! Here are your captions: " + content
        elif scenario == "always_malformed":
            content = '{"0": "a dog", "1": "a cat"'
        elif scenario == "missing_level":
            content = json.dumps({k: v for k, v in json.loads(content).items() if k != "2"})
        elif scenario == "slow_then_ok" and n == 1:
            time.sleep(1.5)
        elif scenario == "concurrent":
            time.sleep(0.3)
        elif scenario in ("429_then_ok", "500_then_ok", "always_500", "bad_request", "bad_body"):
            if scenario == "429_then_ok" and n == 1:
                return self.send(h, 429, {"error": "rate limited"}, {"Retry-After": "2"})
            if scenario == "500_then_ok" and n == 1 or scenario == "always_500":
                return self.send(h, 500, {"error": "boom"})
            if scenario == "bad_request":
                return self.send(h, 400, {"error": "bad request"})
            if scenario == "bad_body" and n == 1:
                return self.send_raw(h, 200, b"<html>gateway hiccup</html>")
        elif scenario == "vision":
            for url in images:
                head, data = url.split(",", 1)
                assert head == "data:image/jpeg;base64"
                self.image_sizes.append(Image.open(io.BytesIO(base64.b64decode(data))).size)
            if not images:
                return self.send(h, 400, {"error": "no image"})
        self.send(h, 200, {"id": "x", "object": "chat.completion",
                           "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                        "finish_reason": "stop"}]})

    def send(self, h, status, payload, headers=None):
        self.send_raw(h, status, json.dumps(payload).encode(), headers)

    @staticmethod
    def send_raw(h, status, data, headers=None):
        try:
            h.send_response(status)
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        except OSError:  # the client gave up (timeout test)
            pass


@pytest.fixture
def server():
    srv = FakeChatServer()
    yield srv
    srv.close()


def make_backend(server, tmp_path, sleeps=None, **kw):
    opts = dict(mode="rewrite", concurrency=4, timeout=0.5, max_retries=2, backoff_base=0.01, backoff_max=0.05,
                max_attempts=2, cache_dir=tmp_path / "cache")
    opts.update(kw)
    return OpenAIChatBackend(server.base_url, "fake-vlm", api_key="test-key",
                             sleep=(sleeps.append if sleeps is not None else (lambda s: None)), **opts)


def item(scenario, kind="caption"):
    return SourceItem(f"t/{scenario}", kind, [photo("coffee", size=64)],
                      reference=f"A red cup on a saucer. scenario:{scenario}")


def test_good_reply_is_parsed_with_provenance(server, tmp_path):
    [res] = make_backend(server, tmp_path).generate([item("ok")])
    assert res.ok and res.attempts == 1
    assert res.outputs[3].text == "a cat with green eyes (ok)"
    prov = res.provenance
    assert (prov.generator, prov.model, prov.prompt_version, prov.seed) == ("openai-http", "fake-vlm",
                                                                             "uf-synth-v1", 0)
    assert prov.extra == {"mode": "rewrite"}
    assert server.counts == {"ok": 1}


def test_malformed_reply_is_asked_again(server, tmp_path):
    [res] = make_backend(server, tmp_path).generate([item("malformed_then_ok")])
    assert res.ok and res.attempts == 2
    assert server.counts["malformed_then_ok"] == 2


def test_malformed_and_missing_levels_are_reported_never_written(server, tmp_path):
    backend = make_backend(server, tmp_path)
    out = tmp_path / "synth"
    report = synthesize([item("always_malformed"), item("missing_level"), item("ok")], backend, out)
    assert (report.generated, report.failed) == (1, 2)
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert {r["group_id"] for r in records} == {"t/ok"} and len(records) == 4
    assert all(r["provenance"]["generator"] == "openai-http" for r in records)
    errors = {e["group_id"]: e for e in map(json.loads, (out / "errors.jsonl").read_text().splitlines())}
    assert "not a JSON object" in errors["t/always_malformed"]["error"]
    assert "missing level(s) 2" in errors["t/missing_level"]["error"]
    assert errors["t/missing_level"]["attempts"] == 2
    # each malformed source was asked exactly max_attempts times, and nothing malformed was cached
    assert server.counts == {"always_malformed": 2, "missing_level": 2, "ok": 1}
    assert len(backend.cache) == 1


def test_transient_errors_are_retried_with_backoff_and_retry_after(server, tmp_path):
    sleeps = []
    backend = make_backend(server, tmp_path, sleeps=sleeps)
    names = ["500_then_ok", "429_then_ok", "slow_then_ok", "bad_body", "always_500", "bad_request"]
    start = time.monotonic()
    results = {r.item.id.split("/")[1]: r for r in backend.generate([item(n) for n in names])}
    assert time.monotonic() - start < 5
    for name in ("500_then_ok", "429_then_ok", "slow_then_ok", "bad_body"):
        assert results[name].ok, (name, results[name].error)
        assert server.counts[name] == 2, name
    assert 2.0 in sleeps  # Retry-After: 2 was honoured
    assert all(s <= 0.05 for s in sleeps if s != 2.0)  # the rest is capped exponential backoff
    assert not results["always_500"].ok and "gave up after 3 tries" in results["always_500"].error
    assert server.counts["always_500"] == 3  # max_retries=2 -> 3 tries, then reported
    assert not results["bad_request"].ok and "HTTP 400" in results["bad_request"].error
    assert server.counts["bad_request"] == 1  # a client error is not retried
    assert backend.stats["retries"] == 4 + 2


def test_cache_means_a_rerun_does_not_pay_twice(server, tmp_path):
    items = [item("ok"), item("malformed_then_ok")]
    first = make_backend(server, tmp_path).generate(items)
    assert all(r.ok for r in first)
    before = dict(server.counts)
    again = make_backend(server, tmp_path)
    second = again.generate(items)
    assert server.counts == before  # no new request at all
    assert again.stats == {"requests": 0, "cache_hits": 2, "retries": 0}
    assert [r.outputs[2].text for r in second] == [r.outputs[2].text for r in first]
    # a different sampling parameter is a different request
    make_backend(server, tmp_path, temperature=0.1).generate([item("ok")])
    assert server.counts["ok"] == before["ok"] + 1


def test_requests_run_concurrently(server, tmp_path):
    items = [SourceItem(f"t/c{i}", "caption", [photo("coffee", 16)], reference=f"cup {i} scenario:concurrent")
             for i in range(6)]
    start = time.monotonic()
    results = make_backend(server, tmp_path, concurrency=3, timeout=5).generate(items)
    elapsed = time.monotonic() - start
    assert all(r.ok for r in results)
    assert server.max_inflight == 3
    assert elapsed < 6 * 0.3  # faster than one at a time


def test_vision_mode_sends_images_as_capped_jpeg_data_uris(server, tmp_path):
    big = SourceItem("t/vision", "caption", [photo("astronaut")], reference="scenario:vision")
    [res] = make_backend(server, tmp_path, mode="vision", image_max_side=128).generate([big])
    assert res.ok, res.error
    assert server.image_sizes == [(128, 128)]
    doc = SourceItem("t/visiondoc", "document", [photo("coffee", 64), photo("rocket", 64)],
                     reference=["Coffee first. scenario:vision", None, "Then a rocket.", None])
    [res] = make_backend(server, tmp_path, mode="vision").generate([doc])
    # the canned caption reply has no image markers: a document reply must be rejected, not written
    assert not res.ok and "no image marker" in res.error
    assert len(server.image_sizes) == 1 + 2 * 2  # two attempts, two images each


def test_retry_after_header_forms():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    future = formatdate(time.time() + 30, usegmt=True)
    assert 25 <= parse_retry_after(future) <= 31
