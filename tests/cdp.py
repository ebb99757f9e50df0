"""A minimal driver for headless Chromium over the DevTools protocol on a pipe
(``--remote-debugging-pipe``: JSON messages ending in NUL on file descriptors 3 and 4), so the
browser tests need no Python package beyond the standard library.

Also a tool: ``python tests/cdp.py PAGE.html SHOT.png [--drag FRACTION]`` opens a page,
optionally drags the first split handle, and saves a screenshot.
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
from typing import Any

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio"]


def find_chromium() -> str | None:
    """Path of a Chromium binary, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


class Chromium:
    """One headless Chromium with one page, driven over the DevTools pipe."""

    def __init__(self, exe: str, width: int = 1280, height: int = 1000, timeout: float = 60) -> None:
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="gancomp-chromium-")
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()

        def child() -> None:  # the browser reads fd 3 and writes fd 4
            # via high numbers: the pipes may themselves be fds 3/4, and dup2(fd, fd) would
            # keep close-on-exec
            os.dup2(to_chrome_r, 1000)
            os.dup2(from_chrome_w, 1001)
            os.dup2(1000, 3)
            os.dup2(1001, 4)

        self.proc = subprocess.Popen(
            [exe, *FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-pipe",
             f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=child, close_fds=False)  # fds 3, 4 stay; ours are non-inheritable
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []
        self.session: str | None = None
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next((t for t in targets if t["type"] == "page"), None)
        tid = page["targetId"] if page else self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=tid, flatten=True)["sessionId"]
        self.call("Page.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    # -- protocol
    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._r], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method: str, **params: Any) -> dict:
        """Send a command (to the page once attached) and return its result."""
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if self.session and not method.startswith(("Target.", "Browser.")):
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            m = self._read(deadline)
            if m.get("id") == self._id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, method: str) -> dict:
        deadline = time.monotonic() + self.timeout
        while True:
            for i, e in enumerate(self.events):
                if e.get("method") == method:
                    return self.events.pop(i)
            self.events.append(self._read(deadline))

    # -- page helpers
    def open(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")

    def js(self, expression: str) -> Any:
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                      awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"JS error: {r['exceptionDetails']}")
        return r["result"].get("value")

    def drag(self, x0: float, y0: float, x1: float, y1: float, steps: int = 8) -> None:
        """A real mouse drag (pressed, moves, released) as a user would make it."""
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x0, y=y0)
        self.call("Input.dispatchMouseEvent", type="mousePressed", x=x0, y=y0, button="left",
                  buttons=1, clickCount=1)
        for k in range(1, steps + 1):
            self.call("Input.dispatchMouseEvent", type="mouseMoved", button="left", buttons=1,
                      x=x0 + (x1 - x0) * k / steps, y=y0 + (y1 - y0) * k / steps)
        self.call("Input.dispatchMouseEvent", type="mouseReleased", x=x1, y=y1, button="left",
                  buttons=0, clickCount=1)

    def click(self, x: float, y: float) -> None:
        self.call("Input.dispatchMouseEvent", type="mousePressed", x=x, y=y, button="left",
                  buttons=1, clickCount=1)
        self.call("Input.dispatchMouseEvent", type="mouseReleased", x=x, y=y, button="left",
                  buttons=0, clickCount=1)

    def screenshot(self, full_page: bool = False) -> bytes:
        kw: dict[str, Any] = {"format": "png"}
        if full_page:
            kw["captureBeyondViewport"] = True
        return base64.b64decode(self.call("Page.captureScreenshot", **kw)["data"])

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._r, self._w):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def handle_box(b: Chromium, k: int = 0) -> dict:
    """Centre of the k-th viewer's split handle, the viewer's box and the split state
    (scrolling the viewer into the window first: mouse events only reach what is shown)."""
    return b.js(f"""(() => {{
      const s = document.querySelectorAll('section.cmp')[{k}];
      const vr = s.querySelector('.viewer').getBoundingClientRect();
      if (vr.top < 0 || vr.bottom > innerHeight) s.querySelector('.viewer').scrollIntoView({{block: 'center'}});
      const h = s.querySelector('.handle').getBoundingClientRect();
      const v = s.querySelector('.viewer').getBoundingClientRect();
      return {{hx: h.left + h.width / 2, hy: h.top + h.height / 2, vx: v.left, vy: v.top,
               vw: v.width, vh: v.height,
               now: +s.querySelector('.handle').getAttribute('aria-valuenow'),
               clip: s.querySelector('.pane.right').style.clipPath}};
    }})()""")


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("page")
    ap.add_argument("shot")
    ap.add_argument("--drag", type=float, default=None, help="move the first split to this fraction")
    ap.add_argument("--zoom", type=int, default=None, help="press the first viewer's zoom button")
    ap.add_argument("--scroll-to", type=int, default=None, help="scroll viewer K into view")
    ap.add_argument("--height", type=int, default=1000)
    a = ap.parse_args()
    exe = find_chromium()
    if not exe:
        raise SystemExit("no chromium on PATH")
    with Chromium(exe, height=a.height) as b:
        b.open(Path(a.page).resolve().as_uri())
        k = a.scroll_to or 0
        b.js(f"document.querySelectorAll('section.cmp')[{k}].scrollIntoView()")
        if a.zoom:
            b.js(f"document.querySelectorAll('section.cmp')[{k}]"
                 f".querySelector('button[data-zoom=\"{a.zoom}\"]').click()")
        if a.drag is not None:
            box = handle_box(b, k)
            b.drag(box["hx"], box["hy"], box["vx"] + a.drag * box["vw"], box["hy"])
        time.sleep(0.3)
        Path(a.shot).write_bytes(b.screenshot())


if __name__ == "__main__":
    main()
