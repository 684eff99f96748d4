"""A domain: one gymnasium MuJoCo task on a stock model, an edited copy of it, or a user's MJCF, seen as states or as
pixels.

Variants are MJCF files, not models patched after compiling, so each one can be opened, diffed and loaded by any
MuJoCo tool. An edit works on the XML tree of the stock file (gymnasium's assets) and says exactly what it changes:

- `armature: K` multiplies every joint armature the file sets (in `<default>` classes and on joints), so every
  hinge that had armature a now has K·a; joints with none keep none;
- `mass: {BODY: K, ...}` multiplies the density (or the explicit mass) of the geoms of those bodies, which with
  `inertiafromgeom` multiplies the body's mass and inertia by K (files with `settotalmass` rescale all bodies
  afterwards, so use it on models without it, e.g. Hopper);
- `copy_body: [{body, parent, pos, prefix}]` adds a copy of a body's subtree (a leg, a segment) under `parent` at
  `pos`, every name prefixed, and one motor per copied joint with the original's settings, after the others.

The env is gymnasium's own class for the task (`xml_file=`), so reward, termination and observation are the task's.
`observation: image` renders the task's tracking camera instead: the last `frames` grey frames of `image_size`²
pixels, uint8 [frames, H, W]. The true state stays in `info["state"]`, for measuring a state estimate only."""
from __future__ import annotations

import copy
import os
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from vislearn.control.envs.gl import choose_gl

choose_gl()  # before gymnasium imports mujoco: MuJoCo reads MUJOCO_GL once, at import

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

from vislearn.common.errors import UserError  # noqa: E402

TASKS = {"HalfCheetah-v5": "half_cheetah.xml", "Hopper-v5": "hopper.xml", "Swimmer-v5": "swimmer.xml",
         "Walker2d-v5": "walker2d_v5.xml", "Ant-v5": "ant.xml", "Reacher-v5": "reacher.xml",
         "InvertedPendulum-v5": "inverted_pendulum.xml"}
NAMED_TAGS = ("body", "joint", "geom", "site", "camera", "light")


def stock_xml(task: str) -> Path:
    """gymnasium's MJCF file of a task."""
    if task not in TASKS:
        raise UserError(f"task {task!r}: not a MuJoCo task vislearn knows; choose one of {', '.join(TASKS)}")
    import gymnasium.envs.mujoco as gm

    return Path(gm.__file__).parent / "assets" / TASKS[task]


@dataclass
class Domain:
    """One side of a pair. `xml` (a user's MJCF) replaces the task's stock file; `edits` then change it."""
    task: str = "HalfCheetah-v5"
    xml: str | None = None
    armature: float | None = None
    mass: dict = field(default_factory=dict)
    copy_body: list = field(default_factory=list)
    observation: str = "state"  # state | image
    image_size: int = 64
    frames: int = 3

    def describe(self) -> str:
        parts = [Path(self.xml).name if self.xml else self.task]
        if self.armature is not None:
            parts.append(f"armature x{self.armature:g}")
        parts += [f"{b} mass x{k:g}" for b, k in self.mass.items()]
        parts += [f"+{c['prefix']}{c['body']}" for c in self.copy_body]
        if self.observation == "image":
            parts.append(f"{self.frames}x{self.image_size}px images")
        return ", ".join(parts)


def _parse(path: Path, where: str) -> ET.ElementTree:
    try:
        return ET.parse(path)
    except ET.ParseError as e:
        raise UserError(f"{path}: not an MJCF file ({e}) [{where}]") from None
    except OSError as e:
        raise UserError(f"{path}: cannot be read ({e.strerror}) [{where}]") from None


def _scale_attr(el: ET.Element, name: str, k: float) -> None:
    value = el.get(name)
    if value is not None:
        el.set(name, " ".join(f"{float(v) * k:.10g}" for v in value.split()))


def _absolute_asset_dirs(root: ET.Element, base: Path) -> None:
    """An edited file is written elsewhere: its relative mesh/texture folders must still point at the original's."""
    comp = root.find("compiler")
    if comp is None:
        comp = ET.Element("compiler")
        root.insert(0, comp)
    for key in ("assetdir", "meshdir", "texturedir"):
        value = comp.get(key)
        if value is not None and not os.path.isabs(value):
            comp.set(key, str((base / value).resolve()))
    if comp.get("assetdir") is None:
        comp.set("assetdir", str(base.resolve()))


def _default_geom_density(root: ET.Element) -> float:
    for d in root.iter("default"):
        g = d.find("geom")
        if g is not None and g.get("density") is not None:
            return float(g.get("density"))
    return 1000.0


def _scale_mass(root: ET.Element, body: str, k: float, where: str) -> None:
    el = next((b for b in root.iter("body") if b.get("name") == body), None)
    if el is None:
        raise UserError(f"{where}: mass: no body named {body!r} in the model")
    if el.find("inertial") is not None:
        _scale_attr(el.find("inertial"), "mass", k)
        _scale_attr(el.find("inertial"), "diaginertia", k)
        _scale_attr(el.find("inertial"), "fullinertia", k)
    for g in el.findall("geom"):
        if g.get("mass") is not None:
            _scale_attr(g, "mass", k)
        else:
            g.set("density", f"{float(g.get('density', _default_geom_density(root))) * k:.10g}")


