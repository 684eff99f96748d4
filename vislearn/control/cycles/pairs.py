"""A pair of domains, its fixed joint assignment, and the settings of every step of the method, from one YAML.

Named pairs are `configs/control/cycles/<name>.yaml` (they extend `defaults.yaml` with `base:`); any other YAML of
the same keys, or two MJCF files on the command line, define a new pair.

The joint assignment says which coordinate of one robot is which of the other:
- `state_assignment[i]`: the index in the target's observation of the source's observation i;
- `action_assignment[j]`: the source action that drives the target's action j.
Equal sizes default to the identity. It is the baseline that lets direct transfer act at all across
morphologies, and the point the learned maps start from (they learn a residual on top of it)."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from vislearn.common.errors import UserError
from vislearn.common.validate import load_settings, setting

from .domains import Domain, compile_xml, make_env, variant_xml

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "control" / "cycles"
DOMAIN_KEYS = {f.name for f in dataclasses.fields(Domain)}


@dataclass
class PairConfig:
    name: str = "pair"
    source: dict = field(default_factory=dict)
    target: dict = field(default_factory=dict)
    state_assignment: list[int] = field(default_factory=list)
    action_assignment: list[int] = field(default_factory=list)
    # collect: random-action transitions in each domain (unpaired)
    collect_steps: int = setting(50_000, min=1000)
    episode_steps: int = setting(1000, min=10)
    heldout_steps: int = setting(2000, min=0)
    # forward models
    forward_hidden: list[int] = setting(factory=lambda: [256, 256])
    forward_steps: int = setting(5000, min=0)
    # maps
    map_hidden: list[int] = setting(factory=lambda: [256, 256])
    disc_hidden: list[int] = setting(factory=lambda: [256, 64])
    rounds: int = setting(2, min=1)
    steps_per_phase: int = setting(1000, min=1)
    batch_size: int = setting(256, min=8)
    lr: float = setting(1e-4, min=0.0)
    lr_forward: float = setting(1e-3, min=0.0)
    lambda_dynamics: float = setting(20.0, min=0.0)
    lambda_back: float = setting(10.0, min=0.0)
    lambda_adv: float = setting(1.0, min=0.0)
    learn_actions: bool = True
    eval_every: int = setting(0, min=0)
    eval_episodes: int = setting(3, min=1)
    # policies (source policy and oracle)
    policy_algo: str = setting("ppo", choices=("ppo", "sac"))
    policy_minutes: float = setting(8.0, min=0.0)
    policy_steps: int = setting(2_000_000, min=1000)
    seed: int = setting(0, min=0)

    def domain(self, side: str) -> Domain:
        values = getattr(self, side)
        unknown = set(values) - DOMAIN_KEYS
        if unknown:
            raise UserError(f"{side}: unknown key {sorted(unknown)[0]!r}; valid keys: {', '.join(sorted(DOMAIN_KEYS))}")
        d = Domain(**values)
        if not isinstance(d.mass, dict) or not isinstance(d.copy_body, list):
            raise UserError(f"{side}: mass must be a mapping BODY: factor and copy_body a list")
        if d.observation not in ("state", "image"):
            raise UserError(f"{side}: observation: {d.observation!r} is not state or image")
        return d


@dataclass
class Sizes:
    source_obs: int
    source_act: int
    target_obs: int
    target_act: int
    image: bool


def load_pair(name_or_path: str | os.PathLike, overrides=()) -> tuple[PairConfig, str]:
    """A named pair (`configs/control/cycles/NAME.yaml`) or a YAML path, then key=value overrides."""
    path = Path(name_or_path)
    if not str(name_or_path).endswith((".yaml", ".yml")):
        path = CONFIGS / f"{name_or_path}.yaml"
        if not path.is_file():
            names = sorted(p.stem for p in CONFIGS.glob("*.yaml") if p.stem != "defaults")
            raise UserError(f"pair {name_or_path!r}: no such named pair; choose one of {', '.join(names)} "
                            "or give a YAML file")
    cfg = load_settings(PairConfig(), path, list(overrides))
    return cfg, str(path)


def pair_from_xml(source_xml: str, target_xml: str, task: str, overrides=()) -> tuple[PairConfig, str]:
    """A new pair from two MJCF files of one task (the defaults' settings)."""
    cfg = load_settings(PairConfig(), CONFIGS / "defaults.yaml", list(overrides))
    cfg.name = f"{Path(source_xml).stem}-to-{Path(target_xml).stem}"
    cfg.source = {"task": task, "xml": str(Path(source_xml).resolve())}
    cfg.target = {"task": task, "xml": str(Path(target_xml).resolve())}
    return cfg, "command line"


def domain_xmls(cfg: PairConfig) -> dict[str, str]:
    """The MJCF text of both domains, each checked to compile (one line naming the file otherwise)."""
    out = {}
    for side in ("source", "target"):
        d = cfg.domain(side)
        where = f"{side} ({d.xml or d.task})"
        text = variant_xml(d, where)
        compile_xml(text, d.xml or where)
        out[side] = text
    return out


def check_pair(cfg: PairConfig, xmls: dict[str, str]) -> Sizes:
    """The observation and action sizes of both domains, with the assignments checked against them."""
    sizes = {}
    for side in ("source", "target"):
        d = cfg.domain(side)
        env = make_env(dataclasses.replace(d, observation="state"), xmls[side], f"{side} ({d.xml or d.task})")
        sizes[side] = (env.observation_space.shape[0], env.action_space.shape[0])
        env.close()
    (so, sa), (to, ta) = sizes["source"], sizes["target"]
    image = cfg.domain("target").observation == "image" or cfg.domain("source").observation == "image"
    if cfg.domain("source").observation == "image":
        raise UserError(f"{cfg.name}: source: observation image is not supported (the policy acts on states; "
                        "images go on the target side)")
    if ta != sa and not cfg.action_assignment:
        raise UserError(f"{cfg.name}: the source has {sa} actions and the target {ta}: a pair whose action sizes "
                        "differ needs action_assignment (for each target action, the source action that drives it)")
    if to != so and not cfg.state_assignment and not image:
        raise UserError(f"{cfg.name}: the source observes {so} numbers and the target {to}: a pair whose state "
                        "sizes differ needs state_assignment (for each source coordinate, its index in the target's)")
    if cfg.action_assignment and (len(cfg.action_assignment) != ta
                                  or any(not 0 <= i < sa for i in cfg.action_assignment)):
        raise UserError(f"{cfg.name}: action_assignment must list {ta} source action indices in 0..{sa - 1}, "
                        f"got {cfg.action_assignment}")
    if cfg.state_assignment and (len(cfg.state_assignment) != so
                                 or any(not 0 <= i < to for i in cfg.state_assignment)):
        raise UserError(f"{cfg.name}: state_assignment must list {so} target observation indices in 0..{to - 1}, "
                        f"got {cfg.state_assignment}")
    return Sizes(so, sa, to, ta, image)


def assignments(cfg: PairConfig, sizes: Sizes) -> tuple[list[int], list[int]]:
    """The state and action assignments, identity where the config leaves them out."""
    state = list(cfg.state_assignment) or list(range(sizes.source_obs))
    action = list(cfg.action_assignment) or list(range(sizes.target_act))
    return state, action
