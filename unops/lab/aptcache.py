"""The lab's shared package cache: an HTTP proxy for apt that keeps every .deb it fetches.

Every lab host's apt uses it (`Acquire::http::Proxy`), so a package is downloaded from the
Debian mirror once per machine, however many hosts install it, and hosts can install at the
same time. (A folder bind-mounted over every host's /var/cache/apt/archives would share apt's
lock too: a second host installing at once fails with "Could not get lock".)

Only .deb files under /pool/ are kept, by file name (which holds the version), in APT_ARCHIVES;
index files pass through uncached, as the mirror serves them. The proxy forwards only to the
registries' host names, and refuses any other.

Run by `unops lab up` as its own process: `python -m unops.lab.aptcache --listen 198.18.0.1`.
"""

from __future__ import annotations

import argparse
import http.client
import logging
import os
import re
import shutil
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from unops.lab import paths, registries

log = logging.getLogger(__name__)

PORT = 3142
# A .deb's file name: name_version_arch.deb, nothing that could leave the cache folder.
_DEB = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+~%_-]*\.deb$")
_FORWARDED = ("If-Modified-Since", "If-None-Match", "Range", "Accept", "User-Agent")
_CHUNK = 1 << 16


class CacheProxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        cache: Path,
        allowed: set[str],
        connect: Callable[..., http.client.HTTPConnection] = http.client.HTTPConnection,
    ) -> None:
        super().__init__(address, _Handler)
        self.cache = cache
        self.allowed = allowed
        # How the proxy opens a connection to a registry (tests give a fake one).
        self.connect = connect
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def lock_for(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: CacheProxy

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.client_address[0], format % args)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        host = url.hostname or ""
        if url.scheme != "http" or host not in self.server.allowed:
            self._refuse(403, f"the lab's apt proxy forwards only to the registries, not {host!r}")
            return
        name = url.path.rsplit("/", 1)[-1]
        if "/pool/" in url.path and _DEB.match(name):
            self._cached(host, url.port or 80, url.path, name)
        else:
            self._passthrough(
                host, url.port or 80, url.path + (f"?{url.query}" if url.query else "")
            )

    def _refuse(self, status: int, reason: str) -> None:
        body = (reason + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _upstream(
        self, host: str, port: int, target: str, forward: bool
    ) -> http.client.HTTPResponse:
        conn = self.server.connect(host, port, timeout=60)
        headers = {"Host": host}
        if forward:
            headers |= {k: v for k in _FORWARDED if (v := self.headers.get(k)) is not None}
        conn.request("GET", target, headers=headers)
        return conn.getresponse()

    def _passthrough(self, host: str, port: int, target: str) -> None:
        try:
            response = self._upstream(host, port, target, forward=True)
        except OSError as exc:
            self._refuse(502, f"{host} did not answer: {exc}")
            return
        with response:
            self.send_response(response.status, response.reason)
            length = response.getheader("Content-Length")
            for key, value in response.getheaders():
                if key.lower() not in ("connection", "transfer-encoding", "keep-alive"):
                    self.send_header(key, value)
            if length is None:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            shutil.copyfileobj(response, self.wfile, _CHUNK)

    def _cached(self, host: str, port: int, target: str, name: str) -> None:
        path = self.server.cache / name
        # One download per file: a second host asking meanwhile waits, then reads the cache.
        with self.server.lock_for(name):
            if not path.exists() and not self._fetch(host, port, target, path):
                return
        size = path.stat().st_size
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.debian.binary-package")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        with open(path, "rb") as handle:
            shutil.copyfileobj(handle, self.wfile, _CHUNK)

    def _fetch(self, host: str, port: int, target: str, path: Path) -> bool:
        partial = path.with_name(f".{path.name}.{threading.get_ident()}.part")
        try:
            with self._upstream(host, port, target, forward=False) as response:
                if response.status != 200:
                    self._refuse(response.status, f"{host} answered {response.status}")
                    return False
                with open(partial, "wb") as out:
                    shutil.copyfileobj(response, out, _CHUNK)
            os.replace(partial, path)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            self._refuse(502, f"{host} failed while sending {path.name}: {exc}")
            return False
        log.info("cached %s", path.name)
        return True


def serve(listen: str, port: int = PORT, cache: Path = paths.APT_ARCHIVES) -> None:
    """Serve until killed."""
    cache.mkdir(parents=True, exist_ok=True)
    allowed = set(registries.registry_names())
    server = CacheProxy((listen, port), cache, allowed)
    # The registries' names are not logged: they are read at run time and written nowhere.
    log.info(
        "lab apt cache on %s:%s for %d registries, keeping .deb files in %s",
        listen,
        port,
        len(allowed),
        cache,
    )
    server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description="The lab's apt cache (started by `unops lab up`).")
    parser.add_argument("--listen", required=True, help="address to listen on, the lab bridge's")
    parser.add_argument("--port", type=int, default=PORT, help=f"TCP port (default {PORT})")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    serve(args.listen, args.port)


if __name__ == "__main__":
    main()
