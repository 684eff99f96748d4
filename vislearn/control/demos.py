"""`vislearn control demos --task TASK --episodes N --out DIR`: scripted-expert demonstrations with their frames.

The expert (`envs.ScriptedExpert`, Meta-World's hand-written policy on the full state) runs on seeded episodes;
each successful one is stored as `DIR/episode_NNNNN.npz` (pixels uint8 [T, H, W, 3], proprio float32 [T, 8],
states float64 [T, 39], actions float32 [T, 4], seed): the frame of step t shows the state of step t, and
action t was taken on it. Failed expert episodes are skipped, and seeds are drawn until N are stored.

Seeds: `--seed k` draws DEMO_SEEDS + k * DEMO_SEED_STRIDE, +1, +2, ... (`envs.tasks`: never an evaluation seed).
`DIR/demos.json` says the task, the render settings, the seeds tried and stored, the expert's success count and
the format version; it is rewritten (atomically) after each batch of episodes, so a killed run continues where
it stopped: the episodes it lists are kept, the seeds after the last one tried are run. A folder of another
task or other render settings is refused unless --overwrite (which starts it afresh).

`load_demos(DIR, n)` reads the first n demonstrations back as flat arrays with an episode index (`Demos`)."""
from __future__ import annotations

import argparse
import sys
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vislearn.common.cli import Parser, command, positive_int
from vislearn.common.errors import UserError
from vislearn.common.files import atomic_path
from vislearn.common.jsonio import read_json, write_json
from vislearn.common.outputs import claim_folder

from .envs import RenderSettings, ScriptedExpert, get_task, make_vector_env, run_episodes
from .envs.sawyer import CAMERAS
from .envs.tasks import DEMO_SEED_STRIDE, demo_seed_base

FORMAT = "vislearn-control-demos"
VERSION = 1
KIND = "control demos"
INDEX = "demos.json"
FIELDS = ("pixels", "proprio", "states", "actions")


def episode_file(i: int) -> str:
    return f"episode_{i:05d}.npz"


# ------------------------------------------------------------------------------------------------ recording
def _fresh_index(task: str, render: RenderSettings, seed: int) -> dict:
    return {"format": FORMAT, "version": VERSION, "task": task, "render": asdict(render), "seed": seed,
            "seed_base": demo_seed_base(seed), "requested": 0, "seeds_tried": 0, "expert_successes": 0,
            "episodes": []}


def _check_index(index: dict, out: Path, task: str, render: RenderSettings, seed: int) -> None:
    """A folder started with other settings is not continued (its episodes would mix)."""
    theirs = {"task": index.get("task"), "render": index.get("render"), "seed": index.get("seed")}
    ours = {"task": task, "render": asdict(render), "seed": seed}
    diff = [f"{k} {theirs[k]!r} (asked: {ours[k]!r})" for k in ours if theirs[k] != ours[k]]
    if diff:
        raise UserError(f"{out / INDEX}: demonstrations of {'; '.join(diff)}; choose another --out, or pass "
                        f"--overwrite to start it afresh")


def record_demos(task: str, episodes: int, out: str | Path, render: RenderSettings = RenderSettings(), seed: int = 0,
                 num_envs: int = 2, overwrite: bool = False, log=print, progress: bool = False) -> dict:
    """Store `episodes` successful expert demonstrations in `out` (continuing what is there); returns demos.json."""
    get_task(task)
    render.check()
    out = Path(out)
    claim = claim_folder(out, kind=KIND, lock=True, overwrite=overwrite)
    try:
        return _record(task, episodes, out, render, seed, num_envs, overwrite, log, progress, claim)
    finally:
        claim.release()  # the lock is for writing: a bc or compare reading the folder later must not be refused


