"""The losses of the dynamics-cycles method on a linear toy pair whose true correspondence is known: source
x' = A x + B a, target y = M x, b = N a, so the target's dynamics are y' = M A M^-1 y + M B N^-1 b. Through the
real map modules (a StateMap / ActionMap holding M / N as its fixed part, zero residual), the dynamics-cycle loss
of the true maps is zero and that of a wrong map is not; back-translation through M and M^-1 is zero."""
from __future__ import annotations

import pytest
import torch

from vislearn.control.cycles.models import (ActionMap, Stats, StateMap, back_translation_loss, dynamics_cycle_loss,
                                            state_base)

pytestmark = pytest.mark.usefixtures("one_thread")
DS, DA, N_SAMPLES = 4, 2, 512


@pytest.fixture(scope="module")
def toy():
    g = torch.Generator().manual_seed(0)
    A = torch.eye(DS, dtype=torch.float64) + 0.1 * torch.randn(DS, DS, generator=g, dtype=torch.float64)
    B = torch.randn(DS, DA, generator=g, dtype=torch.float64)
    M = torch.randn(DS, DS, generator=g, dtype=torch.float64) + 2 * torch.eye(DS, dtype=torch.float64)
    N = torch.tensor([[0.6, 0.2], [-0.1, 0.5]], dtype=torch.float64)
    x = torch.randn(N_SAMPLES, DS, generator=g, dtype=torch.float64)
    a = 0.5 * torch.rand(N_SAMPLES, DA, generator=g, dtype=torch.float64) - 0.25  # |N a| < 1: the clip is inactive
    x1 = x @ A.t() + a @ B.t()
    Ay, By = M @ A @ torch.linalg.inv(M), M @ B @ torch.linalg.inv(N)
    stats = Stats(x.float(), x1.float()).double()
    return dict(A=A, B=B, M=M, N=N, x=x, a=a, x1=x1, T_y=lambda y, b: y @ Ay.t() + b @ By.t(), stats=stats)


def state_map(matrix, stats) -> StateMap:
    return StateMap(matrix, stats, stats, [8]).double()  # zero last layer: exactly x @ matrix.T


def action_map(matrix, stats) -> ActionMap:
    return ActionMap(matrix, stats, [8]).double()


def test_the_true_maps_close_the_dynamics_cycle(toy):
    F, G = state_map(toy["M"], toy["stats"]), action_map(toy["N"], toy["stats"])
    with torch.no_grad():
        assert torch.allclose(F(toy["x"]), toy["x"] @ toy["M"].t())  # the module is the linear map
        assert torch.allclose(G(toy["x"], toy["a"]), toy["a"] @ toy["N"].t())
        loss = dynamics_cycle_loss(F, G, toy["T_y"], toy["x"], toy["a"], toy["x1"])
    assert float(loss) < 1e-9


@pytest.mark.parametrize("which", ["state", "action"])
def test_a_wrong_map_does_not(toy, which):
    g = torch.Generator().manual_seed(1)
    M, N = toy["M"], toy["N"]
    if which == "state":
        M = M + 0.1 * torch.randn(DS, DS, generator=g, dtype=torch.float64)
    else:
        N = N + 0.1 * torch.randn(DA, DA, generator=g, dtype=torch.float64)
    F, G = state_map(M, toy["stats"]), action_map(N, toy["stats"])
    with torch.no_grad():
        loss = float(dynamics_cycle_loss(F, G, toy["T_y"], toy["x"], toy["a"], toy["x1"]))
        scaled = float(dynamics_cycle_loss(F, G, toy["T_y"], toy["x"], toy["a"], toy["x1"], scale=2.0))
    assert loss > 1e-2
    assert scaled == pytest.approx(loss / 2, rel=1e-12)  # per coordinate, in units of `scale`


def test_back_translation_is_zero_through_m_and_its_inverse_only(toy):
    M, stats, x = toy["M"], toy["stats"], toy["x"]
    F, H = state_map(M, stats), state_map(torch.linalg.inv(M), stats)
    with torch.no_grad():
        assert float(back_translation_loss(F, H, x)) < 1e-9
        assert float(back_translation_loss(H, F, x)) < 1e-9
        wrong = state_map(torch.linalg.inv(M) + 0.05 * torch.eye(DS, dtype=torch.float64), stats)
        assert float(back_translation_loss(F, wrong, x)) > 1e-2


def test_an_assignment_is_a_permutation_both_ways():
    to_t, to_s = state_base([2, 0, 1], 3, 4)
    x = torch.tensor([[10.0, 20.0, 30.0]])
    assert (x @ to_t.t()).tolist() == [[20.0, 30.0, 10.0, 0.0]]  # target[assignment[i]] = source[i]
    assert (x @ to_t.t() @ to_s.t()).tolist() == x.tolist()
