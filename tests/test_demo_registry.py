"""`vislearn demo`: the registry runs each system's quick demo and writes one table and one index page that
links every system's report page. Here with the real Something-Else quick demo on a tiny data set."""
import html
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import vislearn.demo as registry
from vislearn.video.actions.table import quick_demo

TINY = ["--videos", "100", "--width", "96", "--height", "96", "--shots", "1", "--draws", "1", "--workers", "1",
        "epochs=1", "workers=0", "lr_steps=[]", "batch_size=8"]


def tiny_video(data: Path, out: Path, jobs: int):
    return quick_demo(data, out, jobs, extra=TINY)


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    root = tmp_path_factory.mktemp("registry")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(registry, "DEMOS", [registry.QuickDemo("video", "Something-Else <tiny>", f"{__name__}:tiny_video",
                                                          "video/synthetic", 480)])
        assert registry.main(["--data", str(root / "data"), "--out", str(root / "runs")]) == 0
    return root / "runs"


def test_one_table_and_an_index_that_links_each_report(demo_out):
    table = (demo_out / "results.md").read_text()
    header = [c.strip() for c in table.splitlines()[0].strip("|").split("|")]
    assert header == registry.HEADER
    assert "STIN+OIE+NL (boxes): compositional top-1 (%)" in table and "chance" in table
    summary = json.loads((demo_out / "summary.json").read_text())
    video = summary["systems"]["video"]
    assert video["seconds"] > 0 and video["budget_s"] == 480 and len(video["measures"]) >= 4
    page = (demo_out / "index.html").read_text()
    links = re.findall(r'href="([^"]+)"', page)
    assert links and all((demo_out / html.unescape(link)).is_file() for link in links)
    assert "Something-Else &lt;tiny&gt;" in page  # names from code or data are escaped


def test_unknown_system_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "vislearn", "demo", "--systems", "video,nope", "--out", tmp_path / "o"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "nope" in r.stderr
    assert not (tmp_path / "o").exists()