def _record(task, episodes, out, render, seed, num_envs, overwrite, log, progress, claim) -> dict:
    index = None
    if (out / INDEX).exists() and not overwrite:
        index = _read_index(out)
        _check_index(index, out, task, render, seed)
    if index is None:
        index = _fresh_index(task, render, seed)
    claim.check([INDEX] + [episode_file(i) for i in range(episodes)], overwrite)
    index["requested"] = max(episodes, len(index["episodes"]))
    stored = index["episodes"]
    if len(stored) >= episodes:
        log(f"{out}: already holds {len(stored)} demonstrations of {task}")
        return index
    if stored:
        log(f"{out}: continuing after {len(stored)} stored demonstrations ({index['seeds_tried']} seeds tried)")
    expert = ScriptedExpert(task)
    num_envs = max(1, min(num_envs, episodes - len(stored)))
    vec = make_vector_env(task, num_envs, pixels=True, render=render)
    from tqdm import tqdm

    bar = tqdm(total=episodes, initial=len(stored), desc=f"demos {task}", unit="ep", disable=not progress)
    try:
        while len(stored) < episodes:
            need = episodes - len(stored)
            if index["seeds_tried"] + need > DEMO_SEED_STRIDE:
                raise UserError(f"{task}: the expert failed too often ({index['expert_successes']} of "
                                f"{index['seeds_tried']} seeds); no more demonstration seeds for --seed {seed}")
            first = index["seed_base"] + index["seeds_tried"]
            seeds = list(range(first, first + max(need, num_envs)))
            done = run_episodes(vec, lambda obs: expert(obs["state"]), seeds, keep=True)
            for ep in done:  # in seed order: the stored set is the first N successes, however many processes ran
                if len(stored) >= episodes:
                    break
                index["seeds_tried"] += 1
                if not ep.success:
                    continue
                index["expert_successes"] += 1
                name = episode_file(len(stored))
                with atomic_path(out / name) as tmp:
                    np.savez_compressed(tmp, seed=np.int64(ep.seed), **ep.arrays())
                stored.append({"file": name, "seed": ep.seed, "length": ep.length})
                bar.update(1)
            write_json(out / INDEX, index, indent=1)
    finally:
        bar.close()
        vec.close()
    write_json(out / INDEX, index, indent=1)
    rate = index["expert_successes"] / max(1, index["seeds_tried"])
    log(f"{out}: {len(stored)} demonstrations of {task} ({sum(e['length'] for e in stored)} frames at "
        f"{render.size} px); the expert succeeded on {index['expert_successes']} of {index['seeds_tried']} seeds "
        f"({rate:.0%})")
    return index


# -------------------------------------------------------------------------------------------------- loading
@dataclass
class Demos:
    """The first n demonstrations of a folder, flat over their steps (`episode[i]`: which one step i is of)."""

    task: str
    render: RenderSettings
    proprio: np.ndarray  # float32 [T, 8]
    states: np.ndarray  # float64 [T, 39]
    actions: np.ndarray  # float32 [T, 4]
    episode: np.ndarray  # int64 [T]
    seeds: list[int]
    files: list[str]
    pixels: np.ndarray | None = None  # uint8 [T, H, W, 3] (None when not asked for)

    def __len__(self) -> int:
        return len(self.actions)


def _read_index(folder: Path) -> dict:
    path = folder / INDEX
    if not folder.is_dir():
        raise UserError(f"{folder}: demonstrations folder not found")
    if not path.is_file():
        raise UserError(f"{folder}: not a demonstrations folder (no {INDEX}; `vislearn control demos` writes one)")
    index = read_json(path)
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise UserError(f"{path}: not a demonstrations index of `vislearn control demos`")
    if not isinstance(index.get("version"), int) or index["version"] > VERSION:
        raise UserError(f"{path}: demonstrations format version {index.get('version')!r} is newer than this tool "
                        f"reads ({VERSION})")
    if index.get("task") not in _tasks() or not isinstance(index.get("episodes"), list):
        raise UserError(f"{path}: damaged demonstrations index (task or episodes)")
    return index


def _tasks():
    from .envs.tasks import TASKS

    return TASKS


def demos_info(folder: str | Path) -> dict:
    """demos.json of `folder` (checked: a demonstrations folder of a known task)."""
    return _read_index(Path(folder))


