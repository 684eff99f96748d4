"""`python -m vislearn.control.cycles.ship RUN/policy.pt NAME.pt --command "..." [--evaluation EVAL --pair PAIR]`:
copy a trained source policy into `shipped/` for the quick demo and record its sha256, the command that made it
and the commit in shipped/manifest.json; with --evaluation (an `evaluate` folder of the pair), also the pair's
figures the demo compares with: the oracle's return and the full-budget maps / direct fractions of it."""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from vislearn.common.cli import Parser, command
from vislearn.common.files import atomic_path
from vislearn.common.jsonio import read_json, write_json
from vislearn.common.weights import file_sha256

from .policy import load_policy

SHIPPED = Path(__file__).resolve().parent / "shipped"


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m vislearn.control.cycles.ship", description=__doc__.split("\n\n")[0])
    p.add_argument("policy", help="a policy.pt of train-policy")
    p.add_argument("name", help="file name under shipped/, e.g. cheetah-source.pt")
    p.add_argument("--command", required=True, help="the command line that trained it")
    p.add_argument("--evaluation", default=None, help="an evaluate output folder (its results.json) of --pair")
    p.add_argument("--pair", default=None, help="the pair the demo runs with this policy")
    return p


def run(args: argparse.Namespace) -> int:
    load_policy(args.policy)  # a policy file, or one line
    path = SHIPPED / args.name
    with atomic_path(path) as tmp:
        shutil.copyfile(args.policy, tmp)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=SHIPPED).stdout.strip()
    manifest = read_json(SHIPPED / "manifest.json") if (SHIPPED / "manifest.json").exists() else {}
    manifest[args.name] = {"sha256": file_sha256(path), "bytes": path.stat().st_size, "command": args.command,
                           "commit": commit, "source": str(args.policy)}
    if args.evaluation:
        res = read_json(Path(args.evaluation) / "results.json")
        rows = res["rows"]
        manifest.setdefault("figures", {})[args.pair or res["pair"]] = {
            "policy": args.name, "oracle_return": rows["oracle"]["mean"], "episodes": res["episodes"],
            "maps_of_oracle": rows["maps"]["of_oracle"], "direct_of_oracle": rows["direct"]["of_oracle"],
            "seeds": res["seeds"], "evaluation": str(args.evaluation), "oracle": res["oracle"]}
    write_json(SHIPPED / "manifest.json", manifest, indent=1)
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB), sha256 {manifest[args.name]['sha256']}")
    return 0


main = command(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
