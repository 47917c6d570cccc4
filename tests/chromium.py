"""Headless Chromium (Debian's ``chromium``; .ci/run installs it) for the browser tests, two ways:

- ``render(url)``: one command-line run (``--dump-dom`` or ``--screenshot``) once the page's scripts ran;
- ``Browser``: one Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
  no WebDriver, no websocket), to set a page's local storage before its app starts, wait until the
  page shows a text, read values out of it and save screenshots.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.services import in_ci

WIDTH, HEIGHT = 1280, 900  # a laptop's screen


def chromium() -> str:
    """The Chromium command; a skip (a failure in CI) when it is not installed."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "headless Chromium is missing: apt-get install -y chromium"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run")


def render(url: str, *, dom: bool = False, screenshot: Path | None = None, width: int = WIDTH) -> str:
    """Chromium's rendering of ``url`` once its scripts have run: the DOM (``dom``) or a screenshot."""
    command = [chromium(), *FLAGS, f"--window-size={width},{HEIGHT}", "--virtual-time-budget=15000",
               "--run-all-compositor-stages-before-draw"]
    command += ["--dump-dom"] if dom else [f"--screenshot={screenshot}"]
    proc = subprocess.run([*command, url], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _above_4(fd: int) -> int:
    """``fd`` moved to a number above 4 (inheritable), so that putting the pipe on 3 and 4 overwrites neither end."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    os.set_inheritable(moved, True)
    return moved


class Browser:
    """One headless Chromium and one page in it, driven over the DevTools protocol; ``close()`` ends it."""

    def __init__(self, width: int = WIDTH, height: int = HEIGHT):
        self.profile = tempfile.mkdtemp(prefix="nnsweep-chromium-")
        to_browser, self._write = os.pipe()  # Chromium reads commands on its fd 3
        self._read, from_browser = os.pipe()  # and writes answers and events on its fd 4
        to_browser, from_browser = (_above_4(fd) for fd in (to_browser, from_browser))
        command = [chromium(), *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={self.profile}",
                   f"--window-size={width},{height}", "about:blank"]
        self.proc = subprocess.Popen(  # bash (sh takes no fd above 9) puts the pipe on fds 3 and 4, becomes Chromium
            ["bash", "-c", f'exec "$@" 3<&{to_browser} 4>&{from_browser} {to_browser}<&- {from_browser}>&-', "bash",
             *command], pass_fds=(to_browser, from_browser), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        os.close(to_browser)
        os.close(from_browser)
        self._buffer, self._id = b"", 0
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=False, session=True)

    def call(self, method: str, session: bool = False, timeout: float = 60, **params) -> dict:
        """The result of one protocol command (on the page's session when ``session``); events are skipped."""
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" not in self._buffer:
                assert time.monotonic() < deadline and self.proc.poll() is None, f"no answer to {method}"
                chunk = os.read(self._read, 1 << 20)
                assert chunk, f"Chromium closed the pipe during {method}"
                self._buffer += chunk
            text, self._buffer = self._buffer.split(b"\0", 1)
            answer = json.loads(text)
            if answer.get("id") == self._id:
                assert "error" not in answer, (method, answer["error"])
                return answer.get("result", {})

    def open(self, url: str, local_storage: dict[str, str] | None = None) -> None:
        """Load ``url``, its origin's local storage set to ``local_storage`` before the page's scripts run."""
        if local_storage:
            script = "".join(f"localStorage.setItem({json.dumps(k)}, {json.dumps(v)});"
                             for k, v in local_storage.items())
            self.call("Page.addScriptToEvaluateOnNewDocument", source=script, session=True)
        self.call("Page.navigate", url=url, session=True)

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (JSON-serialisable)."""
        found = self.call("Runtime.evaluate", expression=expression, returnByValue=True, session=True)
        assert "exceptionDetails" not in found, found["exceptionDetails"]
        return found["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60, settle: float = 1.5):
        """The first truthy value of ``expression`` (polled), after ``settle`` more seconds of rendering."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(f"document.readyState === 'complete' && ({expression})")
            if value:
                time.sleep(settle)
                return value
            assert time.monotonic() < deadline, f"the page never showed {expression!r}: " + str(
                self.evaluate("document.body ? document.body.innerText.slice(0, 1500) : ''"))
            time.sleep(0.25)

    def text(self) -> str:
        return self.evaluate("document.body.innerText")

    def screenshot(self, path: Path) -> Path:
        """The page's viewport as a PNG at ``path``."""
        data = self.call("Page.captureScreenshot", format="png", session=True)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            self.proc.wait(10)
        os.close(self._write)
        os.close(self._read)
        shutil.rmtree(self.profile, ignore_errors=True)
