"""On-disk cache of accepted generator replies, so a rerun does not pay for the same request twice.

The key is a SHA-256 of the canonical JSON of everything that determines a reply: model, messages (images
included as their encoded bytes) and sampling parameters. Only replies that parsed are stored: a malformed
reply is asked again, not replayed. Writes are atomic (temp file + rename), so concurrent workers and an
interrupted run never leave a half-written entry.

Example:
    >>> import tempfile
    >>> cache = ReplyCache(tempfile.mkdtemp())
    >>> key = cache.key({"model": "m", "messages": [], "params": {}})
    >>> cache.get(key) is None
    True
    >>> cache.put(key, '{"0": "..."}'); cache.get(key)
    '{"0": "..."}'
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


class ReplyCache:
    """A folder of ``<key[:2]>/<key>.json`` entries holding ``{"reply": ...}``."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(request: dict[str, Any]) -> str:
        blob = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        try:
            with open(self._path(key), encoding="utf-8") as fh:
                return json.load(fh)["reply"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return None

    def put(self, key: str, reply: str, **meta: Any) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"reply": reply, **meta}, fh, ensure_ascii=False)
        os.replace(tmp, path)

    def __len__(self) -> int:
        return sum(1 for _ in self.directory.glob("*/*.json"))
