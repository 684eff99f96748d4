"""`python -m vislearn.control.humanoid.ship RUN/policy.pt NAME.pt --command "..."`: copy a trained policy into
`shipped/` for the quick demo (a student's critic dropped: only training needs it; a teacher keeps its own, which
students start from) and record its sha256, the command that made it and the commit in shipped/manifest.json."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from vislearn.common.checkpoint import read_torch_file
from vislearn.common.cli import Parser, command
from vislearn.common.jsonio import read_json, write_json
from vislearn.common.weights import file_sha256

from .policy_file import save_policy

SHIPPED = Path(__file__).resolve().parent / "shipped"


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m vislearn.control.humanoid.ship", description=__doc__.split("\n\n")[0])
    p.add_argument("policy", help="a policy.pt of train-teacher / train-student")
    p.add_argument("name", help="file name under shipped/, e.g. walker2d-transformer.pt")
    p.add_argument("--command", required=True, help="the command line that trained it")
    return p


def run(args: argparse.Namespace) -> int:
    state = read_torch_file(args.policy, "policy file")
    if state.get("arch") != "teacher":
        state["critic"] = {}
    path = SHIPPED / args.name
    save_policy(path, state)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=SHIPPED).stdout.strip()
    manifest = read_json(SHIPPED / "manifest.json") if (SHIPPED / "manifest.json").exists() else {}
    manifest[args.name] = {"sha256": file_sha256(path), "bytes": path.stat().st_size, "command": args.command,
                           "commit": commit, "source": str(args.policy)}
    write_json(SHIPPED / "manifest.json", manifest, indent=1)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB), sha256 {manifest[args.name]['sha256']}")
    return 0


main = command(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
