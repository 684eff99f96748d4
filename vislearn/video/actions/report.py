"""`vislearn video report PATH [--out report.html]`: one self-contained HTML page per output folder.

PATH is a run folder of `vislearn video train`, a table folder (`vislearn video table`, `make demo`,
`make table-full`), an output folder of `vislearn video fewshot` or the `--out` folder of `vislearn video
evaluate`; the page goes to PATH/report.html unless --out says otherwise. A page vislearn wrote is
replaced; any other file of that name (or an existing --out) only with --overwrite. The page needs nothing but a
browser: the plots are PNG data URIs, there is no script and nothing is fetched (the pages are built in
`report_pages`, the figures in `figures`). The table, train, fewshot and `evaluate --out` write it at the
end of their run.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vislearn.common.cli import Parser, command
from vislearn.common.errors import UserError
from vislearn.common.files import write_text
from vislearn.common.text import printable


def page_kind(folder: Path) -> str:
    """Which page a folder gets: table (the demo), fewshot, evaluation or run."""
    from vislearn.common.jsonio import read_json

    if (folder / "fewshot_results.json").is_file():
        return "fewshot"
    if (folder / "results.json").is_file():
        results = read_json(folder / "results.json")
        if isinstance(results, dict):
            if "rows" in results:
                return "table"
            if "models" in results:
                return "evaluation"
            if "model" in results or "evaluation" in results:  # a training run, a few-shot stage
                return "run"
    raise UserError(f"{folder}: not a run, demo, few-shot or evaluation folder (no results.json of "
                    f"vislearn video train, vislearn video table or vislearn video evaluate, no fewshot_results.json)")


def _a_page_of_ours(path: Path) -> bool:
    """Whether `path` begins as the pages of `html_page.page` do (its Content-Security-Policy line): a page
    vislearn wrote before output folders had manifests, which a new report may replace."""
    from .html_page import CSP

    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    return head.startswith(b"<!DOCTYPE html>") and f'content="{CSP}"'.encode() in head


def write_report(path: str | Path, out: str | Path | None = None, overwrite: bool = False) -> Path:
    """Write the HTML page of the output folder `path` (default `path`/report.html); returns where. An
    existing page is replaced when vislearn wrote it (`vislearn.common.outputs`), any other file only
    with `overwrite` (the user's own report.html in a run folder, or another --out)."""
    from vislearn.common.files import new_output_file
    from vislearn.common.outputs import claim_folder

    from . import report_pages

    folder = Path(path)
    if not folder.exists():
        raise UserError(f"{folder}: not found")
    if not folder.is_dir():
        raise UserError(f"{folder}: is a file, expected an output folder (run, demo, few-shot or evaluation)")
    if out:  # the page reads the folder's results, metrics, configs and figures: none may become the page
        target = new_output_file(out, [p for p in folder.rglob("*") if p.suffix != ".html" and p.is_file()], overwrite)
    else:  # a guest in the command's folder: no kind of its own
        claim = claim_folder(folder, ["report.html"], overwrite=overwrite, flag="PATH",
                             adopt=_a_page_of_ours(folder / "report.html"))
        target = folder / "report.html"
    try:
        kind = page_kind(folder)
        build = {"table": report_pages.table_page, "run": report_pages.run_page, "fewshot": report_pages.fewshot_page,
                 "evaluation": report_pages.evaluation_page}[kind]
        text = build(folder, target)
        write_text(target, text)
    finally:
        if not out:
            claim.release()  # ends only a claim of its own (inside a training's, the training's goes on)
    return target


def report_at_end(folder: str | Path, log=print) -> Path | None:
    """The end-of-run hook of the commands: write folder/report.html, and say so. A report that
    cannot be made is a warning: the run's results are already written and stay valid."""
    try:
        path = write_report(folder)
    except Exception as e:  # noqa: BLE001 - never lose a finished run to its report
        print(printable(f"warning: no report.html for {folder}: {type(e).__name__}: {e}"), file=sys.stderr)
        return None
    log(printable(f"report: {path}"))
    return path


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn video report", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", metavar="PATH", help="a run, demo, few-shot or evaluation output folder")
    p.add_argument("--out", help="the HTML file to write (default PATH/report.html)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out (or PATH/report.html) when it exists and vislearn did not write it")
    return p


def _report(args) -> int:
    print(f"wrote {write_report(args.path, args.out, args.overwrite)}")
    return 0


main = command(build_parser, _report)


if __name__ == "__main__":
    sys.exit(main())
