"""`vislearn control evaluate POLICY`: the success rate of a saved policy (`policy.pt` of `bc` / `ppo`) over
seeded episodes, on the observations it was trained on (its render size, camera and encoder come from the file).

Episode k starts from seed `--seed-base` + k (default: the evaluation seeds, `EVAL_SEEDS` of `envs/tasks.py`, apart
from the seeds demonstrations are recorded on), so two policies evaluated with the same flags meet the same starts,
however many processes run them. Prints one table line; `--out` writes the per-episode results as JSON."""
from __future__ import annotations

import argparse
import sys
import time

from vislearn.common.cli import Parser, command, positive_int


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn control evaluate", description=__doc__.split("\n\n")[0],
               formatter_class=argparse.RawDescriptionHelpFormatter,
               epilog="example: vislearn control evaluate runs/bc/reach/policy.pt --episodes 50 --out eval.json")
    p.add_argument("policy", metavar="POLICY", help="a policy file (policy.pt) of `vislearn control bc` or `ppo`")
    p.add_argument("--episodes", type=positive_int, default=20, help="episodes, one seed each (default 20)")
    p.add_argument("--num-envs", type=positive_int, default=None, help="environments, each in its own process when "
                   "more than one (default 2 for a policy on pixels, 1 on states: without rendering a step costs less "
                   "than the hop to a process); results do not depend on it")
    p.add_argument("--seed-base", type=int, default=None, help="the first episode's seed (default: the evaluation "
                   "seeds, apart from the demonstrations')")
    p.add_argument("--out", metavar="FILE.json", help="write the results (per episode too) as JSON")
    p.add_argument("--overwrite", action="store_true", help="replace an --out file vislearn did not write")
    return p


def run(args: argparse.Namespace) -> int:
    from vislearn.common.files import input_file, new_output_file
    from vislearn.common.jsonio import write_json
    from vislearn.control.agent import load_agent
    from vislearn.control.envs.tasks import EVAL_SEEDS
    from vislearn.control.rollouts import evaluate_policy

    input_file(args.policy, "policy file", "a policy file (policy.pt)")
    if args.out:
        new_output_file(args.out, [args.policy], args.overwrite)
    agent, ckpt = load_agent(args.policy)
    seed_base = EVAL_SEEDS if args.seed_base is None else args.seed_base
    done = [0]

    def progress(_episode) -> None:
        done[0] += 1
        if sys.stderr.isatty():
            print(f"\repisodes {done[0]}/{args.episodes}", end="", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    num_envs = args.num_envs or (2 if agent.encoder is not None else 1)
    stats = evaluate_policy(agent, agent.task, args.episodes, num_envs, seed_base, on_episode=progress)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    successes = sum(e["success"] for e in stats["per_episode"])
    per_episode = stats.pop("per_episode")
    result = {"policy": str(args.policy), "task": agent.task, "method": ckpt.get("method"), "encoder": agent.spec,
              "render": ckpt.get("render"), "num_envs": num_envs, **stats, "successes": successes,
              "seconds": round(time.perf_counter() - t0, 2), "per_episode": per_episode}
    print(f"{agent.task}  {ckpt.get('method')}  {agent.spec}  success {stats['success_rate']:.2f} "
          f"({successes}/{stats['episodes']})  mean length {stats['mean_length']:.1f}  "
          f"seeds {seed_base}..{seed_base + args.episodes - 1}")
    if args.out:
        write_json(args.out, result, indent=1)
    return 0


main = command(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
