"""Scene models (I3D, torchvision video nets, small3d), weight loading, fusion, ensembles."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torchvision.models import resnet50
from torchvision.models import video as tvv

from vislearn.video.actions.models import ScoreEnsemble, create_model, fuse_scores, load_backbone_weights
from vislearn.common.errors import UserError


def frames(B=2, T=8, H=64, W=64, seed=0):
    return {"frames": torch.randn(B, 3, T, H, W, generator=torch.Generator().manual_seed(seed))}


def boxes_batch(B=2, T=8, N=4):
    mask = torch.zeros(B, T, N, dtype=torch.bool)
    mask[:, :, :2] = True
    return {
        "boxes": torch.rand(B, T, N, 4) * mask.unsqueeze(-1),
        "box_ids": torch.tensor([[1, 2, 0, 0]] * B),
        "box_mask": mask,
        "label": torch.arange(B) % 3,
    }


def randomise_bn(model, seed=0):
    """Non-trivial BatchNorm statistics, so the equivalence test checks them too."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model


# ----------------------------------------------------------------------------- I3D
@pytest.fixture(scope="module")
def resnet2d_file(tmp_path_factory):
    torch.manual_seed(0)
    net = randomise_bn(resnet50(weights=None)).eval()
    path = tmp_path_factory.mktemp("w") / "resnet50_2d.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in net.state_dict().items()}}, path)
    return net, path


def resnet2d_layer4(net, x):
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    return net.layer4(net.layer3(net.layer2(net.layer1(x))))


@pytest.mark.parametrize("inflation", ["mean", "center"])
def test_i3d_static_clip_equals_2d_resnet50(resnet2d_file, inflation):
    net2d, path = resnet2d_file
    model = create_model("i3d_r50", 5, backbone_weights=str(path), inflation=inflation).eval()
    image = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    clip = {"frames": image[:, :, None].expand(1, 3, 4, 64, 64).contiguous()}
    with torch.no_grad():
        want = resnet2d_layer4(net2d, image)  # [1,2048,2,2]
        got = model.feature_map(clip)  # [1,2048,T/2,2,2]
    assert got.shape == (1, 2048, 2, 2, 2)
    scale = want.abs().max()
    for t in range(got.shape[2]):  # every frame, the edge ones included
        torch.testing.assert_close(got[:, :, t] / scale, want / scale, rtol=1e-4, atol=1e-4)


def test_i3d_mixes_time_and_pools_per_channel():
    torch.manual_seed(0)
    model = create_model("i3d_r50", 5).eval()
    x = frames(B=1, T=8)
    with torch.no_grad():
        fmap = model.feature_map(x)
        y = copy.deepcopy(x)
        y["frames"][:, :, 0] += 1.0  # change the first frame only
        changed = (model.feature_map(y) - fmap).abs().amax((0, 1, 3, 4))
        feat = model.features(x)
    assert fmap.shape == (1, 2048, 4, 2, 2)
    assert (changed > 0).all()  # the last time step sees frame 0 through the 3x1x1 kernels
    torch.testing.assert_close(feat, model.proj(fmap.mean((2, 3, 4))))
    assert model.feature_dim == 512 and feat.shape == (1, 512)


def test_i3d_layer4_stride_1_and_c2d_option():
    from vislearn.backbones.i3d_resnet import C2D_TEMPORAL_KERNELS

    model = create_model("i3d_r50", 5, layer4_stride=1, temporal_kernels=C2D_TEMPORAL_KERNELS, stem_temporal=1)
    with torch.no_grad():
        assert model.eval().feature_map(frames(B=1, T=4))[0].shape == (2048, 2, 4, 4)
    assert model.backbone.conv1.weight.shape == (64, 3, 1, 7, 7)


def test_i3d_checkpoint_roundtrip_and_wrong_file(tmp_path):
    torch.manual_seed(0)
    model = randomise_bn(create_model("i3d_r50", 5)).eval()
    path = tmp_path / "i3d_kinetics.pth"
    torch.save({"model": model.state_dict(), "class_names": ["a"] * 5}, path)  # whole model
    again = create_model("i3d_r50", 7, backbone_weights=str(path)).eval()
    x = frames(B=1, T=4)
    with torch.no_grad():
        torch.testing.assert_close(again.feature_map(x), model.feature_map(x))
    bad = tmp_path / "small.pth"
    torch.save(create_model("small3d", 5).backbone.state_dict(), bad)
    with pytest.raises(ValueError, match=r"small\.pth: weights do not fit I3DResNet50; missing keys"):
        create_model("i3d_r50", 5, backbone_weights=str(bad))