def _copy_body(root: ET.Element, spec: dict, where: str) -> None:
    missing = {"body", "parent", "pos", "prefix"} - set(spec)
    if missing:
        raise UserError(f"{where}: copy_body needs body, parent, pos and prefix (missing {', '.join(sorted(missing))})")
    bodies = {b.get("name"): b for b in root.iter("body")}
    worldbody = root.find("worldbody")
    if spec["body"] not in bodies:
        raise UserError(f"{where}: copy_body: no body named {spec['body']!r} in the model")
    parent = worldbody if spec["parent"] == "world" else bodies.get(spec["parent"])
    if parent is None:
        raise UserError(f"{where}: copy_body: no parent body named {spec['parent']!r} in the model")
    prefix = str(spec["prefix"])
    clone = copy.deepcopy(bodies[spec["body"]])
    clone.set("pos", " ".join(f"{float(v):.10g}" for v in np.atleast_1d(np.asarray(spec["pos"], float))))
    joints = []
    for el in clone.iter():
        if el.tag in NAMED_TAGS and el.get("name") is not None:
            if el.tag == "joint":
                joints.append(el.get("name"))
            el.set("name", prefix + el.get("name"))
    parent.append(clone)
    actuator = root.find("actuator")
    if actuator is None:
        return
    for motor in list(actuator):
        if motor.get("joint") in joints:
            new = copy.deepcopy(motor)
            new.set("joint", prefix + motor.get("joint"))
            if new.get("name") is not None:
                new.set("name", prefix + new.get("name"))
            actuator.append(new)


def variant_xml(domain: Domain, where: str = "domain") -> str:
    """The MJCF text of a domain: the stock or user file with the domain's edits applied (the file itself when none)."""
    path = Path(domain.xml) if domain.xml else stock_xml(domain.task)
    tree = _parse(path, where)
    root = tree.getroot()
    if root.tag != "mujoco":
        raise UserError(f"{path}: not an MJCF file (its root element is <{root.tag}>, not <mujoco>) [{where}]")
    _absolute_asset_dirs(root, path.parent)
    if domain.armature is not None:
        for j in root.iter("joint"):
            _scale_attr(j, "armature", float(domain.armature))
    for body, k in domain.mass.items():
        _scale_mass(root, str(body), float(k), where)
    for spec in domain.copy_body:
        if not isinstance(spec, dict):
            raise UserError(f"{where}: copy_body: each entry is a mapping {{body, parent, pos, prefix}}")
        _copy_body(root, spec, where)
    return ET.tostring(root, encoding="unicode")


def compile_xml(text: str, where: str):
    """The MjModel of an MJCF text, or the one-line error naming what MuJoCo refused."""
    import mujoco

    try:
        return mujoco.MjModel.from_xml_string(text)
    except ValueError as e:
        raise UserError(f"{where}: the MJCF does not compile: {str(e).splitlines()[0]}") from None


def write_domain_xml(domain: Domain, folder: str | os.PathLike, name: str, where: str = "domain") -> Path:
    """Write the domain's MJCF into `folder` (checked to compile) and return its path."""
    text = variant_xml(domain, where)
    compile_xml(text, where)
    path = Path(folder) / f"{name}.xml"
    from vislearn.common.files import write_text

    write_text(path, text)
    return path


class ImageObservation(gym.Wrapper):
    """The task's tracking camera in grey: the last `frames` frames stacked, uint8 [frames, size, size]. The task's
    own observation (the state) is kept in `info["state"]` for measuring estimates, never shown to a policy."""

    def __init__(self, env: gym.Env, size: int = 64, frames: int = 3):
        super().__init__(env)
        from vislearn.control.envs.gl import renderer

        self.size, self.frames = size, frames
        import mujoco

        model = env.unwrapped.model
        model.vis.quality.offsamples = 0  # no multisampling, no shadows or reflections: ~5x the frames/s
        self.renderer = renderer(model, size, size)
        for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION):
            self.renderer.scene.flags[flag] = False
        self.camera = "track" if any(model.camera(i).name == "track" for i in range(model.ncam)) else -1
        self.stack = np.zeros((frames, size, size), np.uint8)
        self.observation_space = gym.spaces.Box(0, 255, (frames, size, size), np.uint8)
        self.state = None

    def _frame(self) -> np.ndarray:
        env = self.env.unwrapped
        self.renderer.update_scene(env.data, camera=self.camera)
        rgb = self.renderer.render()
        return (rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.uint8)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        frame = self._frame()
        self.stack[:] = frame
        self.state = obs
        info["state"] = obs
        return self.stack.copy(), info

    def step(self, action):
        obs, reward, term, trunc, info = self.env.step(action)
        self.stack[:-1] = self.stack[1:]
        self.stack[-1] = self._frame()
        self.state = obs
        info["state"] = obs
        return self.stack.copy(), reward, term, trunc, info

    def close(self):
        self.renderer.close()
        super().close()


def make_env(domain: Domain, xml_text: str | None = None, where: str = "domain") -> gym.Env:
    """The domain's gymnasium env (its MJCF written to a private temporary file that gymnasium loads)."""
    text = xml_text if xml_text is not None else variant_xml(domain, where)
    compile_xml(text, where)
    fd, tmp = tempfile.mkstemp(suffix=".xml", prefix="vislearn-domain-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        env = gym.make(domain.task, xml_file=tmp)
        env.unwrapped  # noqa: B018 - the model is loaded at make
    finally:
        os.unlink(tmp)
    if domain.observation == "image":
        env = ImageObservation(env, domain.image_size, domain.frames)
    elif domain.observation != "state":
        raise UserError(f"{where}: observation: {domain.observation!r} is not state or image")
    return env
