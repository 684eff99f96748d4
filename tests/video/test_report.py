"""`vislearn video report`: the run page written at the end of a real training run (class names that
are HTML, the numbers of results.json, the most-confused pairs, contact sheets of real frames), the
evaluation page, self-containedness, and one-line errors."""
import base64
import io
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vislearn.video.actions.evaluate import main as evaluate_main
from vislearn.video.actions.report import main as report_main
from vislearn.video.actions.train import main as train_main
from box_data import make_box_split

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[2]
HOSTILE = 'Pushing <script>alert("x")</script> & "friends" from left to right'


class Page(HTMLParser):
    """Text of every table cell by table id, every <img> src, and every tag seen."""

    def __init__(self, text: str):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[str] = []
        self.tags: set[str] = set()
        self.links: list[str] = []
        self._table, self._cell = None, None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        if tag == "table":
            self._table = self.tables.setdefault(a.get("id") or f"table{len(self.tables)}", [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        elif tag == "img":
            self.images.append(a.get("src", ""))
        elif tag in ("a", "link", "script", "iframe"):
            self.links.append(a.get("href") or a.get("src") or "")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._table:
            self._table[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def decode_image(src: str) -> Image.Image:
    head, data = src.split(",", 1)
    assert head in ("data:image/png;base64", "data:image/jpeg;base64"), head
    im = Image.open(io.BytesIO(base64.b64decode(data)))
    im.load()
    return im


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A real STIN run on a box split whose first class name is HTML, with frame-folder videos."""
    root = tmp_path_factory.mktemp("report")
    split, boxes = make_box_split(root, videos=80)
    old = "Pushing something from left to right"
    labels = json.loads((split / "labels.json").read_text())
    labels = {(HOSTILE if k == old else k): v for k, v in labels.items()}
    (split / "labels.json").write_text(json.dumps(labels))
    for name in ("train.json", "validation.json"):
        recs = json.loads((split / name).read_text())
        for r in recs:
            if r["template"] == "Pushing [something] from left to right":
                r["template"] = HOSTILE  # the class name is the template without brackets
        (split / name).write_text(json.dumps(recs))
    videos = root / "videos"
    for r in json.loads((split / "validation.json").read_text()):  # 8 frames of 427x240 per validation video
        folder = videos / r["id"]
        folder.mkdir(parents=True)
        for i in range(8):
            shade = np.full((240, 427, 3), (40 + 20 * i, 90, 160), np.uint8)
            Image.fromarray(shade).save(folder / f"{i + 1:04d}.jpg")
    out = root / "run"
    assert train_main([f"split={split}", f"boxes={boxes}", f"videos={videos}", "model=stin",
                       "model_args.feature_dim=32", "epochs=2", "batch_size=8", "workers=0", "frame_size=[427,240]",
                       "lr=0.05", "lr_steps=[]", f"out={out}", "log_every=0", "device=cpu"]) == 0
    return out, split, boxes, videos


def test_class_names_are_escaped(run):
    out, *_ = run
    text = (out / "report.html").read_text()
    assert HOSTILE in json.loads((run[1] / "labels.json").read_text())
    assert "<script" not in text.lower()  # no script at all: the class name is text
    assert "&lt;script&gt;" in text
    page = Page(text)
    cells = [c for row in page.tables["per-class"] for c in row]
    assert HOSTILE in cells  # the browser shows the name itself, as text
    assert "script" not in page.tags


def test_run_page_shows_the_run(run):
    out, *_ = run
    text = (out / "report.html").read_text()
    page = Page(text)
    res = json.loads((out / "results.json").read_text())
    ev = res["evaluation"]
    header, row = page.tables["evaluation"][0], page.tables["evaluation"][1]
    got = dict(zip(header, row))
    assert got["top-1"] == f"{100 * ev['top1']:.1f}%" and got["top-5"] == f"{100 * ev['top5']:.1f}%"
    assert got["videos"] == str(ev["videos"])
    # per-class accuracy, best to worst, every class once
    per_class = page.tables["per-class"][1:]
    assert sorted(r[0] for r in per_class) == sorted(ev["per_class"])
    shown = [float(r[2].rstrip("%")) for r in per_class]
    assert shown == sorted(shown, reverse=True)
    # the most confused pairs: the largest off-diagonal cells of the confusion matrix, by class name
    names = list(ev["per_class"])
    cm = np.array(ev["confusion"])
    np.fill_diagonal(cm, 0)
    if cm.max() > 0:
        pairs = page.tables["confused"][1:]
        assert 0 < len(pairs) <= 10
        assert [int(p[2]) for p in pairs] == sorted(cm[cm > 0].tolist(), reverse=True)[:10]
        assert cm[names.index(pairs[0][0]), names.index(pairs[0][1])] == cm.max()
    else:
        assert "No video was confused" in text
    # one row per epoch with its speed
    epochs = page.tables["epochs"][1:]
    assert [r[0] for r in epochs] == ["1", "2"] and all(float(r[-1]) > 0 for r in epochs)
    # curves, 4 contact sheets of real frames (427x240 frames, 8 per sheet), the confusion matrix
    images = [decode_image(src) for src in page.images]
    assert len(images) == 1 + 4 + 1
    assert all(im.width > 100 and im.height > 100 for im in images)
    assert sum(1 for src in page.images if src.startswith("data:image/jpeg")) == 4
    assert "config.yaml" in text and "model: stin" in text


def test_self_contained(run):
    out, *_ = run
    text = (out / "report.html").read_text()
    page = Page(text)
    assert all(src.startswith("data:") for src in page.images)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text)
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    assert not page.links  # no <link>, <script>, <iframe>; a run page has no <a> either


def test_evaluation_page(run, tmp_path, capsys):
    out, split, boxes, videos = run
    ev = tmp_path / "ev"
    assert evaluate_main(["--checkpoint", str(out / "best.pt"), "--workers", "0", "--videos", str(videos),
                          "--out", str(ev)]) == 0
    page = Page((ev / "report.html").read_text())
    res = json.loads((ev / "results.json").read_text())
    summary = res["models"][str(out / "best.pt")]
    row = page.tables["evaluation"][1]
    assert row[2] == f"{100 * summary['top1']:.1f}%" and row[3] == f"{100 * summary['top5']:.1f}%"
    assert len(page.images) == 4  # the contact sheets, with the video folder the evaluation was given


def test_cli_out_and_errors(run, tmp_path, capsys):
    out, *_ = run
    target = tmp_path / "page.html"
    assert report_main([str(out), "--out", str(target)]) == 0
    assert target.read_text().startswith("<!DOCTYPE html>")
    capsys.readouterr()
    assert report_main([str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "missing" in err and "not found" in err
    (tmp_path / "empty").mkdir()
    assert report_main([str(tmp_path / "empty")]) == 2
    assert "not a run, demo, few-shot or evaluation folder" in capsys.readouterr().err
    assert report_main([str(out), "--out", str(tmp_path)]) == 2  # a folder where a file is expected
    assert "expects a file name" in capsys.readouterr().err
    results = (out / "results.json").read_bytes()
    assert report_main([str(out), "--out", str(out / "results.json")]) == 2  # the page's own input
    assert "refusing to overwrite an input" in capsys.readouterr().err
    assert (out / "results.json").read_bytes() == results
    # an existing --out (here the page written above) is replaced only with --overwrite
    target.write_text("a file of the user")
    assert report_main([str(out), "--out", str(target)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err and target.read_text() == "a file of the user"
    assert report_main([str(out), "--out", str(target), "--overwrite"]) == 0
    assert target.read_text().startswith("<!DOCTYPE html>")


def test_module_runs_as_a_command(run, tmp_path):
    out, *_ = run
    r = subprocess.run([sys.executable, "-m", "vislearn.video.actions.report", str(out), "--out", str(tmp_path / "r.html")],
                       capture_output=True, text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "r.html").stat().st_size > 10_000


def test_table_page_counts_a_split_folder_with_the_official_spellings(tmp_path):
    """The data section of a table (demo) page reads its split folders through the split reader: the
    official release's `training.json` / `val.json` and `base_train.json` count as well as ours."""
    data = tmp_path / "data"
    recs = [{"id": str(i), "template": f"Moving [something] {d}", "label": "", "placeholders": [noun]}
            for i, (d, noun) in enumerate([("up", "cup"), ("down", "box"), ("up", "pen"), ("down", "cup"), ("up", "box")])]
    labels = json.dumps({"Moving something up": "0", "Moving something down": "1"})
    comp = data / "splits" / "compositional"
    comp.mkdir(parents=True)
    (comp / "labels.json").write_text(labels)
    (comp / "training.json").write_text(json.dumps(recs[:3]))  # the official spellings
    (comp / "val.json").write_text(json.dumps(recs[3:]))
    few = data / "splits" / "fewshot"
    few.mkdir()
    (few / "base_labels.json").write_text(labels)
    (few / "finetune_labels.json").write_text(json.dumps({"Moving something left": "0"}))
    (few / "base_train.json").write_text(json.dumps(recs[:4]))
    (few / "base_val.json").write_text(json.dumps(recs[4:]))
    (data / "something-something-v2-labels.json").write_text(labels)
    (data / "something-something-v2-train.json").write_text(json.dumps(recs[:3]))
    (data / "something-something-v2-validation.json").write_text(json.dumps(recs[3:]))
    table = tmp_path / "table"
    table.mkdir()
    args = {"data": str(data), "out": str(table), "videos": 5, "width": 96, "height": 96, "data_seed": 0,
            "noun_bias": 0.5, "seeds": [0], "splits": ["compositional"], "shots": [1], "draws": 1}  # `vislearn video table`'s
    (table / "results.json").write_text(json.dumps({"rows": {}, "seeds": [0], "args": args}))
    assert report_main([str(table)]) == 0
    page = Page((table / "report.html").read_text())
    rows = {r[0]: r[1:] for r in page.tables["splits"][1:]}
    assert rows["compositional"] == ["2", "3", "2", "3 in training, 2 in validation"]
    assert rows["few-shot"] == ["2 base, 1 novel", "4", "1", "-"]