# ----------------------------------------------------------------------------- torchvision nets
@pytest.mark.parametrize(
    "name,dim", [("r3d_18", 512), ("mc3_18", 512), ("r2plus1d_18", 512), ("swin3d_t", 768), ("s3d", 1024), ("small3d", 256)]
)
def test_scene_models_shapes_with_8_frames(name, dim):
    model = create_model(name, 9).eval()
    assert model.needs_frames and not model.needs_boxes and model.feature_dim == 512
    assert model.backbone.out_dim == dim
    x = frames(B=1, T=8, H=64, W=64)
    with torch.no_grad():
        assert model(x).shape == (1, 9)
        assert model.feature_map(x).shape[:2] == (1, dim)


def test_s3d_at_8x112x112():
    """torchvision's own s3d cannot pool an 8-frame clip; ours can."""
    with pytest.raises(RuntimeError):
        with torch.no_grad():
            tvv.s3d(weights=None).eval()(torch.randn(1, 3, 8, 112, 112))
    model = create_model("s3d", 4).eval()
    with torch.no_grad():
        assert model(frames(B=1, T=8, H=112, W=112)).shape == (1, 4)


def test_torchvision_format_checkpoint_loads(tmp_path):
    torch.manual_seed(0)
    net = tvv.s3d(weights=None)  # has a 400-class 'classifier' head, ignored on load
    path = tmp_path / "s3d_kinetics.pth"
    torch.save(net.state_dict(), path)
    model = create_model("s3d", 6, backbone_weights=str(path))
    for k, v in net.features.state_dict().items():
        assert torch.equal(model.backbone.features.state_dict()[k], v), k


def test_load_backbone_weights_errors(tmp_path):
    model = create_model("small3d", 5)
    with pytest.raises(UserError, match="nope.pth: weights file not found"):
        load_backbone_weights(model.backbone, tmp_path / "nope.pth")
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(UserError, match="notes.pth: not a weights file this tool can load safely"):
        load_backbone_weights(model.backbone, text)
    narrow = tmp_path / "narrow.pth"
    torch.save(create_model("small3d", 5, width=16).backbone.state_dict(), narrow)
    with pytest.raises(ValueError, match=r"narrow.pth.*shape mismatches \(\d+\): 0.weight: file \(16, 3, 1, 5, 5\)"):
        load_backbone_weights(model.backbone, narrow)
    extra = tmp_path / "extra.pth"
    state = dict(model.backbone.state_dict(), **{"extra.weight": torch.zeros(1)})
    state.pop("0.weight")
    torch.save(state, extra)
    with pytest.raises(ValueError, match=r"extra.pth.*missing keys \(1\): 0.weight.*unexpected keys \(1\): extra.weight"):
        load_backbone_weights(model.backbone, extra)


def test_small3d_trains():
    torch.manual_seed(0)
    model = create_model("small3d", 3, dropout=0.0).train()
    assert 300_000 < sum(p.numel() for p in model.backbone.parameters()) < 1_000_000
    x = frames(B=4, T=8, H=64, W=64)
    label = torch.tensor([0, 1, 2, 0])
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    loss = F.cross_entropy(model(x), label)
    loss.backward()
    opt.step()
    assert F.cross_entropy(model(x), label).item() < loss.item()


# ----------------------------------------------------------------------------- fusion
def _scene_checkpoint(tmp_path):
    torch.manual_seed(0)
    scene = randomise_bn(create_model("small3d", 3))
    path = tmp_path / "scene.pth"
    torch.save({"model": scene.state_dict(), "epoch": 3}, path)
    return scene, path


def test_fusion_with_frozen_scene_stream(tmp_path):
    scene, path = _scene_checkpoint(tmp_path)
    model = create_model(
        "fusion", 3, scene="small3d", stin="stin_oie", stin_kwargs={"feature_dim": 32},
        scene_checkpoint=str(path), freeze_scene=True,
    ).train()
    assert model.needs_frames and model.needs_boxes and model.feature_dim == 512 + 32
    assert not model.scene.training and model.stin.training
    for k, v in scene.state_dict().items():  # loaded from the file (its classifier is unused)
        if not k.startswith("classifier."):
            assert torch.equal(model.scene.state_dict()[k], v), k
    before = copy.deepcopy(model.state_dict())
    batch = {**boxes_batch(B=4), **frames(B=4, T=8, H=32, W=32)}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    loss = F.cross_entropy(model(batch), batch["label"])
    loss.backward()
    opt.step()
    after = model.state_dict()
    for k in before:
        if k.startswith("scene."):  # weights and BN statistics
            assert torch.equal(before[k], after[k]), k
    assert not torch.equal(before["stin.box_feature_fusion.0.weight"], after["stin.box_feature_fusion.0.weight"])
    assert not torch.equal(before["classifier.0.weight"], after["classifier.0.weight"])
    assert F.cross_entropy(model(batch), batch["label"]).item() < loss.item()


