"""Look at a report in a real headless Chromium: a screenshot, and what the browser loaded and rendered.

Used by the tests (do the figures and thumbnails render? does the page fetch anything from the network?) and
to make the screenshot in docs/. Chromium runs with no network features (``--disable-background-networking``
and friends) and a throw-away profile. Debian's ``chromium`` package provides the binary
(``apt-get install chromium``); ``$CHROMIUM`` points at another one.

Example:
    >>> shot = screenshot("out/curated/report/report.html", "report.png")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from ..errors import UniFilterError

_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-sync",
          "--disable-component-update", "--no-first-run", "--hide-scrollbars", "--disable-quic",
          "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,Translate"]
# Chromium's own service traffic (sign-in, time, safe browsing) that no flag fully silences; never a page's.
_BROWSER_HOSTS = re.compile(r"(^|\.)(google\.com|googleapis\.com|gstatic\.com|gvt1\.com)(:\d+)?$")
# Written into a copy of the page, never into the report: what the browser loaded, once everything settled.
_PROBE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images].map(i => ({alt: i.alt, width: i.naturalWidth, complete: i.complete}));
  const resources = performance.getEntriesByType("resource").map(e => e.name);
  document.body.setAttribute("data-probe", JSON.stringify({images, resources}));
});
</script>"""


class BrowserError(UniFilterError, RuntimeError):
    pass


def find_chromium() -> str | None:
    """The Chromium binary: ``$CHROMIUM``, else ``chromium`` / ``chromium-browser`` / ``google-chrome`` on PATH."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


class _RecordingProxy:
    """An HTTP proxy on loopback that answers 404 to everything and records what was asked of it."""

    def __enter__(self) -> _RecordingProxy:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        requests = self.requests = []

        class Handler(BaseHTTPRequestHandler):
            def _refuse(self) -> None:
                host = self.path.split("://", 1)[-1].split("/", 1)[0]
                if not _BROWSER_HOSTS.search(host):
                    requests.append(f"{self.command} {self.path}")
                self.send_error(404)

            do_GET = do_POST = do_HEAD = do_CONNECT = _refuse

            def log_message(self, *args) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def _run(args: list[str], timeout: float) -> str:
    binary = find_chromium()
    if binary is None:
        raise BrowserError("no Chromium found: install Debian's `chromium` package or set $CHROMIUM")
    with tempfile.TemporaryDirectory(prefix="unifilter-chromium-") as profile:
        proc = subprocess.run([binary, *_FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise BrowserError(f"chromium exited with {proc.returncode}: {proc.stderr.strip()[-300:]}")
    return proc.stdout


def screenshot(html: str | Path, png: str | Path, *, width: int = 1280, height: int = 2400,
               timeout: float = 120) -> Path:
    """Render ``html`` in headless Chromium and save a ``width`` x ``height`` PNG of its top."""
    png = Path(png).resolve()
    _run([f"--window-size={width},{height}", f"--screenshot={png}", Path(html).resolve().as_uri()], timeout)
    if not png.exists():
        raise BrowserError(f"chromium wrote no screenshot for {html}")
    return png


def probe(html: str | Path, *, timeout: float = 120) -> dict:
    """Load a copy of ``html`` (same folder, a probe script added) through a recording proxy.

    Returns ``images`` (each ``<img>``'s alt text and natural width: 0 when it did not render), ``resources``
    (the URLs the page loaded, as the browser lists them) and ``network`` (every request that tried to leave
    the machine, but Chromium's own calls to Google services).
    """
    html = Path(html).resolve()
    copy = html.with_name(f".probe-{html.name}")
    copy.write_text(html.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    try:
        with _RecordingProxy() as proxy:  # any http(s) fetch goes through it and is recorded
            dom = _run([f"--proxy-server=http://{proxy.address}", "--proxy-bypass-list=<-loopback>",
                        "--virtual-time-budget=10000", "--dump-dom", copy.as_uri()], timeout)
    finally:
        copy.unlink(missing_ok=True)
    found = re.search(r'data-probe="([^"]*)"', dom)
    if not found:
        raise BrowserError("the page never finished loading in chromium")
    import html as html_lib

    return {**json.loads(html_lib.unescape(found.group(1))), "network": proxy.requests}