def load_demos(folder: str | Path, n: int | None = None, pixels: bool = True, task: str | None = None) -> Demos:
    """The first `n` (default all) demonstrations of `folder`; refused in one line when it is not a demonstrations
    folder, holds fewer than `n`, is of another task than `task`, or an episode file is missing or damaged."""
    folder = Path(folder)
    index = _read_index(folder)
    if task is not None and index["task"] != task:
        raise UserError(f"{folder}: demonstrations of task {index['task']!r}, not {task!r}")
    listed = index["episodes"]
    if n is None:
        n = len(listed)
    if n < 1 or len(listed) < n:
        raise UserError(f"{folder}: holds {len(listed)} demonstrations, {n} asked for (run `vislearn control demos "
                        f"--episodes {n}` on it to add more)")
    parts: dict[str, list] = {k: [] for k in FIELDS}
    seeds, files = [], []
    for entry in listed[:n]:
        path = folder / str(entry["file"])
        try:
            with np.load(path) as z:
                for k in FIELDS if pixels else FIELDS[1:]:
                    parts[k].append(z[k])
                seed = int(z["seed"])
        except FileNotFoundError:
            raise UserError(f"{path}: demonstration file not found (listed in {INDEX})") from None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            raise UserError(f"{path}: damaged demonstration file ({type(e).__name__}); record it again with "
                            f"`vislearn control demos --overwrite`") from None
        lengths = {len(parts[k][-1]) for k in (FIELDS if pixels else FIELDS[1:])}
        if lengths != {int(entry["length"])} or seed != int(entry["seed"]):
            raise UserError(f"{path}: does not match {INDEX} (length or seed); record it again")
        seeds.append(seed)
        files.append(str(entry["file"]))
    lengths = [len(a) for a in parts["actions"]]
    return Demos(task=index["task"], render=RenderSettings(**index["render"]),
                 proprio=np.concatenate(parts["proprio"]).astype(np.float32),
                 states=np.concatenate(parts["states"]).astype(np.float64),
                 actions=np.concatenate(parts["actions"]).astype(np.float32),
                 episode=np.repeat(np.arange(n), lengths), seeds=seeds, files=files,
                 pixels=np.concatenate(parts["pixels"]) if pixels else None)


# ---------------------------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn control demos",
               description="Record demonstrations of a task's scripted expert (Meta-World's policy on the full state) "
                           "with the frames a pixel policy sees: one file per successful episode, plus demos.json. "
                           "Seeds never overlap evaluation seeds (DEMO_SEEDS in vislearn/control/envs/tasks.py). "
                           "A killed run continues when run again with the same arguments.")
    p.add_argument("--task", required=True, help=f"one of {', '.join(_tasks())}")
    p.add_argument("--episodes", type=positive_int, required=True, help="successful demonstrations to store")
    p.add_argument("--out", required=True, help="demonstrations folder")
    p.add_argument("--size", type=int, default=96, help="frame side in pixels (default 96)")
    p.add_argument("--camera", default="front", help=f"camera: {', '.join(CAMERAS)} (default front)")
    p.add_argument("--shadows", default="fast", help="fast (default), default or off")
    p.add_argument("--seed", type=int, default=0, help=f"demo seed k: environment seeds from 1,000,000 + k x "
                   f"{DEMO_SEED_STRIDE:,} (default 0)")
    p.add_argument("--num-envs", type=positive_int, default=2, help="environments in parallel processes (default 2)")
    p.add_argument("--overwrite", action="store_true", help="start the folder afresh (another task or render "
                   "settings), replacing files vislearn did not write")
    return p


def run(args: argparse.Namespace) -> int:
    if args.seed < 0:
        raise UserError(f"--seed: expected 0 or more, got {args.seed}")
    get_task(args.task, where="--task")
    render = RenderSettings(size=args.size, camera=args.camera, shadows=args.shadows).check()
    record_demos(args.task, args.episodes, args.out, render, args.seed, args.num_envs, args.overwrite,
                 progress=sys.stderr.isatty())
    return 0


main = command(build_parser, run)


if __name__ == "__main__":
    sys.exit(main())
