"""Test kit: real photographs from installed packages, a tiny offline tokenizer, tiny model configs.

Nothing here touches the network: the photographs ship inside scikit-image and scikit-learn wheels, and the
tokenizer is trained in memory on a small corpus.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import numpy as np
from PIL import Image

# name -> loader of an RGB uint8 array; all real photographs shipped in PyPI wheels.
_SKIMAGE_RGB = ["astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field"]
_SKIMAGE_GRAY = ["camera", "coins", "moon", "page", "horse", "clock", "brick", "grass", "gravel", "cell"]


@functools.cache
def _photo_array(name: str) -> np.ndarray:
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    from skimage import data

    return getattr(data, name)()


def photo(name: str, size: int | None = None) -> Image.Image:
    """A real photograph as a PIL image (RGB for color photos, "L" for grayscale ones).

    ``size`` downsizes the longer side (keeps tests fast when pixels do not matter).
    """
    img = Image.fromarray(_photo_array(name))
    if size is not None:
        img.thumbnail((size, size))
    return img


PHOTO_NAMES = ["astronaut", "chelsea", "coffee", "rocket", "china", "flower"]


from unifilter_hf.tiny import (  # noqa: E402,F401  (re-exported for tests)
    IMAGE_SIZE,
    NUM_IMAGE_TOKENS,
    tiny_config,
    tiny_model_and_processor,
    tiny_processor,
    tiny_tokenizer,
)

TASK = "multimodal-quality-scoring"


def caption_rows(n: int = 4) -> list[dict]:
    """``n`` caption rows of real JPEG photographs (``datasets`` Image dicts) and short captions."""
    from tests.badrows import image_dict, jpeg  # badrows imports this module

    names = ["coffee", "rocket", "flower", "chelsea", "china", "astronaut"]
    return [{"image": image_dict(jpeg(names[i % 6])), "text": f"A photograph, number {i}."} for i in range(n)]


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    """``unifilter-hf ARGS`` in a fresh offline process, as a user runs it."""
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "unifilter_hf.cli", *args], capture_output=True, text=True,
                          env=env, timeout=300, cwd=cwd)


class SlowImages(http.server.SimpleHTTPRequestHandler):
    """Serves a folder with a ``delay`` per request and counts the requests in flight at once."""

    delay, inflight, max_inflight, lock = 0.3, 0, 0, threading.Lock()

    def do_GET(self):  # noqa: N802 - http.server's name
        cls = type(self)
        with cls.lock:
            cls.inflight += 1
            cls.max_inflight = max(cls.max_inflight, cls.inflight)
        time.sleep(self.delay)  # the server is slow, not the test: concurrency is counted, not timed
        with cls.lock:
            cls.inflight -= 1
        return super().do_GET()

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def slow_image_server(directory, handler: type[SlowImages] = SlowImages) -> Iterator[str]:
    """A local HTTP server on 127.0.0.1 over ``directory`` (proxies unset by the caller); yields its base URL."""
    handler.max_inflight = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
