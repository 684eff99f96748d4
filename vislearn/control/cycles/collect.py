"""`vislearn control cycles collect PAIR --out RUN`: random-action transitions in both domains, unpaired.

Writes RUN/config.json (the pair, resolved), RUN/source.xml and RUN/target.xml (the MJCF of each domain) and
RUN/data/{source,target}.npz; image pairs also RUN/data/heldout.npz (frames with their true states, other seeds,
used only to measure the image -> state error). A re-run with --resume keeps the files already complete."""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from vislearn.common.cli import command
from vislearn.common.errors import UserError
from vislearn.common.files import write_text
from vislearn.common.jsonio import read_json, write_json
from vislearn.common.outputs import claim_folder, session

from . import data as datamod
from .cliargs import PairParser, add_pair_args, resolve_pair
from .pairs import PairConfig, check_pair, domain_xmls

KIND = "control cycles"
RUN_FILES = ("config.json", "source.xml", "target.xml", "data/source.npz", "data/target.npz", "data/heldout.npz")
HELDOUT_SEED = 999  # the held-out frames' episodes: a collect seed no run uses


def build_parser() -> argparse.ArgumentParser:
    p = PairParser(prog="vislearn control cycles collect",
               description="Uniform random actions in each domain of a pair, collect_steps transitions each, from "
                           "separate episodes (nothing pairs a source state with a target one). Writes RUN/data/"
                           "{source,target}.npz, the domains' MJCF files and config.json; `fit` then learns the "
                           "correspondence in RUN.")
    add_pair_args(p)
    p.add_argument("--out", required=True, help="run folder (fit, transfer and evaluate use it)")
    p.add_argument("--steps", default=None, help="transitions per domain (collect_steps)")
    p.add_argument("--seed", default=None, help="seed of the episodes and actions (also the fit's seed)")
    p.add_argument("--resume", action="store_true", help="keep the data files already written in --out")
    p.add_argument("--overwrite", action="store_true", help="replace files of the run's names that vislearn did "
                   "not write")
    return p


def collect_run(cfg: PairConfig, out: Path, source: str = "config", resume: bool = False, overwrite: bool = False,
                log=print) -> dict:
    """Collect both domains of `cfg` into the run folder `out`; returns config.json's content."""
    xmls = domain_xmls(cfg)
    sizes = check_pair(cfg, xmls)
    with session():
        claim = claim_folder(out, kind=KIND, lock=True, overwrite=overwrite)
        claim.check(RUN_FILES, overwrite)
        config = {"pair": dataclasses.asdict(cfg), "config_source": source, "sizes": dataclasses.asdict(sizes)}
        if resume and (out / "config.json").exists():
            old = read_json(out / "config.json")
            if {k: v for k, v in old.get("pair", {}).items() if k != "seed"} != \
                    {k: v for k, v in config["pair"].items() if k != "seed"}:
                raise UserError(f"{out}/config.json: the run holds another pair's data; resume with the same pair "
                                "or choose another --out")
        write_json(out / "config.json", config, indent=1)
        for side in ("source", "target"):
            write_text(out / f"{side}.xml", xmls[side])
        jobs = [("source", cfg.seed * 2, cfg.collect_steps), ("target", cfg.seed * 2 + 1, cfg.collect_steps)]
        if sizes.image and cfg.heldout_steps > 0:
            jobs.append(("heldout", HELDOUT_SEED, cfg.heldout_steps))
        for name, seed, steps in jobs:
            path = out / "data" / f"{name}.npz"
            if resume and path.exists():
                log(f"{path}: kept")
                continue
            side = "source" if name == "source" else "target"
            domain = cfg.domain(side)
            from tqdm import tqdm

            with tqdm(total=steps, desc=f"collect {name}", unit="step", leave=False, mininterval=2,
                      disable=None) as bar:
                d = datamod.collect(domain, xmls[side], steps, cfg.episode_steps, seed, bar.update)
            datamod.save(path, d)
            log(f"{name}: {len(d['act'])} transitions in {int(d['episodes'])} episodes of {domain.describe()}")
    return config


def run(args: argparse.Namespace) -> int:
    extra = [f"{k}={v}" for k, v in (("collect_steps", args.steps), ("seed", args.seed)) if v is not None]
    cfg, source = resolve_pair(args, extra)
    collect_run(cfg, Path(args.out), source, args.resume, args.overwrite, log=lambda s: print(s, flush=True))
    print(f"wrote {Path(args.out) / 'data'}; next: vislearn control cycles fit --run {args.out}")
    return 0


main = command(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
