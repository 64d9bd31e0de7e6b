"""Fetch one image URL named by untrusted data: public addresses only, a total deadline, a byte cap.

Rows come from the web, so a URL in a row is the attacker's choice. This fetcher:

- speaks ``http`` and ``https`` only, on every hop (a redirect to ``ftp://`` or ``file://`` is refused);
- resolves the host once per hop, refuses the hop when any resolved address is loopback, private,
  link-local (``169.254.169.254``, the cloud metadata address), multicast, reserved or unspecified, and then
  connects to *that* checked address (``Host`` header and TLS SNI carry the name), so a second DNS answer
  cannot swap in an internal address (DNS rebinding);
- holds one deadline from the first connect to the last byte (a server that trickles headers is cut off);
- never puts server text in a reason: reasons are fixed phrases ("bad URL", "HTTP 404", "timed out",
  "unreachable (connection refused)");
- ignores proxy environment variables (a proxy would fetch the address for us, unchecked).

Private ranges are fetched only on an explicit opt-in naming what is allowed: ``allow_private_urls=True``
(every range) or a list of networks such as ``["127.0.0.0/8"]``; or the environment variable
``UNIFILTER_ALLOW_PRIVATE_URLS`` (``1`` for every range, or comma-separated networks).

Example:
    >>> encode_url("http://example.com/a photo/caf\u00e9.jpg?q=\u00e9t\u00e9")
    'http://example.com/a%20photo/caf%C3%A9.jpg?q=%C3%A9t%C3%A9'
    >>> try:
    ...     fetch_url("http://127.0.0.1:9/x.jpg", timeout=1, max_bytes=100, allow_private_urls=False)
    ... except SampleError as err:
    ...     print(err.reason)
    image: URL refused (resolves to a private or local address; see allow_private_urls)
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterable

from .sample import SampleError

__all__ = ["ALLOW_PRIVATE_URLS_ENV", "encode_url", "fetch_url", "private_networks"]

ALLOW_PRIVATE_URLS_ENV = "UNIFILTER_ALLOW_PRIVATE_URLS"
MAX_REDIRECTS = 5
_USER_AGENT = "unifilter-hf/0.1 (image fetch for data-quality scoring)"
_REDIRECTS = {301, 302, 303, 307, 308}
_TRUE = {"1", "true", "yes", "all", "on"}
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_EVERYWHERE = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


def private_networks(allow: bool | str | Iterable[str] | None) -> tuple[_Network, ...]:
    """The non-public networks a fetch may reach: none by default.

    ``None`` reads ``$UNIFILTER_ALLOW_PRIVATE_URLS``; ``True`` (or ``"1"``/``"all"``) allows every range; a
    string or list names networks (``"127.0.0.0/8,10.0.0.0/8"``).

    Example:
        >>> private_networks("127.0.0.0/8")
        (IPv4Network('127.0.0.0/8'),)
        >>> private_networks(False)
        ()
    """
    if allow is None:
        allow = os.environ.get(ALLOW_PRIVATE_URLS_ENV, "")
    if allow is True:
        return _EVERYWHERE
    if not allow:
        return ()
    if isinstance(allow, str):
        if allow.strip().lower() in _TRUE:
            return _EVERYWHERE
        allow = [part for part in allow.split(",") if part.strip()]
    try:
        return tuple(ipaddress.ip_network(str(net).strip(), strict=False) for net in allow)
    except ValueError as err:
        raise ValueError(f"allow_private_urls: expected True or networks such as 127.0.0.0/8 ({err})") from None


def encode_url(url: str) -> str:
    """Percent-encode a URL the way browsers do (spaces, non-ASCII, IDN hosts); refuse non-HTTP schemes.

    Raises :class:`SampleError` ("image: bad URL (...)") when the URL cannot be fetched over HTTP(S).
    """
    url = "".join(ch for ch in url.strip() if ch not in "\t\r\n")  # browsers drop these anywhere
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        raise SampleError("image: bad URL (cannot parse)") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise SampleError(f"image: bad URL (scheme {scheme[:10]!r} refused; only http and https)")
    host = parts.hostname or ""
    if not host:
        raise SampleError("image: bad URL (no host)")
    if ":" in host:  # an IPv6 literal
        netloc = f"[{host}]"
    else:
        try:
            netloc = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise SampleError("image: bad URL (invalid host name)") from None
    if port is not None:
        netloc += f":{port}"
    path = urllib.parse.quote(parts.path, safe="/%!$&'()*+,;=:@~-._") or "/"
    query = urllib.parse.quote(parts.query, safe="/?%!$&'()*+,;=:@~-._")
    return urllib.parse.urlunsplit((scheme, netloc, path, query, ""))  # credentials and fragment dropped


def fetch_url(
    url: str, *, timeout: float, max_bytes: int, allow_private_urls: bool | str | Iterable[str] | None = None
) -> bytes:
    """Download ``url`` (following at most 5 redirects) within ``timeout`` seconds in total.

    Raises :class:`SampleError` with a fixed-phrase reason on any failure.
    """
    allowed = private_networks(allow_private_urls)
    deadline = time.monotonic() + timeout
    url = encode_url(url)
    for _ in range(MAX_REDIRECTS + 1):
        status, location, body = _one_hop(url, deadline, timeout, max_bytes, allowed)
        if status in _REDIRECTS:
            if not location:
                raise SampleError(f"image: URL fetch failed (HTTP {status} without a Location)")
            url = encode_url(urllib.parse.urljoin(url, location))
            continue
        if status != 200:
            raise SampleError(f"image: URL fetch failed (HTTP {status})")
        if not body:
            raise SampleError("image: empty file (0 bytes)")
        return body
    raise SampleError(f"image: URL fetch failed (more than {MAX_REDIRECTS} redirects)")


def _one_hop(url: str, deadline: float, timeout: float, max_bytes: int, allowed: tuple[_Network, ...]):
    parts = urllib.parse.urlsplit(url)
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    address = _checked_address(parts.hostname, port, allowed)
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise SampleError(f"image: URL fetch timed out after {timeout:g}s")
    conn_cls = _PinnedHTTPS if https else _PinnedHTTP
    conn = conn_cls(parts.hostname, port, address, timeout=remaining)
    # The socket timeout bounds each read; the watchdog bounds the whole hop (headers sent one byte at a time).
    watchdog = threading.Timer(remaining, _cut, args=(conn,))
    watchdog.daemon = True
    watchdog.start()
    try:
        target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        conn.request("GET", target, headers={"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"})
        response = conn.getresponse()
        if response.status != 200:
            return response.status, response.getheader("Location"), b""
        length = response.getheader("Content-Length")
        if length and length.isdigit() and int(length) > max_bytes:
            raise SampleError(f"image: URL response larger than max_bytes={max_bytes}")
        chunks, received = [], 0
        while chunk := response.read(1 << 16):
            received += len(chunk)
            if received > max_bytes:
                raise SampleError(f"image: URL response larger than max_bytes={max_bytes}")
            chunks.append(chunk)
        if time.monotonic() >= deadline:  # the watchdog closed the socket: what came is not the whole body
            raise TimeoutError
        if length and length.isdigit() and received < int(length):
            raise http.client.IncompleteRead(b"")
        return 200, None, b"".join(chunks)
    except SampleError:
        raise
    except Exception as err:  # noqa: BLE001 - socket, TLS and HTTP parsers raise many types; none may escape
        if time.monotonic() >= deadline or isinstance(err, TimeoutError):
            raise SampleError(f"image: URL fetch timed out after {timeout:g}s") from None
        raise SampleError(f"image: URL unreachable ({_why(err)})") from None
    finally:
        watchdog.cancel()
        conn.close()


def _why(err: BaseException) -> str:
    """A fixed phrase for a connection failure: never the server's own text (banners, error pages)."""
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    if isinstance(err, ConnectionResetError):
        return "connection reset"
    if isinstance(err, ssl.SSLError):
        return "TLS error"
    if isinstance(err, http.client.IncompleteRead):
        return "response cut short"
    if isinstance(err, http.client.HTTPException):
        return "not an HTTP response"
    return "connection failed"


