"""Humanoid-locomotion policies (`vislearn.control.humanoid.policies`): the history window resets at episode
boundaries, the transformer student's causal mask keeps every position from seeing later tokens, the MLP student
with history 1 reads the newest token only, padded slots stay zero after normalisation, and the running statistics
and the Gaussian KL are the textbook ones. Real torch, tiny sizes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vislearn.control.humanoid.policies import (History, MLPStudent, Policy, RunningNorm, TransformerStudent,
                                                gaussian_kl)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_history_is_right_aligned_and_cleared_at_episode_boundaries():
    h = History(n=3, length=4, obs_dim=2)
    tok = [np.full((3, 2), float(k)) for k in range(1, 7)]
    h.push(tok[0], np.ones(3, dtype=bool))
    h.push(tok[1])
    buf = h.push(tok[2], np.array([False, True, False]))  # environment 1 starts a new episode
    # environment 1: only the new token, zeros and valid 0 before it
    np.testing.assert_array_equal(buf[1, :, -1], [0, 0, 0, 1])
    np.testing.assert_array_equal(buf[1, :3], 0.0)
    np.testing.assert_array_equal(buf[1, 3, :2], [3.0, 3.0])
    # the others: the episode so far, newest last
    for i in (0, 2):
        np.testing.assert_array_equal(buf[i, :, 0], [0, 1, 2, 3])
        np.testing.assert_array_equal(buf[i, :, -1], [0, 1, 1, 1])
    for k in (3, 4, 5):
        buf = h.push(tok[k])
    np.testing.assert_array_equal(buf[0, :, 0], [3, 4, 5, 6])  # the oldest dropped
    np.testing.assert_array_equal(buf[1, :, 0], [3, 4, 5, 6])  # never the last episode's (1, 2)
    np.testing.assert_array_equal(buf[:, :, -1], 1.0)


@pytest.mark.parametrize("train_mode", [False, True])
def test_transformer_positions_never_see_later_tokens(train_mode):
    torch.manual_seed(0)
    net = TransformerStudent(token_dim=5, n_act=3, history=8, width=32, depth=2, heads=4, embed=(16, 16))
    net.train(train_mode)
    tokens = torch.randn(2, 8, 5)
    with torch.set_grad_enabled(train_mode):
        ref = net.features(tokens).detach()
        for t in (0, 3, 6):
            later = tokens.clone()
            later[:, t + 1:] = torch.randn(2, 8 - t - 1, 5) * 3  # change the future of position t
            out = net.features(later).detach()
            torch.testing.assert_close(out[:, :t + 1], ref[:, :t + 1], rtol=1e-5, atol=1e-5)
            assert (out[:, t + 1:] - ref[:, t + 1:]).abs().amax() > 1e-3
            now = tokens.clone()
            now[:, t] += 1.0  # change position t itself: t and later move, earlier do not
            out = net.features(now).detach()
            assert (out[:, t] - ref[:, t]).abs().amax() > 1e-3
            torch.testing.assert_close(out[:, :t], ref[:, :t], rtol=1e-5, atol=1e-5)
        # the action comes from the newest position
        torch.testing.assert_close(net(tokens).detach(), net.head(ref[:, -1]).detach(), rtol=1e-5, atol=1e-6)


def test_transformer_takes_a_window_shorter_than_its_history():
    torch.manual_seed(0)
    net = TransformerStudent(token_dim=5, n_act=3, history=8, width=32, depth=1, heads=4, embed=(16,)).eval()
    with torch.no_grad():
        assert net(torch.randn(2, 5, 5)).shape == (2, 3)


def test_mlp_student_with_history_one_reads_the_newest_token_only():
    torch.manual_seed(0)
    net = MLPStudent(token_dim=4, n_act=2, history=1, hidden=(8,))
    x = torch.randn(3, 6, 4)
    y = x.clone()
    y[:, :-1] = torch.randn(3, 5, 4)
    torch.testing.assert_close(net(x), net(y))
    y[:, -1] += 1.0
    assert not torch.allclose(net(x), net(y))


def test_padded_slots_stay_zero_after_normalisation():
    torch.manual_seed(0)
    policy = Policy("transformer", obs_dim=3, priv_dim=5, n_act=2, history=4)
    policy.obs_norm.update(torch.randn(64, 3) * 4 + 2)
    window = torch.zeros(1, 4, 4)
    window[0, 3] = torch.tensor([1.0, 2.0, 3.0, 1.0])  # one valid token, newest
    z = policy.normalise_window(window)
    assert not z[0, :3].any()  # the empty slots: 0 in every channel (the normaliser would move them off 0)
    expected = (window[0, 3, :3].double() - policy.obs_norm.mean) / torch.sqrt(policy.obs_norm.var + 1e-8)
    torch.testing.assert_close(z[0, 3, :3], expected.float())
    assert z[0, 3, 3] == 1.0


def test_running_norm_is_the_mean_and_variance_of_everything_seen():
    rng = np.random.default_rng(0)
    chunks = [rng.normal(3.0, 2.0, size=(n, 4)) for n in (5, 17, 40)]
    norm = RunningNorm(4)
    for c in chunks:
        norm.update(torch.from_numpy(c))
    data = np.concatenate(chunks)
    np.testing.assert_allclose(norm.mean.numpy(), data.mean(0), rtol=1e-4)
    np.testing.assert_allclose(norm.var.numpy(), data.var(0), rtol=1e-3)


def test_gaussian_kl_matches_torch():
    torch.manual_seed(0)
    mu_s, mu_t = torch.randn(5, 3), torch.randn(5, 3)
    std_s, std_t = torch.rand(5, 3) + 0.2, torch.rand(5, 3) + 0.2
    expected = torch.distributions.kl_divergence(torch.distributions.Normal(mu_s, std_s),
                                                 torch.distributions.Normal(mu_t, std_t)).sum(-1)
    torch.testing.assert_close(gaussian_kl(mu_s, std_s, mu_t, std_t), expected)
    assert gaussian_kl(mu_s, std_s, mu_s, std_s).abs().max() < 1e-6
