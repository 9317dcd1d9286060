"""Drive a headless Chromium over the DevTools protocol, with the standard library only.

``--remote-debugging-pipe`` makes Chromium read protocol messages (JSON, each ended by a NUL byte) on
its fd 3 and write replies and events on its fd 4, so no websocket client and no port are needed.
Used by tests/test_report_browser.py (the report page in a real browser) and by
benchmarks/report_screenshot.py (the README's screenshot).

Chromium runs with a fresh profile and everything that could reach the network switched off; as root
it needs --no-sandbox.
"""
from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--disable-extensions", "--mute-audio", "--hide-scrollbars")
NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> Optional[str]:
    """Path of a Chromium-family browser on PATH ($CHROMIUM first), or None."""
    for name in (os.environ.get("CHROMIUM"), *NAMES):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


class BrowserError(RuntimeError):
    pass


class Chromium:
    """A headless browser with one page. Use as a context manager; ``events`` collects every event of
    the page's session (method, params) in arrival order."""

    def __init__(self, executable: str, timeout: float = 60.0, width: int = 1100, height: int = 900):
        self.timeout = timeout
        self.events: List[Dict[str, Any]] = []
        self._profile = tempfile.mkdtemp(prefix="flowrt-chromium-")
        to_child, self._write = os.pipe()
        self._read, from_child = os.pipe()

        def wire():   # in the child: fd 3 is what we write, fd 4 is what it writes
            high_in, high_out = os.dup(to_child), os.dup(from_child)   # the pipes may sit on 3 or 4 already
            os.dup2(high_in, 3)    # dup2 makes them inheritable (os.pipe's are close-on-exec)
            os.dup2(high_out, 4)

        self._proc = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={self._profile}", "--remote-debugging-pipe",
             f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=wire, close_fds=False)
        os.close(to_child)
        os.close(from_child)
        self._buffer = b""
        self._next_id = 0
        self.session = ""
        target = self.call("Target.createTarget", {"url": "about:blank"}, browser=True)["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 browser=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    # -- protocol
    def call(self, method: str, params: Optional[dict] = None, *, browser: bool = False) -> dict:
        """Send one command (to the page's session unless ``browser``) and return its result."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if not browser:
            message["sessionId"] = self.session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        wanted = self._next_id
        while True:
            reply = self._receive()
            if reply.get("id") == wanted:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def wait_for(self, method: str) -> dict:
        """Block until an event ``method`` arrives on the page's session; its params."""
        seen = len(self.events)
        while True:
            for event in self.events[seen:]:
                if event["method"] == method:
                    return event["params"]
            seen = len(self.events)
            self._receive()

    def _receive(self) -> dict:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._read], [], [], left)[0]:
                raise BrowserError(f"no answer from chromium in {self.timeout:.0f} s")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise BrowserError("chromium closed the pipe: " + self._proc.stderr.read().decode(errors="replace")[-800:])
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message = json.loads(raw)
        if "method" in message and message.get("sessionId") == self.session:
            self.events.append({"method": message["method"], "params": message.get("params", {})})
        return message

    # -- page helpers
    def open(self, path: Path) -> None:
        """Load a local file and wait for its load event."""
        self.call("Page.navigate", {"url": Path(path).resolve().as_uri()})
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page; BrowserError if it throws."""
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def box(self, selector: str) -> Dict[str, float]:
        """Scroll the first element matching ``selector`` into view; its {x, y, width, height} in the viewport."""
        return self.evaluate(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
            e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect();
            return {{x: r.left, y: r.top, width: r.width, height: r.height}}; }})()""")

    def drag(self, x0: float, y: float, x1: float, steps: int = 8) -> None:
        """Press the left mouse button at (x0, y), move to (x1, y) in ``steps``, release: a real drag."""
        mouse = "Input.dispatchMouseEvent"
        self.call(mouse, {"type": "mouseMoved", "x": x0, "y": y})
        self.call(mouse, {"type": "mousePressed", "x": x0, "y": y, "button": "left", "clickCount": 1})
        for k in range(1, steps + 1):
            self.call(mouse, {"type": "mouseMoved", "x": x0 + (x1 - x0) * k / steps, "y": y, "button": "left",
                              "buttons": 1})
        self.call(mouse, {"type": "mouseReleased", "x": x1, "y": y, "button": "left", "clickCount": 1})

    def problems(self) -> List[str]:
        """Console errors and warnings, uncaught exceptions and browser log errors seen so far."""
        found = []
        for event in self.events:
            method, params = event["method"], event["params"]
            if method == "Runtime.exceptionThrown":
                found.append("exception: " + json.dumps(params["exceptionDetails"])[:400])
            elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "warning", "assert"):
                found.append(f"console.{params['type']}: " + json.dumps(params["args"])[:400])
            elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
                found.append(f"log {params['entry']['level']}: {params['entry']['text']}"
                             f" ({params['entry'].get('url', '')[:120]})")
        return found

    def screenshot(self, path: Path, width: int = 1100) -> None:
        """A PNG of the whole page (the viewport grown to the document's height)."""
        height = int(self.evaluate("Math.ceil(document.documentElement.scrollHeight)"))
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})["data"]
        Path(path).write_bytes(base64.b64decode(data))

    # -- lifetime
    def close(self) -> None:
        try:
            self.call("Browser.close", browser=True)
        except (BrowserError, OSError):
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for fd in (self._read, self._write):
            try:
                os.close(fd)
            except OSError:
                pass
        self._proc.stderr.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
