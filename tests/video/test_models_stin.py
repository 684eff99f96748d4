"""STIN (+OIE, +NL): official sizes, official behaviour, masking, training; the model table."""

import copy

import pytest
import torch
import torch.nn.functional as F

from vislearn.video.actions.models import MODELS, STIN, create_model, model_kwargs, stin_official

OFFICIAL_PARAMS = {"stin": 1_109_166, "stin_oie": 1_208_366, "stin_oie_nl": 1_801_646}


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def make_batch(B=4, T=8, N=4, seed=0, garbage=False):
    """Hand in slot 0, objects in 1..; slot 3 empty; some frames missing."""
    g = torch.Generator().manual_seed(seed)
    boxes = torch.rand(B, T, N, 4, generator=g)
    box_ids = torch.tensor([1, 2, 2, 0]).repeat(B, 1)[:, :N]
    mask = torch.rand(B, T, N, generator=g) > 0.25
    mask[:, :, 3:] = False
    mask[:, 0, :3] = True  # every real slot has at least one box
    box_ids[1, 0] = 0  # sample 1: no hand
    mask[1, :, 0] = False
    boxes = boxes * mask.unsqueeze(-1)
    if garbage:
        junk = torch.randn(B, T, N, 4, generator=g) * 50
        boxes = torch.where(mask.unsqueeze(-1), boxes, junk)
        box_ids = torch.where(mask.any(1), box_ids, torch.randint(0, 3, (B, N), generator=g))
    return {"boxes": boxes, "box_ids": box_ids, "box_mask": mask, "label": torch.arange(B) % 5}


# ----------------------------------------------------------------------------- official
@pytest.mark.parametrize("variant", list(OFFICIAL_PARAMS))
def test_official_parameter_counts(variant):
    assert n_params(stin_official(variant, 174)) == OFFICIAL_PARAMS[variant]
    # The clean default has the same architecture, hence the same size.
    assert n_params(create_model(variant, 174)) == OFFICIAL_PARAMS[variant]


def test_official_checkpoint_key_names():
    keys = stin_official("stin_oie_nl", 174).state_dict().keys()
    for k in (
        "coord_to_feature.0.weight",
        "category_embed_layer.weight",
        "coord_category_fusion.1.running_mean",
        "spatial_node_fusion.3.weight",
        "box_feature_fusion.0.weight",
        "nonlocal_fusion.2.0.conv_theta.bias",
        "nonlocal_fusion.2.0.conv_out.weight",
        "nonlocal_fusion.2.1.weight",
        "nonlocal_fusion.2.2.running_var",
        "classifier.4.bias",
    ):
        assert k in keys, k


def test_presets_and_switches():
    clean = create_model("stin_oie_nl", 10)
    assert clean.mask_empty and not clean.freeze_bn and clean.oie and len(clean.nonlocal_fusion) == 3
    official = create_model("stin_oie_nl", 10, official=True)
    assert not official.mask_empty and official.freeze_bn
    assert not create_model("stin_oie", 10, official=True).freeze_bn  # only the NL model froze BN
    assert create_model("stin", 10, official=True, mask_empty=True).mask_empty  # explicit wins


