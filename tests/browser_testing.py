"""Test helpers for the viewer: a static server with HTTP range requests, and headless Chromium over CDP.

The standard library's SimpleHTTPRequestHandler ignores ``Range``; PMTiles readers need it, as every
static host (Cloud Storage, S3, nginx) serves it: the plugin's own local server does, and logs here.
Chromium is Debian's ``chromium``, driven through its DevTools protocol with the ``websockets`` client
(requirements-dev.txt).
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from iso_tile_stylizer.iso_qgis.outputs.localserver import LocalServer, RangeRequestHandler

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--force-device-scale-factor=1",
    "--hide-scrollbars",
]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


class LoggingRangeHandler(RangeRequestHandler):
    """The plugin's range handler (``iso_qgis.outputs.localserver``), keeping (path, status, range) per request."""

    def send_response(self, code: int, message: str | None = None) -> None:
        self.server.log.append((self.path, int(code), self.headers.get("Range")))  # type: ignore[attr-defined]
        super().send_response(code, message)


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[tuple[str, list]]:
    """A static server with range requests on 127.0.0.1 (a free port) for ``folder``: (base URL, request log)."""
    server = LocalServer(folder, handler=LoggingRangeHandler)
    server.httpd.log = []  # type: ignore[attr-defined]
    try:
        yield server.url, server.httpd.log  # type: ignore[attr-defined]
    finally:
        server.stop()


class Chromium:
    """One headless Chromium with a fresh profile, and one page driven over the DevTools protocol."""

    def __init__(self, binary: str, width: int = 1000, height: int = 700, timeout: float = 30.0) -> None:
        from websockets.sync.client import connect

        self.profile = tempfile.mkdtemp(prefix="isotiles-chromium-")
        self.proc = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
             f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.is_file() and len(port_file.read_text().split()) >= 2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"{binary} did not start its DevTools server")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            page = next(t for t in json.load(resp) if t["type"] == "page")
        self.stack = contextlib.ExitStack()
        self.ws = self.stack.enter_context(
            connect(page["webSocketDebuggerUrl"], max_size=64 * 1024 * 1024, open_timeout=10)
        )
        self.next_id = 0
        self.console: list[str] = []  # console errors and warnings, exceptions, failed loads
        self.width, self.height = width, height
        for method in ("Page.enable", "Runtime.enable", "Log.enable", "Network.enable"):
            self.call(method)
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def _event(self, msg: dict) -> None:
        m, p = msg.get("method"), msg.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
            self.console.append(
                f"console.{p['type']}: " + " ".join(str(a.get("value", a.get("description"))) for a in p["args"])
            )
        elif m == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            self.console.append(f"exception: {d.get('exception', {}).get('description') or d.get('text')}")
        elif m == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
            self.console.append(f"log.{p['entry']['level']}: {p['entry']['text']} {p['entry'].get('url', '')}")
        elif m == "Network.loadingFailed" and not p.get("canceled"):
            self.console.append(f"network: {p.get('errorText')}")

    def call(self, method: str, timeout: float = 30.0, **params: Any) -> dict:
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self._event(msg)

    def pump(self, seconds: float) -> None:
        """Collect events for a while (console messages arrive on their own)."""
        deadline = time.monotonic() + seconds
        with contextlib.suppress(TimeoutError):
            while (left := deadline - time.monotonic()) > 0:
                self._event(json.loads(self.ws.recv(timeout=left)))

    def eval(self, expression: str) -> Any:
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expression}: {res['exceptionDetails']}")
        return res["result"].get("value")

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def wait_for(self, expression: str, timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(RuntimeError):
                value = self.eval(expression)
                if value:
                    return value
            self.pump(0.1)
        raise TimeoutError(f"{expression} stayed false for {timeout} s; console: {self.console}")

    def screenshot(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stack.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


if __name__ == "__main__":  # a screenshot: python tests/browser_testing.py FOLDER OUT.png [#hash] [script]
    import sys

    folder, out = Path(sys.argv[1]), Path(sys.argv[2])
    with serve(folder) as (url, _):
        browser = Chromium(find_chromium() or "chromium", 1200, 760)
        try:
            browser.goto(url + "index.html" + (sys.argv[3] if len(sys.argv) > 3 else ""))
            browser.wait_for("window.isoViewer && !isoViewer.loading()")
            if len(sys.argv) > 4:
                browser.eval(sys.argv[4])
            browser.pump(1.0)
            out.write_bytes(browser.screenshot())
        finally:
            browser.close()
    print(out)
