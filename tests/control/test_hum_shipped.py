"""The humanoid row of `make demo`: the shipped policies are the files shipped/manifest.json describes (sha256),
they load as the policies their names say, and a changed file is refused in one line."""
import shutil

import pytest
import torch

from vislearn.common.errors import UserError
from vislearn.common.jsonio import read_json
from vislearn.control.humanoid import demo
from vislearn.control.humanoid.policy_file import load_policy


@pytest.mark.parametrize("name,arch", [("walker2d-teacher.pt", "teacher"), ("walker2d-transformer.pt", "transformer"),
                                       ("walker2d-mlp.pt", "mlp")])
def test_shipped_policies_match_the_manifest_and_load(name, arch):
    path = demo.shipped(name)
    policy, meta = load_policy(path)
    assert meta["arch"] == arch and meta["env"]["robot"] == "walker2d"
    assert read_json(demo.SHIPPED / "manifest.json")[name]["command"].startswith("vislearn control humanoid")
    if arch == "teacher":  # students start their critic from it
        assert policy.critic_state
    with torch.no_grad():
        window = torch.zeros(2, meta["history"], meta["obs_dim"] + 1)
        window[:, -1, -1] = 1.0
        mu = policy.mean(window, torch.zeros(2, meta["priv_dim"]))
    assert mu.shape == (2, meta["n_act"]) and torch.isfinite(mu).all()


def test_a_changed_shipped_file_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / "shipped"
    shutil.copytree(demo.SHIPPED, fake)
    with open(fake / "walker2d-mlp.pt", "ab") as f:
        f.write(b"\0")
    monkeypatch.setattr(demo, "SHIPPED", fake)
    with pytest.raises(UserError, match="sha256"):
        demo.shipped("walker2d-mlp.pt")