def _checked_address(host: str | None, port: int, allowed: tuple[_Network, ...]) -> tuple:
    """Resolve ``host`` once; refuse when any address is non-public and not allowed; return the one to use."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise SampleError("image: URL unreachable (host not found)") from None
    if not infos:
        raise SampleError("image: URL unreachable (host not found)")
    for *_, sockaddr in infos:
        ip = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if not _is_public(ip) and not any(ip in net for net in allowed if net.version == ip.version):
            raise SampleError("image: URL refused (resolves to a private or local address; see allow_private_urls)")
    family, _, _, _, sockaddr = infos[0]
    return family, sockaddr


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if ip.ipv4_mapped is not None:
            return _is_public(ip.ipv4_mapped)
        if embedded is not None:
            return _is_public(embedded) and ip.is_global
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


def _connect(address: tuple, timeout: float) -> socket.socket:
    family, sockaddr = address
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(sockaddr)
    except BaseException:
        sock.close()
        raise
    return sock


def _cut(conn: http.client.HTTPConnection) -> None:
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _PinnedHTTP(http.client.HTTPConnection):
    """An HTTP connection to an already checked address; ``host`` is only the name sent in ``Host``."""

    def __init__(self, host: str, port: int, address: tuple, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = _connect(self._address, self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """An HTTPS connection to an already checked address; the certificate is checked against ``host``."""

    def __init__(self, host: str, port: int, address: tuple, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = _connect(self._address, self.timeout)
        try:
            self.sock = self._context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
