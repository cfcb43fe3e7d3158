"""Open a local HTML file in real headless Chromium over the DevTools protocol, as a person would.

Speaks the DevTools protocol over ``--remote-debugging-pipe`` (NUL-separated JSON on file
descriptors 3 and 4), so no websocket library, no Playwright and no downloaded browser: only
the OS package (`apt-get install chromium`). Reports every network request the page makes,
every console message, uncaught exception and browser log entry, and saves a screenshot.

Chromium's own background traffic (update checks, sign-in) is kept off the network by
resolving every host name to "not found" and sending everything else to a dead loopback proxy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9",
    "--remote-debugging-pipe",
]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class Visit:
    requests: list[str] = field(default_factory=list)  # every URL the page asked for
    console: list[dict[str, Any]] = field(default_factory=list)  # console API calls, log entries, exceptions
    dom_text: str = ""
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def network(self) -> list[str]:
        """Requests that would leave the file: anything but file: and data: URLs."""
        return [u for u in self.requests if not u.startswith(("file:", "data:", "about:"))]

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [c for c in self.console if c.get("level") in ("error", "warning", "exception", "assert")]


class _Pipe:
    def __init__(self, binary: str, profile: str) -> None:
        to_child_r, self._write = os.pipe()
        self._read, from_child_w = os.pipe()
        # the child reads commands on fd 3 and writes replies on fd 4
        def setup() -> None:  # via fresh copies: a pipe end may itself be fd 3 or 4
            read_end, write_end = os.dup(to_child_r), os.dup(from_child_w)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        self.proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                     preexec_fn=setup, close_fds=False,  # keep the dup2'd 3 and 4
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._next = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = self._receive(deadline)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
        raise TimeoutError(f"{method}: no reply from Chromium in {timeout} s")

    def _receive(self, deadline: float) -> dict[str, Any]:
        import select

        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._read], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError("Chromium stopped answering")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message = json.loads(raw)
        if "method" in message:
            self.events.append(message)
        return message

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                self._receive(deadline)
        except TimeoutError:
            pass

    def close(self) -> None:
        try:
            os.write(self._write, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        finally:
            os.close(self._write)
            os.close(self._read)


def visit(path: Path, screenshot: Path | None = None, width: int = 1280, max_height: int = 16000,
          binary: str | None = None) -> Visit:
    """Load ``path`` and report what the page did; save a full-page PNG to ``screenshot``."""
    binary = binary or find_chromium()
    if not binary:
        raise FileNotFoundError("no Chromium on PATH")
    profile = tempfile.mkdtemp(prefix="mixer-chromium-")
    pipe = _Pipe(binary, profile)
    try:
        target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            pipe.send(f"{domain}.enable", session=session)
        pipe.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=session)
        pipe.events.clear()
        pipe.send("Page.navigate", {"url": path.resolve().as_uri()}, session=session)
        deadline = time.monotonic() + 30
        while not any(e["method"] == "Page.loadEventFired" for e in pipe.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path} did not finish loading in 30 s")
            pipe.drain(0.2)
        pipe.drain(0.5)  # late requests or errors after load
        facts = pipe.send("Runtime.evaluate", {"returnByValue": True, "expression": """({
            title: document.title, sections: document.querySelectorAll('section').length,
            charts: document.querySelectorAll('svg.chart').length, scripts: document.scripts.length,
            height: document.documentElement.scrollHeight, text: document.body.innerText})"""},
                          session=session)["result"]["value"]
        if screenshot is not None:
            height = min(int(facts["height"]), max_height)
            pipe.send("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
            shot = pipe.send("Page.captureScreenshot", {"format": "png"}, session=session, timeout=60)
            import base64

            screenshot.write_bytes(base64.b64decode(shot["data"]))
        result = Visit(dom_text=facts.pop("text"), facts=facts)
        for e in pipe.events:
            p = e.get("params", {})
            if e["method"] == "Network.requestWillBeSent":
                result.requests.append(p["request"]["url"])
            elif e["method"] == "Runtime.consoleAPICalled":
                result.console.append({"level": p.get("type"), "text": " ".join(str(a.get("value", a.get("description")))
                                                                             for a in p.get("args", []))})
            elif e["method"] == "Runtime.exceptionThrown":
                result.console.append({"level": "exception", "text": p["exceptionDetails"].get("text")})
            elif e["method"] == "Log.entryAdded":
                result.console.append({"level": p["entry"].get("level"), "text": p["entry"].get("text")})
        return result
    finally:
        pipe.close()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":  # python tests/browser.py REPORT.html SHOT.png [HEIGHT]: what the README shows
    import sys

    seen = visit(Path(sys.argv[1]), Path(sys.argv[2]), max_height=int(sys.argv[3]) if len(sys.argv) > 3 else 16000)
    print(f"requests: {seen.requests}\nconsole: {seen.console}\n{seen.facts}")
