"""The lab's apt cache: each .deb fetched from the registry once, others refused.

The proxy listens on loopback; its upstream is a fake, so nothing leaves this process.
"""

from __future__ import annotations

import io
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

import pytest

from unops.lab import aptcache

DEB = "http://mirror.invalid/debian/pool/main/h/hello/hello_2.10-3_amd64.deb"
INDEX = "http://mirror.invalid/debian/dists/bookworm/InRelease"


class FakeResponse(io.BytesIO):
    def __init__(self, body: bytes, status: int = 200) -> None:
        super().__init__(body)
        self.status, self.reason = status, "OK" if status == 200 else "Not Found"

    def getheader(self, name, default=None):
        return str(len(self.getvalue())) if name == "Content-Length" else default

    def getheaders(self):
        return [("Content-Length", str(len(self.getvalue()))), ("Content-Type", "text/plain")]


class FakeUpstream:
    """Stands in for http.client.HTTPConnection; counts the requests it gets."""

    requests: ClassVar[list[str]] = []
    lock = threading.Lock()

    def __init__(self, host, port, timeout=None):
        self.host = host

    def request(self, method, target, headers=None):
        with self.lock:
            self.requests.append(f"{self.host}{target}")
        self.target = target

    def getresponse(self):
        if "missing" in self.target:
            return FakeResponse(b"gone", status=404)
        return FakeResponse(f"body of {self.target}".encode())


@pytest.fixture
def proxy(tmp_path):
    FakeUpstream.requests = []
    server = aptcache.CacheProxy(("127.0.0.1", 0), tmp_path, {"mirror.invalid"}, FakeUpstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, tmp_path
    server.shutdown()
    server.server_close()


def get(server, url):
    port = server.server_address[1]
    handler = urllib.request.ProxyHandler({"http": f"http://127.0.0.1:{port}"})
    with urllib.request.build_opener(handler).open(url, timeout=10) as response:
        return response.read()


def test_a_deb_is_fetched_once_and_then_served_from_the_cache(proxy):
    """The second request for a .deb is answered from the cache folder, not the registry."""
    server, cache = proxy
    first, second = get(server, DEB), get(server, DEB)
    assert first == second == b"body of /debian/pool/main/h/hello/hello_2.10-3_amd64.deb"
    assert FakeUpstream.requests == [
        "mirror.invalid/debian/pool/main/h/hello/hello_2.10-3_amd64.deb"
    ]
    assert (cache / "hello_2.10-3_amd64.deb").read_bytes() == first


def test_hosts_asking_at_once_cause_one_download(proxy):
    """Eight requests for one .deb at the same moment reach the registry once."""
    server, _ = proxy
    with ThreadPoolExecutor(max_workers=8) as pool:
        bodies = set(pool.map(lambda _: get(server, DEB), range(8)))
    assert len(bodies) == 1
    assert len(FakeUpstream.requests) == 1


def test_index_files_pass_through_uncached(proxy):
    """Release and package index files are fetched every time: they change on the mirror."""
    server, cache = proxy
    get(server, INDEX)
    get(server, INDEX)
    assert len(FakeUpstream.requests) == 2
    assert list(cache.iterdir()) == []


def test_refuses_hosts_that_are_not_registries(proxy):
    """A request for any other host is refused with 403 and never forwarded."""
    server, _ = proxy
    with pytest.raises(urllib.error.HTTPError) as refused:
        get(server, "http://elsewhere.invalid/debian/pool/x_1_all.deb")
    assert refused.value.code == 403
    assert FakeUpstream.requests == []


def test_a_missing_deb_is_not_cached(proxy):
    """The registry's 404 reaches apt, and nothing is kept."""
    server, cache = proxy
    with pytest.raises(urllib.error.HTTPError) as missing:
        get(server, "http://mirror.invalid/debian/pool/main/m/missing/missing_1_all.deb")
    assert missing.value.code == 404
    assert list(cache.iterdir()) == []
