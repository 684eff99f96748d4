"""The humanoid-locomotion commands a user types: bad input is one line (`error: ...`, exit 2) naming what is wrong
(an MJCF that does not compile or has no floating base, an unknown or inverted randomisation range on the command
line and in a YAML config, a --teacher that is not a teacher's policy, evaluate on a file that is not a policy);
`evaluate` writes each condition's numbers and, with --change, the adaptation plot; `record` writes an .mp4 that
decodes back to frames of the asked size. Real MuJoCo, torch and PyAV on the tiny runs of test_hum_train.py."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import av
import numpy as np
import pytest

import vislearn.control.envs  # noqa: F401  (MUJOCO_GL first)
from vislearn.control.humanoid.evaluate import main as evaluate_main
from vislearn.control.humanoid.record import main as record_main
from vislearn.control.humanoid.train_student import main as student_main
from vislearn.control.humanoid.train_teacher import main as teacher_main

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from cli_helpers import call, one_line  # noqa: E402
from test_hum_train import tiny_runs  # noqa: E402  (one tiny teacher and student for both modules)

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = ("--steps", "16", "--num-envs", "1", "num_steps=16", "eval_episodes=0", "threads=1")
BROKEN = '<mujoco><worldbody><body name="b"><geom type="box" size="0.1 0.1 0.1"></worldbody></mujoco>'
NO_FREE = """<mujoco><worldbody><geom name="floor" type="plane" size="5 5 0.1"/>
  <body name="arm" pos="0 0 1"><joint name="hinge" type="hinge" axis="0 1 0"/><geom type="capsule" size="0.05"
  fromto="0 0 0 0.5 0 0"/></body></worldbody><actuator><motor joint="hinge" gear="10"/></actuator></mujoco>"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return tiny_runs(tmp_path_factory)


def error_line(rc, err) -> str:
    assert rc == 2, err
    line = one_line(err)
    assert line.startswith("error:"), line
    return line


@pytest.mark.parametrize("name, text, words", [
    ("broken.xml", BROKEN, "broken.xml: the MJCF does not compile"),
    ("arm.xml", NO_FREE, "arm.xml: the first joint must be a free joint"),
], ids=["does-not-compile", "no-free-joint"])
def test_a_robot_mjcf_that_cannot_be_used_is_one_line(tmp_path, name, text, words):
    (tmp_path / name).write_text(text)
    line = error_line(*call(teacher_main, "--robot", tmp_path / name, "--out", tmp_path / "run", *TINY)[::2])
    assert words in line, line


@pytest.mark.parametrize("override, words", [
    ("randomization.foo=[0,1]", "randomization.foo: no such item"),
    ("randomization.strength=[1.2,0.8]", "randomization.strength: min 1.2 is above max 0.8"),
    ("randomization.friction=0.5", "randomization.friction: expected [min, max]"),
], ids=["unknown-key", "min-above-max", "not-a-range"])
def test_a_bad_randomization_on_the_command_line_is_one_line(tmp_path, override, words):
    line = error_line(*call(teacher_main, "--out", tmp_path / "run", *TINY, override)[::2])
    assert words in line, line
    assert not (tmp_path / "run" / "last.pt").exists()


@pytest.mark.parametrize("yaml, words", [
    ("randomization:\n  foo: [0, 1]\n", "randomization.foo: no such item"),
    ("randomization:\n  mass: [1.5, 0.5]\n", "randomization.mass: min 1.5 is above max 0.5"),
], ids=["unknown-key", "min-above-max"])
def test_a_bad_randomization_in_a_yaml_config_is_one_line(tmp_path, yaml, words):
    (tmp_path / "bad.yaml").write_text(yaml)
    line = error_line(*call(teacher_main, "--config", tmp_path / "bad.yaml", "--out", tmp_path / "run", *TINY)[::2])
    assert words in line, line


def test_a_teacher_that_is_not_a_teacher_policy_is_one_line(runs, tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(np.random.default_rng(0).bytes(256))
    cases = [(runs["student"] / "policy.pt", "a transformer student's policy, not a teacher's"),
             (junk, "junk.pt: not a policy file this tool can load safely"),
             (runs["teacher"] / "last.pt", "last.pt: not a humanoid-locomotion policy file")]
    for k, (teacher, words) in enumerate(cases):
        line = error_line(*call(student_main, "--teacher", teacher, "--out", tmp_path / f"s{k}", *TINY)[::2])
        assert words in line, line


def test_evaluate_on_a_file_that_is_not_a_policy_is_one_line(runs, tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_text("not a policy\n")
    for path, words in [(junk, "junk.pt: not a policy file this tool can load safely"),
                        (runs["teacher"] / "last.pt", "last.pt: not a humanoid-locomotion policy file"),
                        (tmp_path / "missing.pt", "missing.pt")]:
        line = error_line(*call(evaluate_main, path, "--out", tmp_path / "e.json", "--episodes", "1")[::2])
        assert words in line, line
    assert not (tmp_path / "e.json").exists()


def test_evaluate_reports_each_condition_and_plots_the_adaptation(runs, tmp_path):
    teacher, student = runs["teacher"] / "policy.pt", runs["student"] / "policy.pt"
    out = tmp_path / "eval.json"
    rc, stdout, err = call(evaluate_main, teacher, student, "--out", out, "--episodes", "2", "--num-envs", "2",
                           "--change", "heavy", "--change-at", "0.1")
    assert rc == 0, err
    report = json.loads(out.read_text())
    assert report["episodes"] == 2 and report["seeds"] == [0, 1]
    assert set(report["policies"]) == {str(teacher), str(student)}
    keys = {"episodes", "success", "falls", "mean_return", "mean_seconds", "tracking_error", "tracking_error_std"}
    for path, arch in ((teacher, "teacher"), (student, "transformer")):
        row = report["policies"][str(path)]
        assert row["arch"] == arch
        for condition in ("train", "heavy", "slippery", "weak"):
            assert set(row[condition]) == keys, condition
            assert row[condition]["episodes"] == 2
            assert 0.0 <= row[condition]["success"] <= 1.0
            assert row[condition]["success"] + row[condition]["falls"] == pytest.approx(1.0)
        assert row["heavy"]["mean_return"] != row["train"]["mean_return"]  # the same seeds, other dynamics
        curve = row["adaptation"]["heavy"]
        assert curve["episodes"] == 2 and len(curve["t"]) == len(curve["error"]) > 0
        assert min(curve["t"]) < 0 <= max(curve["t"])  # before and after the change
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(png) as img:
        assert img.size[0] > 100 and img.size[1] > 100
    assert str(png) in stdout


def test_record_writes_an_mp4_of_the_requested_size(runs, tmp_path):
    out = tmp_path / "walk.mp4"
    rc, stdout, err = call(record_main, runs["student"] / "policy.pt", "--out", out, "--width", "96", "--height",
                           "64", "--seconds", "0.4")
    assert rc == 0, err
    frames_written = int(re.search(r"\((\d+) frames, 96x64", stdout).group(1))
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == frames_written >= 25  # the episode (up to 0.4 s at 25 fps) and 1 s holding the end
    assert all(f.shape == (64, 96, 3) for f in frames)
    assert frames[0][50:].std() > 1.0  # the scene, not a blank frame
    # the last frame's border: green when the robot stood to the end, red when it fell
    stood = "stood for" in stdout
    edge = frames[-1][30:60, 1:4].reshape(-1, 3).mean(0)
    assert (edge[1] > edge[0] + 60) if stood else (edge[0] > edge[1] + 60), (stdout, edge)
