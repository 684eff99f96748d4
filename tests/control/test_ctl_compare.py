"""`vislearn control compare`: the grid of bc runs as one table, a plot and a report page; finished cells are kept
when it runs again (a killed comparison continues), and a bad grid is one line. Real demonstrations and training,
state-based cells (no pixels) to stay fast."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vislearn.control.compare import main

ROOT = Path(__file__).resolve().parents[2]
GRID = ["--tasks", "reach", "--encoders", "state_oracle", "--num-demos", "1,2", "--seeds", "0,1", "--eval-episodes",
        "2", "epochs=2", "warmup_epochs=1", "batch_size=16", "threads=1", "device=cpu"]


def test_the_grid_makes_one_table_and_keeps_finished_cells(tmp_path, capsys):
    out, demos = tmp_path / "cmp", tmp_path / "demos"
    assert main(["--out", str(out), "--demos-root", str(demos), *GRID]) == 0
    summary = json.loads((out / "results.json").read_text())
    assert len(summary["cells"]) == 4 and set(summary["table"]) == {"reach|state_oracle|1", "reach|state_oracle|2"}
    for cell in summary["cells"]:
        run = Path(cell["run"])
        assert (run / "policy.pt").is_file() and 0.0 <= cell["success_rate"] <= 1.0
        assert json.loads((run / "config.json").read_text())["num_demos"] == cell["num_demos"]
    table = (out / "results.md").read_text()
    assert table.splitlines()[0] == "| task | encoder | 1 demos | 2 demos |" and "| reach | state_oracle |" in table
    page = (out / "index.html").read_text()
    assert "success.png" in page and (out / "success.png").stat().st_size > 0 and (out / "still_reach.png").is_file()
    assert json.loads((demos / "reach" / "demos.json").read_text())["task"] == "reach"
    # run again: every cell is finished, nothing is trained again
    policies = {c["run"]: Path(c["run"], "policy.pt").stat().st_mtime_ns for c in summary["cells"]}
    capsys.readouterr()
    assert main(["--out", str(out), "--demos-root", str(demos), *GRID]) == 0
    assert "[" not in capsys.readouterr().err  # no "[k/N] ... trained" line
    assert {r: Path(r, "policy.pt").stat().st_mtime_ns for r in policies} == policies
    # a report of a larger grid, training nothing: the cells not run yet are left blank
    grid = [*GRID[:GRID.index("--num-demos")], "--num-demos", "1,2,3", *GRID[GRID.index("--num-demos") + 2:]]
    assert main(["--out", str(out), "--demos-root", str(demos), "--report-only", *grid]) == 0
    assert not (out / "cells" / "reach" / "state_oracle" / "n3-s0").exists()
    assert (out / "results.md").read_text().splitlines()[2].endswith("|  |")


@pytest.mark.parametrize("bad, word", [(["--tasks", "fly"], "fly"), (["--encoders", "nope:x"], "nope:x"),
                                       (["--num-demos", "a,b"], "--num-demos")])
def test_a_bad_grid_is_one_line(tmp_path, bad, word):
    r = subprocess.run([sys.executable, "-m", "vislearn", "control", "compare", "--out", str(tmp_path / "o"),
                        "--demos-root", str(tmp_path / "d"), *GRID, *bad], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and word in r.stderr, r.stderr
    assert not (tmp_path / "o").exists() and not (tmp_path / "d").exists()
