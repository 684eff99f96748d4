"""`vislearn demo` (`make demo`): every system's quick demo on embedded data, one table, one report page.

`DEMOS` is the one registry: each later family adds its system's row here (a function of its own that
takes a data folder, an output folder and a number of processes, and returns a `DemoOutcome`). Systems
run one after another; each uses both cores itself (independent trainings in parallel processes with one
thread each). The table says, per system, what was measured, the value, the reference (the paper's figure
or chance) and the seconds it took next to its budget; `OUT/index.html` links every system's report page.
Everything a demo trains is resumable: running `make demo` again reuses what is finished.
"""
from __future__ import annotations

import argparse
import html
import importlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from vislearn.common.cli import Parser, command, positive_int
from vislearn.common.demo import DemoOutcome
from vislearn.common.errors import UserError
from vislearn.common.files import output_folder, write_text
from vislearn.common.outputs import claim_folder
from vislearn.common.jsonio import write_json
from vislearn.common.tables import format_table


@dataclass(frozen=True)
class QuickDemo:
    key: str  # the name `--systems` takes, and the subfolder of --data and --out
    system: str
    run: str  # "module:function"; the function takes (data, out, jobs) and returns a DemoOutcome
    data: str  # its data folder under --data
    budget_s: int  # seconds on a 2-core machine (the budgets of the issues)
    prepare: str = ""  # "module:function" taking the data folder: makes data another family owns, if missing


DEMOS = [
    QuickDemo("video", "Something-Else: STIN, scene stream, fusion (CVPR 2020)",
              "vislearn.video.actions.table:quick_demo", "video/synthetic", 480),
    QuickDemo("mae", "MAE pre-training (MVP's encoder) on hand-object frames, linear probe",
              "vislearn.pretrain.demo:quick_demo", "video/synthetic", 120,
              prepare="vislearn.video.actions.table:demo_data"),
    QuickDemo("repr", "ReSim, LooC and metric learning against their baselines (tiny budget)",
              "vislearn.pretrain.contrastive.demo:quick_demo", "pretrain", 180),
    QuickDemo("segment", "Segment Anything: promptable masks on renders with parts (ICCV 2023)",
              "vislearn.segment.demo:quick_demo", "segment/synthetic", 120),
    QuickDemo("control", "MVP: behaviour cloning from pixels with frozen encoders (MuJoCo, Meta-World reach)",
              "vislearn.control.demo:quick_demo", "control/demos", 120),
    QuickDemo("humanoid", "Locomotion with a causal transformer: shipped Walker2d students on held-out dynamics",
              "vislearn.control.humanoid.demo:quick_demo", "control/humanoid", 90),
    QuickDemo("cycles", "Dynamics cycles: a policy carried to a robot with other physics through learned maps",
              "vislearn.control.cycles.demo:quick_demo", "control/cycles", 90),
]


def selected(spec: str | None) -> list[QuickDemo]:
    if not spec or spec == "all":
        return list(DEMOS)
    keys = [k.strip() for k in spec.split(",") if k.strip()]
    known = {d.key: d for d in DEMOS}
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise UserError(f"--systems: unknown system {', '.join(map(repr, unknown))}; choose from {', '.join(known)}")
    return [known[k] for k in keys]


def _function(spec: str):
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


def run_one(demo: QuickDemo, data: Path, out: Path, jobs: int) -> tuple[DemoOutcome, float]:
    """Run one system's demo; its data is prepared first (not counted in its seconds) where another family owns it."""
    if demo.prepare:
        _function(demo.prepare)(data / demo.data)
    fn = _function(demo.run)
    t = time.perf_counter()
    outcome = fn(data / demo.data, out / demo.key, jobs)
    return outcome, time.perf_counter() - t


def table_rows(results: list[tuple[QuickDemo, DemoOutcome, float]]) -> list[list[str]]:
    rows = []
    for demo, outcome, seconds in results:
        for i, m in enumerate(outcome.measures):
            rows.append([demo.system if i == 0 else "", m.measured, m.value, m.reference,
                         f"{seconds:.0f} (budget {demo.budget_s})" if i == 0 else ""])
    return rows


HEADER = ["system", "measured", "value", "reference or chance", "seconds"]


def index_page(results: list[tuple[QuickDemo, DemoOutcome, float]], out: Path, total: float) -> str:
    """One static page: the table, each system's notes and a link to its report page (paths relative to OUT)."""
    e = html.escape
    body = []
    for demo, outcome, seconds in results:
        rel = os.path.relpath(outcome.report, out)
        cells = "".join(f"<tr><td>{e(m.measured)}</td><td>{e(m.value)}</td><td>{e(m.reference)}</td></tr>"
                        for m in outcome.measures)
        notes = "".join(f"<li>{e(n.lstrip('- '))}</li>" for n in outcome.notes)
        body.append(f"<h2>{e(demo.system)}</h2><p>{seconds:.0f} s (budget {demo.budget_s} s) · "
                    f"<a href=\"{e(rel)}\">report page</a></p>"
                    f"<table><tr><th>measured</th><th>value</th><th>reference or chance</th></tr>{cells}</table>"
                    + (f"<ul>{notes}</ul>" if notes else ""))
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}")
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>vislearn demo</title><style>{style}</style>"
            f"</head><body><h1>vislearn: every system's quick demo</h1><p>{total:.0f} s in all.</p>"
            + "".join(body) + "</body></html>\n")


def _demo_summary(path: Path) -> bool:
    """Whether `path` is the summary.json of a demo (a folder of an earlier version, made before manifests)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and isinstance(data.get("systems"), dict)


def demo(args) -> int:
    demos = selected(args.systems)
    data, out = output_folder(args.data, "--data"), output_folder(args.out, "--out")
    # its own files (a folder of an earlier version, with summary.json and no manifest, taken as it is);
    # each system's subfolder is claimed by the system's demo
    claim_folder(out, ["results.md", "summary.json", "index.html"], kind="demo", overwrite=args.overwrite,
                 adopt=_demo_summary(out / "summary.json"))
    t0 = time.perf_counter()
    results = []
    for d in demos:
        print(f"== {d.key}: {d.system}", flush=True)
        outcome, seconds = run_one(d, data, out, args.jobs)
        results.append((d, outcome, seconds))
    total = time.perf_counter() - t0
    text = format_table(table_rows(results), HEADER)
    print("\n" + text + f"\n\n{total:.0f} s in all.")
    write_text(out / "results.md", text + f"\n\n{total:.0f} s in all.\n")
    write_json(out / "summary.json", {"seconds": total, "systems": {
        d.key: {"system": d.system, "seconds": s, "budget_s": d.budget_s, "report": str(o.report),
                "measures": [vars(m) for m in o.measures], "notes": o.notes} for d, o, s in results}}, indent=1)
    write_text(out / "index.html", index_page(results, out, total))
    print(f"report: {out / 'index.html'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data", help="data folder; each system's embedded data is made under it")
    p.add_argument("--out", default="runs/demo", help="output folder: one subfolder per system, the table, index.html")
    p.add_argument("--systems", default="all",
                   help=f"comma-separated systems to run (default all: {', '.join(d.key for d in DEMOS)})")
    p.add_argument("--jobs", type=positive_int, default=2, help="processes each system trains with (default 2)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace files of the demo's names in --out that vislearn did not write")
    return p


main = command(build_parser, demo)


if __name__ == "__main__":
    sys.exit(main())
