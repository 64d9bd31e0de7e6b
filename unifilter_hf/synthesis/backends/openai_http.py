"""Generator backend for any OpenAI-compatible chat-completions server (vLLM, TGI, hosted APIs).

Standard library only (``urllib`` + ``concurrent.futures``). Images are sent as ``image_url`` parts with
base64 data URIs (JPEG, longest side capped). Each request has a timeout; 408/409/425/429/5xx answers,
timeouts and dropped connections are retried with exponential backoff and jitter, and a ``Retry-After``
header is honoured. Other HTTP errors (400, 401, 404, ...) fail that item at once. Accepted replies go to an
on-disk :class:`~.cache.ReplyCache`, so a rerun does not re-request them.

Example:
    >>> backend = OpenAIChatBackend("http://127.0.0.1:8000/v1", "Qwen/Qwen2.5-VL-7B-Instruct",
    ...                             cache_dir="out/.cache", concurrency=8)  # doctest: +SKIP
    >>> # results = backend.generate(items)
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import io
import json
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from ...errors import UniFilterError
from ..source_item import load_source_image
from .base import PromptedBackend
from .cache import ReplyCache

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class HTTPStatusError(UniFilterError, RuntimeError):
    """A non-retryable (or finally failed) HTTP answer."""

    def __init__(self, status: int, body: str):
        super().__init__(f"HTTP {status}: {body[:200]}")
        self.status = status


class _Retryable(UniFilterError):
    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or ``None``."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def image_data_uri(src: Any, max_side: int = 1024, quality: int = 90) -> str:
    """Encode an image source as a JPEG data URI, longest side at most ``max_side``."""
    image = load_source_image(src)
    if max(image.size) > max_side:
        image = image.copy()
        image.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class OpenAIChatBackend(PromptedBackend):
    """Four-level generation through ``POST {base_url}/chat/completions``.

    Args:
        base_url: server root including the API prefix, e.g. ``http://127.0.0.1:8000/v1``.
        model: model name sent in each request (and kept in provenance).
        api_key: bearer token; defaults to the ``OPENAI_API_KEY`` environment variable, if set.
        mode: ``"vision"`` (send the images) or ``"rewrite"`` (text only, needs reference texts).
        concurrency: parallel requests.
        timeout: seconds per request (connect and each read).
        max_retries: retries of one request after a transient failure (so ``max_retries + 1`` tries).
        backoff_base, backoff_max: exponential backoff ``base * 2**n`` seconds, capped, with jitter.
        max_attempts: requests per item when replies are malformed (see :class:`PromptedBackend`).
        cache_dir: folder of the reply cache; ``None`` disables caching.
        temperature, max_tokens, json_mode, extra_body: request parameters (``json_mode`` asks for
            ``response_format={"type": "json_object"}``; ``extra_body`` is merged into the request).
        sleep: the sleep function (tests pass a recorder).
    """

    name = "openai-http"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        mode: str = "vision",
        concurrency: int = 4,
        timeout: float = 120.0,
        max_retries: int = 5,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        max_attempts: int = 3,
        cache_dir: str | os.PathLike | None = None,
        temperature: float = 0.7,
        max_tokens: int = 2048,
        json_mode: bool = False,
        extra_body: dict[str, Any] | None = None,
        image_max_side: int = 1024,
        seed: int | None = 0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        super().__init__(mode=mode, max_attempts=max_attempts, seed=seed)
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.concurrency = max(1, int(concurrency))
        self.timeout = float(timeout)
        self.max_retries = max(0, int(max_retries))
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self.cache = ReplyCache(cache_dir) if cache_dir is not None else None
        self.params: dict[str, Any] = {"temperature": temperature, "max_tokens": max_tokens}
        if seed is not None:
            self.params["seed"] = seed
        if json_mode:
            self.params["response_format"] = {"type": "json_object"}
        self.params.update(extra_body or {})
        self.image_max_side = int(image_max_side)
        self._sleep = sleep
        self._jitter = random.Random(seed)
        self._lock = threading.Lock()
        self._keys: dict[int, str] = {}
        self.stats = {"requests": 0, "cache_hits": 0, "retries": 0}

    # ------------------------------------------------------------------------------------ wire format
    def to_openai(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Neutral messages -> OpenAI chat messages (images as data URIs, text-only content as a string)."""
        out = []
        for msg in messages:
            parts = []
            for part in msg["content"]:
                if part["type"] == "image":
                    url = image_data_uri(part["image"], self.image_max_side)
                    parts.append({"type": "image_url", "image_url": {"url": url}})
                else:
                    parts.append({"type": "text", "text": part["text"]})
            if all(p["type"] == "text" for p in parts):
                out.append({"role": msg["role"], "content": "\n\n".join(p["text"] for p in parts)})
            else:
                out.append({"role": msg["role"], "content": parts})
        return out

    def _body(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {"model": self.model, "messages": self.to_openai(messages), **self.params}

    # ------------------------------------------------------------------------------------------ calls
    def generate(self, items):
        try:
            return super().generate(items)
        finally:
            self._keys.clear()

    def complete(self, messages: list[list[dict[str, Any]]], attempt: int) -> list[str | BaseException]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda m: self._complete_one(m, attempt), messages))

    def _complete_one(self, messages: list[dict[str, Any]], attempt: int) -> str | BaseException:
        try:
            body = self._body(messages)
        except Exception as err:  # noqa: BLE001 - an unreadable image fails this item, not the run
            return err
        key = ReplyCache.key(body)
        with self._lock:
            self._keys[id(messages)] = key  # reused by accept(): no second image encoding
        if self.cache is not None and attempt == 0:
            cached = self.cache.get(key)
            if cached is not None:
                with self._lock:
                    self.stats["cache_hits"] += 1
                return cached
        try:
            return self._post_with_retries(body)
        except Exception as err:  # noqa: BLE001 - reported on the item
            return err

    def accept(self, messages: list[dict[str, Any]], reply: str) -> None:
        with self._lock:
            key = self._keys.pop(id(messages), None)
        if self.cache is not None:
            self.cache.put(key or ReplyCache.key(self._body(messages)), reply, model=self.model)

    def _post_with_retries(self, body: dict[str, Any]) -> str:
        payload = json.dumps(body).encode("utf-8")
        last: _Retryable | None = None
        for n in range(self.max_retries + 1):
            if n:
                self._sleep(self._delay(n - 1, last.retry_after if last else None))
                with self._lock:
                    self.stats["retries"] += 1
            try:
                return self._post(payload)
            except _Retryable as err:
                last = err
        raise RuntimeError(f"gave up after {self.max_retries + 1} tries: {last}")

    def _delay(self, n: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        cap = min(self.backoff_max, self.backoff_base * (2**n))
        with self._lock:
            return cap / 2 + self._jitter.uniform(0, cap / 2)

    def _post(self, payload: bytes) -> str:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.url, data=payload, headers=headers, method="POST")
        with self._lock:
            self.stats["requests"] += 1
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as err:
            text = err.read().decode("utf-8", "replace") if err.fp else ""
            if err.code in RETRY_STATUS:
                raise _Retryable(f"HTTP {err.code}", parse_retry_after(err.headers.get("Retry-After"))) from None
            raise HTTPStatusError(err.code, text) from None
        except (TimeoutError, urllib.error.URLError, http.client.HTTPException, ConnectionError) as err:
            raise _Retryable(f"{type(err).__name__}: {getattr(err, 'reason', err)}") from None
        return self._content(raw)

    @staticmethod
    def _content(raw: bytes) -> str:
        try:
            data = json.loads(raw)
            content = data["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise _Retryable("response is not a chat completion") from None
        if isinstance(content, list):  # some servers return content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if not isinstance(content, str):
            raise _Retryable("chat completion has no text content")
        return content