def test_fusion_trained_jointly_updates_scene(tmp_path):
    torch.manual_seed(0)
    model = create_model("fusion", 3, scene="small3d", stin="stin", stin_kwargs={"feature_dim": 32}).train()
    before = model.scene.backbone[0].weight.detach().clone()
    batch = {**boxes_batch(B=4), **frames(B=4, T=8, H=32, W=32)}
    F.cross_entropy(model(batch), batch["label"]).backward()
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    assert not torch.equal(before, model.scene.backbone[0].weight)


# ----------------------------------------------------------------------------- ensembles
def test_fuse_scores_weights():
    a = torch.tensor([[2.0, 0.0, 0.0]])
    b = torch.tensor([[0.0, 0.0, 3.0]])
    pa, pb = a.softmax(-1), b.softmax(-1)
    torch.testing.assert_close(fuse_scores([a, b], [1, 0]), pa)
    torch.testing.assert_close(fuse_scores([a, b], [3, 1]), 0.75 * pa + 0.25 * pb)
    torch.testing.assert_close(fuse_scores([a, b]), 0.5 * pa + 0.5 * pb)
    assert fuse_scores([a, b], [1, 0]).argmax().item() == 0
    assert fuse_scores([a, b], [1, 2]).argmax().item() == 2
    with pytest.raises(ValueError, match="2 score sets but 3 weights"):
        fuse_scores([a, b], [1, 1, 1])
    with pytest.raises(ValueError, match="weights must be >= 0"):
        fuse_scores([a, b], [1, -1])
    # scores that are probabilities already (a run's scores.npz): only the weighted mean, dtype kept
    fused = fuse_scores([pa.double().numpy(), pb.double().numpy()], [3, 1], probabilities=True)
    assert fused.dtype == torch.float64
    torch.testing.assert_close(fused, (0.75 * pa + 0.25 * pb).double())


def test_score_ensemble_module():
    torch.manual_seed(0)
    stin = create_model("stin", 3, feature_dim=32).eval()
    scene = create_model("small3d", 3).eval()
    ens = ScoreEnsemble([scene, stin], weights=[0.3, 0.7])
    assert ens.needs_frames and ens.needs_boxes
    batch = {**boxes_batch(B=2), **frames(B=2, T=8, H=32, W=32)}
    with torch.no_grad():
        want = 0.3 * scene(batch).softmax(-1) + 0.7 * stin(batch).softmax(-1)
        torch.testing.assert_close(ens(batch).softmax(-1), want)


def test_frozen_parts_stay_in_eval_mode_through_train():
    """`trainable=last`: only the output layer trains; the dropout before it stays off, so two training-mode
    passes agree, and the frozen trunk's BatchNorm statistics do not move."""
    from vislearn.video.actions.train import set_trainable
    from vislearn.common.freeze import is_frozen

    model = create_model("small3d", 3)
    set_trainable(model, "last")
    model.train()
    assert model.classifier[1].training and not model.classifier[0].training and not model.backbone.training
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["classifier.1.weight", "classifier.1.bias"]
    assert is_frozen(model.backbone) and not is_frozen(model)
    x = frames(B=2, T=4, H=32, W=32)
    before = copy.deepcopy(model.state_dict())
    a, b = model(x), model(x)
    torch.testing.assert_close(a, b)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_checkpoint_rebuilds_without_its_initial_weight_files(tmp_path):
    """Where the initial weights came from is not the architecture: a checkpoint trained from a backbone file
    (and a fusion model from a scene checkpoint) rebuilds after those files are gone."""
    from vislearn.video.actions.checkpoints import model_from_checkpoint, weight_files

    trunk = tmp_path / "trunk.pth"
    torch.save(create_model("small3d", 5).backbone.state_dict(), trunk)
    scene, path = _scene_checkpoint(tmp_path)
    args = {"scene": "small3d", "stin": "stin", "scene_kwargs": {"backbone_weights": str(trunk)},
            "stin_kwargs": {"feature_dim": 32}, "scene_checkpoint": str(path), "freeze_scene": True}
    model = create_model("fusion", 3, **args)
    assert sorted(weight_files(args)) == sorted([str(trunk), str(path)])
    ckpt = {"model_name": "fusion", "model_args": args, "class_names": ["a", "b", "c"], "model": model.state_dict()}
    trunk.unlink()
    path.unlink()
    again = model_from_checkpoint(ckpt)
    assert all(torch.equal(again.state_dict()[k], v) for k, v in model.state_dict().items())
