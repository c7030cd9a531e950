"""A static web server on the loopback interface, with HTTP range requests, for a viewer folder.

PMTiles are read with ``Range: bytes=a-b`` requests, which every static host answers and
``file://`` cannot; the standard library's SimpleHTTPRequestHandler ignores ``Range``. This
serves a published viewer on this computer only (127.0.0.1), for a look before it goes online.
"""

from __future__ import annotations

import os
import re
import threading
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO, ClassVar


class RangeRequestHandler(SimpleHTTPRequestHandler):
    """Files, with a single ``Range: bytes=...`` answered by 206 Partial Content (or 416)."""

    extensions_map: ClassVar[dict[str, str]] = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".pmtiles": "application/octet-stream",
        ".js": "text/javascript",
    }
    _left: int | None = None

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def end_headers(self) -> None:
        self.send_header("Accept-Ranges", "bytes")
        super().end_headers()

    def send_head(self) -> BinaryIO | None:  # type: ignore[override]
        self._left = None
        rng = self.headers.get("Range")
        path = self.translate_path(self.path)
        if rng is None or not os.path.isfile(path):
            return super().send_head()  # type: ignore[return-value]
        size = os.path.getsize(path)
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
        if m and m[1] == "" and m[2]:  # the last N bytes
            start, end = max(0, size - int(m[2])), size - 1
        elif m and m[1]:
            start, end = int(m[1]), min(int(m[2]) if m[2] else size - 1, size - 1)
        else:
            start, end = size, 0  # not a range this server knows: 416
        if start >= size or end < start:
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        f = open(path, "rb")  # noqa: SIM115 (the base class closes it after copyfile)
        f.seek(start)
        self.send_response(HTTPStatus.PARTIAL_CONTENT)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        self._left = end - start + 1
        return f

    def copyfile(self, source: Any, outputfile: Any) -> None:
        left = self._left
        if left is None:
            super().copyfile(source, outputfile)
            return
        while left > 0:
            chunk = source.read(min(64 * 1024, left))
            if not chunk:
                break
            outputfile.write(chunk)
            left -= len(chunk)


class LocalServer:
    """Serves ``folder`` on 127.0.0.1 (``port`` 0: a free one) from a daemon thread until ``stop()``."""

    def __init__(self, folder: str | os.PathLike[str], port: int = 0, handler: type = RangeRequestHandler) -> None:
        self.folder = Path(folder)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), partial(handler, directory=str(self.folder)))
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="isotiles-viewer-server", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
