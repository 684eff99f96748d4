"""`vislearn control cycles train-policy PAIR --side source|target --out RUN`: the source policy, or the oracle."""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from vislearn.common.cli import command
from vislearn.common.errors import UserError
from vislearn.common.jsonio import read_json, write_json
from vislearn.common.outputs import claim_folder, session

from .cliargs import PairParser, add_pair_args, resolve_pair
from .pairs import domain_xmls
from .policy import RUN_FILES, train_policy

KIND = "control cycles train-policy"


def build_parser() -> argparse.ArgumentParser:
    p = PairParser(prog="vislearn control cycles train-policy",
               description="PPO (stable-baselines3, RL-Zoo's MuJoCo settings) in one domain of a pair with that "
                           "domain's reward: --side source trains the policy that transfer carries to the target; "
                           "--side target trains the oracle that transfer is measured against. Stops at "
                           "policy_steps or policy_minutes of CPU time. Writes RUN/policy.pt, metrics.jsonl, "
                           "curve.png, results.json (10 evaluation episodes); --resume continues a killed run.")
    add_pair_args(p)
    p.add_argument("--side", choices=("source", "target"), required=True, help="which domain to train in")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--minutes", default=None, help="CPU-time budget (policy_minutes)")
    p.add_argument("--steps", default=None, help="environment steps (policy_steps)")
    p.add_argument("--seed", default=None, help="seed")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--overwrite", action="store_true", help="replace files of the run's names that vislearn did not "
                   "write")
    return p


def run(args: argparse.Namespace) -> int:
    extra = [f"{k}={v}" for k, v in (("policy_minutes", args.minutes), ("policy_steps", args.steps),
                                       ("seed", args.seed)) if v is not None]
    cfg, source = resolve_pair(args, extra)
    xmls = domain_xmls(cfg)
    domain = cfg.domain(args.side)
    if domain.observation != "state":
        raise UserError(f"{cfg.name}: {args.side} sees images; its oracle is the state policy of the same robot "
                        "(train it with --side source)")
    out = Path(args.out)
    with session():
        claim = claim_folder(out, kind=KIND, lock=True, overwrite=args.overwrite)
        if (out / "last.zip").exists() and not args.resume:
            raise UserError(f"{out}: already holds a run (last.zip); pass --resume to continue it or choose another "
                            "--out")
        claim.check(RUN_FILES, args.overwrite)
        config = {"pair": dataclasses.asdict(cfg), "side": args.side, "config_source": source}
        if args.resume and (out / "config.json").exists():
            old = read_json(out / "config.json")
            if old.get("pair", {}).get(args.side) != config["pair"][args.side]:
                raise UserError(f"{out}/config.json: the run was trained in another domain; resume with its pair "
                                "or choose another --out")
        write_json(out / "config.json", config, indent=1)
        from vislearn.common.files import write_text

        write_text(out / "domain.xml", xmls[args.side])
        results = train_policy(domain, xmls[args.side], out, cfg.policy_steps, cfg.policy_minutes, cfg.seed,
                               args.resume, log=lambda s: print(s, flush=True))
        write_json(out / "results.json", results, indent=1)
        from .report import plot_policy_curve

        plot_policy_curve(out / "metrics.jsonl", out / "curve.png", f"{cfg.name} {args.side}: {domain.describe()}")
    print(f"{cfg.name} {args.side}: return {results['return_mean']:.1f} ± {results['return_std']:.1f} over 10 "
          f"episodes after {results['steps']} steps; wrote {out / 'policy.pt'}")
    return 0


main = command(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