def _official_reference(model, batch):
    """The official forward written out (no mask, (sum - self)/(N-1), plain track mean)."""
    boxes, ids, mask = batch["boxes"], batch["box_ids"], batch["box_mask"]
    B, T, N, _ = boxes.shape
    C = model.feature_dim
    x = boxes.transpose(2, 1).reshape(B * N * T, 4)  # official order: (b, box, frame)
    bf = model.coord_to_feature(x)
    if model.oie:
        cats = (ids[:, None, :] * mask.long()).transpose(2, 1).reshape(B * N * T)
        bf = model.coord_category_fusion(torch.cat([bf, model.category_embed_layer(cats)], 1))
    bf = bf.view(B, N, T, C)
    msg = (bf.sum(1, keepdim=True) - bf) / (N - 1)
    bf = model.spatial_node_fusion(torch.cat([bf, msg], 3).view(B * N * T, -1)).view(B, N, T * C)
    h = model.box_feature_fusion(bf.view(B * N, -1)).view(B, N, C).permute(0, 2, 1)
    for nl, conv, bn, relu in model.nonlocal_fusion:
        th, ph, g = nl.conv_theta(h), nl.conv_phi(h), nl.conv_g(h)
        att = F.softmax(torch.einsum("nct,ncp->ntp", th, ph) * (C // 2) ** -0.5, dim=2)
        p = nl.conv_out(torch.einsum("ntg,ncg->nct", att, g))
        h = relu(bn(conv(h + F.group_norm(p, 1, eps=1e-5))))
    return model.classifier(h.mean(2))


@pytest.mark.parametrize("variant", list(OFFICIAL_PARAMS))
@pytest.mark.parametrize("train", [False, True])
def test_official_mode_matches_reference_forward(variant, train):
    torch.manual_seed(0)
    model = stin_official(variant, 7, feature_dim=32)
    model.train(train)
    batch = make_batch()
    got = model(batch)
    torch.manual_seed(0)
    want = _official_reference(model, batch)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_freeze_bn_keeps_bn_fixed():
    model = stin_official("stin_oie_nl", 5, feature_dim=32).train()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert bns and all(not m.training and not m.weight.requires_grad for m in bns)
    before = copy.deepcopy(model.state_dict())
    model(make_batch()).sum().backward()
    after = model.state_dict()
    for k in before:
        if "running" in k:
            assert torch.equal(before[k], after[k]), k
    assert all(m.weight.grad is None for m in bns)


# ----------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("name", ["stin", "stin_oie", "stin_oie_nl"])
def test_shapes_and_flags(name):
    model = create_model(name, 11, feature_dim=64)
    batch = make_batch(B=3)
    assert model.needs_boxes and not model.needs_frames
    assert model.feature_dim == 64
    assert model.features(batch).shape == (3, 64)
    assert model(batch).shape == (3, 11)


def test_bad_input_shape_is_a_clear_error():
    model = create_model("stin", 5, feature_dim=32)
    batch = make_batch(T=6)
    with pytest.raises(ValueError, match=r"boxes must be \[B,8,4,4\]"):
        model(batch)


# ----------------------------------------------------------------------------- masking
@pytest.mark.parametrize("name", ["stin", "stin_oie", "stin_oie_nl"])
@pytest.mark.parametrize("train", [True, False])
def test_garbage_in_masked_slots_changes_nothing(name, train):
    torch.manual_seed(0)
    model = create_model(name, 6, feature_dim=32).train(train)
    clean, dirty = make_batch(seed=1), make_batch(seed=1, garbage=True)
    assert not torch.equal(clean["boxes"], dirty["boxes"])
    torch.testing.assert_close(model(clean), model(dirty), rtol=1e-5, atol=1e-6)


def test_official_mode_does_see_masked_slots():
    """Control for the test above: without the mask, padding changes the output."""
    torch.manual_seed(0)
    model = create_model("stin_oie", 6, feature_dim=32, official=True).eval()
    out_clean = model(make_batch(seed=1))
    out_dirty = model(make_batch(seed=1, garbage=True))
    assert (out_clean - out_dirty).abs().max() > 1e-3


@pytest.mark.parametrize("name", ["stin", "stin_oie_nl"])
def test_empty_slots_are_excluded_everywhere(name):
    """A 4-slot model on 2 real tracks + 2 empty slots equals the same weights with 2 slots."""
    torch.manual_seed(0)
    four = create_model(name, 6, feature_dim=32, num_slots=4).eval()
    two = create_model(name, 6, feature_dim=32, num_slots=2).eval()
    two.load_state_dict(four.state_dict())  # no weight depends on the slot count
    batch = make_batch(B=3, seed=2)
    batch["box_mask"][:, :, 2:] = False
    batch["box_mask"][1, :, 0] = True  # a hand in every sample here
    batch["box_ids"][:, :2] = torch.tensor([1, 2])
    small = {
        "boxes": batch["boxes"][:, :, :2],
        "box_ids": batch["box_ids"][:, :2],
        "box_mask": batch["box_mask"][:, :, :2],
    }
    torch.testing.assert_close(four(batch), two(small), rtol=1e-5, atol=1e-6)


def test_one_object_no_hand():
    model = create_model("stin_oie_nl", 6, feature_dim=32)
    boxes = torch.zeros(2, 8, 4, 4)
    boxes[:, :, 1] = torch.tensor([0.5, 0.5, 0.2, 0.3])
    boxes[1, :, 1, 0] = torch.linspace(0.2, 0.8, 8)
    mask = torch.zeros(2, 8, 4, dtype=torch.bool)
    mask[:, :, 1] = True
    batch = {"boxes": boxes, "box_ids": torch.tensor([[0, 2, 0, 0]] * 2), "box_mask": mask}
    out = model.train()(batch)
    assert torch.isfinite(out).all()
    model.eval()
    single = model({k: v[:1] for k, v in batch.items()})  # one video alone, one track
    assert torch.isfinite(single).all()
    torch.testing.assert_close(single, model(batch)[:1], rtol=1e-5, atol=1e-6)


def test_video_without_any_box_gives_finite_output():
    model = create_model("stin_oie_nl", 6, feature_dim=32).eval()
    batch = make_batch(B=2)
    batch["box_mask"][0] = False
    out = model(batch)
    assert torch.isfinite(out).all()
    # No box at all: the video feature is zero, so the output is the classifier's bias path.
    torch.testing.assert_close(model.features(batch)[0], torch.zeros(32))


def test_eval_output_is_per_sample():
    model = create_model("stin_oie_nl", 6, feature_dim=32).eval()
    batch = make_batch(B=4)
    full = model(batch)
    for i in range(4):
        one = model({k: v[i : i + 1] for k, v in batch.items()})
        torch.testing.assert_close(one, full[i : i + 1], rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- training
@pytest.mark.parametrize("name,official", [("stin", False), ("stin_oie", False), ("stin_oie_nl", False), ("stin_oie_nl", True)])
def test_sgd_step_lowers_loss_and_reaches_all_weights(name, official):
    torch.manual_seed(0)
    model = create_model(name, 5, feature_dim=32, official=official).train()
    batch = make_batch(B=8)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05)
    loss = F.cross_entropy(model(batch), batch["label"])
    loss.backward()
    for n, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, n
    opt.step()
    after = F.cross_entropy(model(batch), batch["label"])
    assert after.item() < loss.item()


# ----------------------------------------------------------------------------- model table
def test_create_model_errors_are_clear():
    with pytest.raises(ValueError, match="unknown model 'stn'.*stin_oie_nl.*i3d_r50.*fusion"):
        create_model("stn", 5)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['feature_dims'\].*feature_dim"):
        create_model("stin", 5, feature_dims=3)
    with pytest.raises(ValueError, match="unknown STIN model"):
        create_model("fusion", 5, scene="small3d", stin="i3d_r50")


def test_every_model_declares_its_inputs():
    expected = {"stin", "stin_oie", "stin_oie_nl", "i3d_r50", "r3d_18", "mc3_18", "r2plus1d_18", "vit_scene",
                "swin3d_t", "s3d", "mvit_v1_b", "small3d", "tsm_mobilenet_v2", "i3d_mobilenet_v2", "strg", "fusion"}
    assert set(MODELS) == expected
    assert "official" in model_kwargs("stin") and "backbone_weights" in model_kwargs("small3d")
    for name in ("stin", "small3d", "strg", "fusion"):
        kw = {"fusion": {"scene": "small3d", "stin": "stin"}, "strg": {"scene": "small3d"}}.get(name, {})
        model = create_model(name, 3, **kw)
        assert isinstance(model.needs_frames, bool) and isinstance(model.needs_boxes, bool)
    assert isinstance(create_model("stin", 3), STIN)


def test_synchronized_batchnorm_leaves_frozen_batchnorm_alone():
    from vislearn.video.actions.distributed import GlobalBatchNorm, synchronize_batchnorm

    official = synchronize_batchnorm(stin_official("stin_oie_nl", 5, feature_dim=32), torch.device("cpu"))
    assert not any(isinstance(m, GlobalBatchNorm) for m in official.modules())  # every BN frozen: nothing to sync
    clean = synchronize_batchnorm(create_model("stin_oie_nl", 5, feature_dim=32), torch.device("cpu"))
    assert any(isinstance(m, GlobalBatchNorm) for m in clean.modules())
