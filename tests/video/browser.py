"""Headless Chromium for the report tests: the page as a real browser parses, decodes and paints it.

No driver library: one Chromium run gives `--dump-dom` (the DOM after the load event) and `--screenshot`
(a PNG). To read what only the browser knows (did each <img> decode? did anything fail?), the page is
opened as a copy with a small script in front of everything else, which writes the answers into the DOM
at load time and changes nothing on screen; the report itself has no script (its Content-Security-Policy
allows none). Console messages come from Chromium's log (`--enable-logging=stderr`): a self-contained
page has none (a blocked fetch or script logs one).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

INSTALL = "apt-get install -y chromium"  # Debian's package (as root; `sudo` otherwise)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
         "--enable-logging=stderr", "--v=0"]
PROBE = """<script>
window.__failed = [];
addEventListener("error", e => __failed.push(e.target && e.target.tagName ? "cannot load " + e.target.tagName
                                                                              : String(e.message)), true);
addEventListener("load", () => {
  const root = document.documentElement;
  root.setAttribute("data-images", JSON.stringify([...document.images].map(i => [i.complete, i.naturalWidth])));
  root.setAttribute("data-failed", JSON.stringify(__failed));
});
</script>"""


def find_chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


@dataclass
class Loaded:
    dom: str  # the DOM after load, serialised by the browser (probe attributes included)
    images: list[tuple[bool, int]]  # each <img>: (complete, naturalWidth)
    failed: list[str]  # error events seen by the probe (a resource that did not load, a script error)
    console: list[str]  # console messages from Chromium's log


def _console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def _run(browser: str, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout)


def load(page: Path, work: Path, screenshot: Path | None = None, size=(1300, 2400), timeout: float = 60) -> Loaded:
    """Open `page` (as a copy with the probe, in `work`); with `screenshot`, paint it into that PNG."""
    browser = find_chromium()
    assert browser is not None, f"chromium not found; install it with: {INSTALL}"
    text = page.read_text()
    probed = work / f"probed_{page.name}"
    probed.write_text(re.sub(r"<head>", "<head>" + PROBE, text, count=1))  # before the page's CSP: allowed
    shot = [f"--window-size={size[0]},{size[1]}", f"--screenshot={screenshot}"] if screenshot is not None else []
    r = _run(browser, [*shot, "--dump-dom", probed.resolve().as_uri()], timeout)
    assert r.returncode == 0 and (screenshot is None or screenshot.is_file()), r.stderr[-2000:]
    console = _console(r.stderr)
    root = _Root(r.stdout)
    assert root.attrs.get("data-images") is not None, "the probe did not run: " + r.stdout[:300]
    return Loaded(r.stdout, [tuple(x) for x in json.loads(root.attrs["data-images"])],
                  json.loads(root.attrs["data-failed"]), console)


class _Root(HTMLParser):
    def __init__(self, text: str):
        super().__init__()
        self.attrs: dict[str, str] = {}
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "html" and not self.attrs:
            self.attrs = dict(attrs)
