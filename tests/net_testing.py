"""Local HTTP servers for the network tests: a static file server (a tile set on a web server, with an index
page per folder as nginx's autoindex writes, and failures on demand) and a forward proxy that records what went
through it."""

from __future__ import annotations

import http.server
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from isotiles_testing import InFlight


class _Server:
    handler: type[http.server.BaseHTTPRequestHandler]

    def __enter__(self) -> Any:
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), type("H", (self.handler,), {"owner": self}))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Static(http.server.SimpleHTTPRequestHandler):
    owner: StaticServer

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, directory=str(self.owner.root), **kw)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        with self.owner.lock:
            self.owner.gets[self.path] += 1
            fail = self.owner.failures.get(self.path, [])
            status = fail.pop(0) if fail else None
        if status is not None:
            self.send_error(status)
            return
        with self.owner.in_flight:
            time.sleep(self.owner.delay_s)
            super().do_GET()


class StaticServer(_Server):
    """Serves ``root``; ``gets`` counts the GETs of each path; ``failures[path]`` lists statuses to answer first;
    each file takes ``delay_s``, and ``in_flight.peak`` says how many were served at once."""

    handler = _Static

    def __init__(self, root: Path) -> None:
        self.root = root
        self.gets: Counter[str] = Counter()
        self.failures: dict[str, list[int]] = {}
        self.lock = threading.Lock()
        self.delay_s = 0.0
        self.in_flight = InFlight()


class _Forward(http.server.BaseHTTPRequestHandler):
    owner: RecordingProxy

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _forward(self) -> None:
        # a forward proxy receives the absolute URL (RFC 9112 absolute-form); this one only speaks plain http
        with self.owner.lock:
            self.owner.seen.append((self.command, self.path))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "proxy-connection", "connection")}
        req = urllib.request.Request(self.path, data=body, headers=headers, method=self.command)
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with direct.open(req, timeout=60) as resp:
                status, out, rh = resp.status, resp.read(), resp.headers
        except urllib.error.HTTPError as exc:
            status, out, rh = exc.code, exc.read(), exc.headers
        self.send_response(status)
        for k, v in rh.items():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_DELETE = _forward


class RecordingProxy(_Server):
    """A forward HTTP proxy; ``seen`` lists ``(method, absolute URL)`` of every request it carried."""

    handler = _Forward

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def urls(self) -> list[str]:
        with self.lock:
            return [u for _, u in self.seen]
