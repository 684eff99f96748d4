"""STIN's fast forward (packed rows, folded Linear layers, Linear instead of 1x1 Conv1d) against the
straightforward implementation it replaced: equal logits and gradients, masked and official."""

import pytest
import torch
import torch.nn.functional as F

from vislearn.video.actions.models import create_model
from bench.video.stin_reference import reference_logits


def _batch(B=12, T=8, N=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(B, T, N, generator=g) > 0.3
    mask[0, :, 3] = False  # a slot that is never filled
    mask[1, 2] = False  # a frame without boxes
    mask[2, :, 1:] = False  # only the hand: no other box in any frame
    return {"boxes": torch.rand(B, T, N, 4, generator=g) * mask.unsqueeze(-1),
            "box_ids": torch.tensor([1, 2, 2, 2]).repeat(B, 1), "box_mask": mask,
            "label": torch.randint(0, 9, (B,), generator=g)}


def _logits_and_grads(model, forward, batch):
    model.zero_grad(set_to_none=True)
    logits = forward(model, batch)
    F.cross_entropy(logits, batch["label"]).backward()
    return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("variant", ["stin", "stin_oie", "stin_oie_nl"])
@pytest.mark.parametrize("official", [True, False])
def test_fast_forward_equals_reference(variant, official):
    torch.manual_seed(0)
    model = create_model(variant, 9, feature_dim=64, official=official).train()
    batch = _batch()
    got, got_grads = _logits_and_grads(model, lambda m, b: m(b), batch)
    torch.manual_seed(0)  # the same initial weights
    fresh = create_model(variant, 9, feature_dim=64, official=official).train()
    want, want_grads = _logits_and_grads(fresh, reference_logits, batch)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    assert got_grads.keys() == want_grads.keys()
    for name in want_grads:
        torch.testing.assert_close(got_grads[name], want_grads[name], rtol=0, atol=1e-5, msg=name)
    # Running statistics of BatchNorm: the same update.
    for (k, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5, msg=k)


def test_cpu_bfloat16_autocast_trains_and_keeps_padding_out():
    """`amp_cpu=true`: STIN under CPU bfloat16 autocast learns, and padding still changes nothing."""
    from vislearn.video.actions.engine import autocast

    torch.manual_seed(0)
    model = create_model("stin_oie_nl", 9, feature_dim=64).train()
    batch = _batch()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    cpu = torch.device("cpu")
    losses = []
    for _ in range(6):
        with autocast(cpu, True, cpu=True):
            logits = model(batch)
        assert logits.dtype == torch.bfloat16
        loss = F.cross_entropy(logits.float(), batch["label"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
    with autocast(cpu, True):  # without the CPU switch: float32, as before
        assert model(batch).dtype == torch.float32
    dirty = dict(batch, boxes=torch.where(batch["box_mask"][..., None], batch["boxes"], torch.randn(12, 8, 4, 4) * 50))
    model.eval()
    with autocast(cpu, True, cpu=True):
        assert torch.equal(model(batch), model(dirty))


@pytest.mark.parametrize("variant", ["stin", "stin_oie", "stin_oie_nl"])
@pytest.mark.parametrize("official", [True, False])
def test_eval_fixed_shape_path_equals_packed_rows(variant, official):
    """Traced for export, eval mode runs every row and zeroes the empty ones (shapes independent of the
    mask); with BatchNorm on running statistics that is the packed path's function."""
    torch.manual_seed(0)
    model = create_model(variant, 9, feature_dim=64, official=official).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for seed in range(3):  # running statistics and weights away from their initial values
        batch = _batch(seed=seed)
        opt.zero_grad()
        F.cross_entropy(model(batch), batch["label"]).backward()
        opt.step()
    model.eval()
    batch = _batch(seed=7)
    batch["boxes"] = batch["boxes"] + 5.0 * ~batch["box_mask"].unsqueeze(-1)  # junk in the empty slots
    with torch.no_grad():
        fixed = model._features_fixed_shapes(batch["boxes"], batch["box_ids"], batch["box_mask"].bool())
        packed = model.features(batch)  # eager eval takes the packed rows
    torch.testing.assert_close(fixed, packed, rtol=0, atol=1e-5)
    if not official:  # the junk cannot matter when empty slots are masked
        batch["boxes"] = batch["boxes"] * batch["box_mask"].unsqueeze(-1)
        with torch.no_grad():
            torch.testing.assert_close(model.features(batch), fixed, rtol=0, atol=1e-5)
            torch.testing.assert_close(model._features_fixed_shapes(batch["boxes"], batch["box_ids"],
                                                                    batch["box_mask"].bool()), fixed, rtol=0, atol=1e-5)
