"""`record` and `evaluate` on real MuJoCo: a playable H.264 video whose frames are bordered green once the expert
succeeds (red after a failure), and evaluation results that are the episodes' own (policy files built here)."""
from __future__ import annotations

import json

import av
import numpy as np
import pytest
import torch

from cli_helpers import call, one_line
from vislearn.control import evaluate, record
from vislearn.control.agent import Norm, load_agent, policy_file
from vislearn.control.envs import TASKS, RenderSettings, make_vector_env, run_episodes
from vislearn.control.envs.tasks import EVAL_SEEDS
from vislearn.control.policy import MVPPolicy


def decode(path) -> np.ndarray:
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def border(frame: np.ndarray, width: int = 2) -> np.ndarray:
    """Mean colour of the frame's outer ring (the outcome's border)."""
    ring = np.concatenate([frame[:width].reshape(-1, 3), frame[-width:].reshape(-1, 3),
                           frame[:, :width].reshape(-1, 3), frame[:, -width:].reshape(-1, 3)])
    return ring.astype(float).mean(0)


def is_green(rgb) -> bool:
    return rgb[1] > 140 and rgb[0] < 100 and rgb[2] < 100


def is_red(rgb) -> bool:
    return rgb[0] > 150 and rgb[1] < 90 and rgb[2] < 90


def random_policy(path, task: str = "reach", seed: int = 0):
    """A policy file as `bc` writes one: a random MVPPolicy on the full state (the `state` encoder)."""
    torch.manual_seed(seed)
    torch.save(policy_file(task, "bc", "state", MVPPolicy(39, 8, 4), Norm.identity(39, 8), RenderSettings(size=32)),
               path)
    return path


def test_record_of_the_expert_is_a_playable_mp4_bordered_green_from_success(tmp_path):
    out, still = tmp_path / "reach.mp4", tmp_path / "reach.png"
    rc, stdout, err = call(record.main, "--expert", "reach", "--out", out, "--still", still, "--episodes", "1",
                           "--size", "64", "--fps", "10")
    assert rc == 0, err
    steps = int(stdout.split("success at step ")[1].split()[0])
    frames = decode(out)
    hold = 10  # one second at 10 fps
    assert frames.shape == (steps + 1 + hold - 1, 64, 64, 3)  # steps 0..steps-1, then the last one held
    assert all(is_green(border(f)) for f in frames[steps:])  # from the step success is reached on
    assert not any(is_green(border(f)) or is_red(border(f)) for f in frames[:steps])
    from PIL import Image

    png = np.asarray(Image.open(still).convert("RGB"))
    assert png.shape == (64, 64, 3) and is_green(border(png))
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically: no temporary file left


def test_a_failed_episode_is_bordered_red_and_bad_input_is_one_line(tmp_path):
    from vislearn.control.record import annotate

    frame = np.full((32, 32, 3), 128, np.uint8)
    assert is_red(border(annotate(frame, 100, "failed"))) and is_green(border(annotate(frame, 40, "success")))
    assert not is_red(border(annotate(frame, 50))) and not is_green(border(annotate(frame, 50)))
    pol = random_policy(tmp_path / "policy.pt")
    out = tmp_path / "video.mp4"
    out.write_bytes(b"not a policy")
    for argv, words in [((pol, "--expert", "reach", "--out", tmp_path / "a.mp4"), "one of the two"),
                        (("--out", tmp_path / "a.mp4"), "one of the two"),
                        ((pol, "--out", tmp_path / "a.webm"), ".mp4"),
                        ((pol, "--out", tmp_path / "a.mp4", "--size", "33"), "even"),
                        ((tmp_path / "none.pt", "--out", tmp_path / "a.mp4"), "not found"),
                        ((out, "--out", tmp_path / "a.mp4"), "not a policy file")]:
        rc, _, err = call(record.main, *argv)
        assert rc == 2 and words in one_line(err), (argv, err)
    assert not (tmp_path / "a.mp4").exists()


def test_evaluate_reports_the_episodes_success_rate(tmp_path):
    pol = random_policy(tmp_path / "policy.pt", task="reach")
    out = tmp_path / "eval.json"
    rc, stdout, err = call(evaluate.main, pol, "--episodes", "3", "--out", out)
    assert rc == 0, err
    assert len(stdout.strip().splitlines()) == 1 and "reach" in stdout and "success" in stdout
    res = json.loads(out.read_text())
    agent, _ = load_agent(pol)
    vec = make_vector_env("reach", 1, pixels=False)
    try:  # the same seeds on one process: the same episodes
        eps = run_episodes(vec, agent, range(EVAL_SEEDS, EVAL_SEEDS + 3))
    finally:
        vec.close()
    assert res["seed_base"] == EVAL_SEEDS and res["episodes"] == 3 and res["task"] == "reach"
    assert [r["seed"] for r in res["per_episode"]] == list(range(EVAL_SEEDS, EVAL_SEEDS + 3))
    assert [r["success"] for r in res["per_episode"]] == [e.success for e in eps]
    assert [r["length"] for r in res["per_episode"]] == [e.length for e in eps]
    assert res["success_rate"] == pytest.approx(np.mean([e.success for e in eps]))
    assert res["mean_length"] == pytest.approx(np.mean([e.length for e in eps]))
    assert res["success_rate"] <= 0.34 and res["mean_length"] > 0.9 * TASKS["reach"].horizon  # random: fails


def test_evaluate_refuses_what_is_not_a_policy_file(tmp_path):
    other = tmp_path / "encoder.pth"
    torch.save({"model": {"w": torch.zeros(2)}}, other)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    for path, words in [(other, "not a policy file"), (text, "not a policy file"), (tmp_path / "no.pt", "not found")]:
        rc, _, err = call(evaluate.main, path, "--episodes", "1")
        assert rc == 2 and words in one_line(err), err
    mine = tmp_path / "mine.json"
    mine.write_text("{}")
    rc, _, err = call(evaluate.main, random_policy(tmp_path / "p.pt"), "--out", mine)
    assert rc == 2 and "--overwrite" in one_line(err) and mine.read_text() == "{}"
