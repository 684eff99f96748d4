"""MobileNetV2 video trunks: I3D inflation (a static clip equals the 2D network), TSM's shift (exact
channels, zero ends, order matters), frozen blocks, checkpoints that do not need the ImageNet file, and the
trunks inside fusion, score ensembles and STRG."""
import pytest
import torch
import torch.nn.functional as F
from torchvision.models import mobilenet_v2

from vislearn.video.actions.evaluate import model_from_checkpoint
from vislearn.video.actions.models import ScoreEnsemble, create_model
from vislearn.backbones.mobilenet import MobileNetV2Video, temporal_shift

from test_models_scene import boxes_batch, randomise_bn

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def net2d_file(tmp_path_factory):
    """A torchvision-format MobileNetV2 file with non-trivial BatchNorm statistics."""
    torch.manual_seed(0)
    net = randomise_bn(mobilenet_v2(weights=None)).eval()
    path = tmp_path_factory.mktemp("w") / "mobilenet_v2_mine.pth"
    torch.save(net.state_dict(), path)
    return net, path


def clip_of(image, t):
    return image[:, :, None].expand(-1, -1, t, -1, -1).contiguous()


@pytest.mark.parametrize("inflation,frozen", [("mean", 0), ("center", 0), ("mean", 7)])
def test_inflated_static_clip_equals_2d_network(net2d_file, inflation, frozen):
    net2d, path = net2d_file
    model = create_model("i3d_mobilenet_v2", 5, pretrained=str(path), inflation=inflation, frozen_blocks=frozen).eval()
    conv = model.backbone.features[0][0]
    assert conv.weight.shape == ((32, 3, 3, 3, 3) if frozen == 0 else (32, 3, 3, 3))
    image = torch.randn(2, 3, 64, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = net2d.features(image)  # [2,1280,2,2]
        got = model.feature_map({"frames": clip_of(image, 4)})  # [2,1280,4,2,2]
    assert got.shape == (2, 1280, 4, 2, 2)
    scale = want.abs().max()
    for t in range(4):  # every frame, the edge ones included (replicate padding in time)
        torch.testing.assert_close(got[:, :, t] / scale, want / scale, rtol=1e-4, atol=1e-4)


def test_inflated_network_sees_time():
    torch.manual_seed(0)
    model = create_model("i3d_mobilenet_v2", 5).eval()
    x = torch.randn(1, 3, 6, 32, 32)
    y = x.clone()
    y[:, :, 0] += 1.0
    with torch.no_grad():
        changed = (model.feature_map({"frames": y}) - model.feature_map({"frames": x})).abs().amax((0, 1, 3, 4))
    assert (changed[:3] > 0).all()  # frame 0 reaches later frames through the 3x3x3 kernels


def test_shift_moves_exactly_the_chosen_channels():
    B, T, C, H, W = 2, 5, 16, 3, 3
    x = torch.randn(B * T, C, H, W)
    out = temporal_shift(x, T, shift_div=8).view(B, T, C, H, W)
    v = x.view(B, T, C, H, W)
    fold = C // 8
    torch.testing.assert_close(out[:, :-1, :fold], v[:, 1:, :fold], rtol=0, atol=0)  # from the next frame
    assert (out[:, -1, :fold] == 0).all()  # nothing after the last frame
    torch.testing.assert_close(out[:, 1:, fold:2 * fold], v[:, :-1, fold:2 * fold], rtol=0, atol=0)  # previous
    assert (out[:, 0, fold:2 * fold] == 0).all()
    torch.testing.assert_close(out[:, :, 2 * fold:], v[:, :, 2 * fold:], rtol=0, atol=0)
    with pytest.raises(ValueError, match="clips of 4"):
        temporal_shift(x, 4)


def test_tsm_sees_order_and_the_2d_network_does_not(net2d_file):
    """Per frame: the 2D network's output for frame t does not depend on the other frames (reversing the
    clip reverses its outputs exactly); TSM's does."""
    _, path = net2d_file
    x = torch.randn(2, 3, 8, 48, 48, generator=torch.Generator().manual_seed(2))
    tsm = create_model("tsm_mobilenet_v2", 5, pretrained=str(path)).eval()
    plain = create_model("tsm_mobilenet_v2", 5, pretrained=str(path), frozen_blocks=19).eval()  # no block shifts
    assert tsm.backbone.shift_blocks == (3, 5, 6, 8, 9, 10, 12, 13, 15, 16) and plain.backbone.shift_blocks == ()
    with torch.no_grad():
        a, b = tsm.feature_map({"frames": x}), tsm.feature_map({"frames": x.flip(2)}).flip(2)
        c, d = plain.feature_map({"frames": x}), plain.feature_map({"frames": x.flip(2)}).flip(2)
    assert (a - b).abs().max() > 1e-4 * a.abs().max()
    torch.testing.assert_close(c, d, rtol=1e-5, atol=1e-6 * c.abs().max().item())
    assert set(tsm.backbone.state_dict()) == {k for k in mobilenet_v2().state_dict() if k.startswith("features.")}


def test_imagenet_tsm_scores_a_reversed_clip_differently():
    from vislearn.common.weights import MOBILENET_V2_IMAGENET, package_file

    if package_file(MOBILENET_V2_IMAGENET) is None:
        pytest.skip(f"ImageNet MobileNetV2 weights not installed ({MOBILENET_V2_IMAGENET.install})")
    torch.manual_seed(0)
    tsm = create_model("tsm_mobilenet_v2", 5, pretrained="mobilenet_v2_imagenet").eval()
    plain = create_model("tsm_mobilenet_v2", 5, pretrained="mobilenet_v2_imagenet", frozen_blocks=19).eval()
    plain.load_state_dict(tsm.state_dict())  # the same weights, without the shifts
    ramp = torch.linspace(0, 1, 8).view(1, 1, 8, 1, 1)  # an image fading in: reversed, it fades out
    x = torch.randn(2, 3, 1, 64, 64, generator=torch.Generator().manual_seed(3)) * ramp
    with torch.no_grad():
        a, b = tsm({"frames": x}), tsm({"frames": x.flip(2)})
        c, d = plain({"frames": x}), plain({"frames": x.flip(2)})
    assert (a - b).abs().max() > 1e-2 * a.abs().max()
    torch.testing.assert_close(c, d, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["tsm_mobilenet_v2", "i3d_mobilenet_v2"])
def test_frozen_blocks_stay_put_and_cached_path_matches(net2d_file, name):
    _, path = net2d_file
    torch.manual_seed(0)
    model = create_model(name, 3, pretrained=str(path), frozen_blocks=14).train()
    trunk = model.backbone
    frozen = {k: v.clone() for k, v in trunk.frozen_part().state_dict().items()}
    assert not any(p.requires_grad for p in trunk.frozen_part().parameters())
    assert all(p.requires_grad for p in trunk.features[14:].parameters())
    assert not trunk.features[3].training and trunk.features[15].training
    x = {"frames": torch.randn(4, 3, 4, 64, 64), "label": torch.tensor([0, 1, 2, 0])}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    F.cross_entropy(model(x), x["label"]).backward()
    opt.step()
    for k, v in trunk.frozen_part().state_dict().items():  # weights and BatchNorm statistics
        assert torch.equal(v, frozen[k]), k
    model.eval()
    with torch.no_grad():
        cached = {"frame_features": trunk.frame_features(x["frames"])}
        assert cached["frame_features"].shape == (4, trunk.frame_feature_dim, 4, 4, 4)
        torch.testing.assert_close(model(cached), model(x))


def test_checkpoint_needs_no_imagenet_file(net2d_file, tmp_path):
    _, path = net2d_file
    own = tmp_path / "mobilenet_v2_copy.pth"
    own.write_bytes(path.read_bytes())
    model = create_model("fusion", 4, scene="tsm_mobilenet_v2", stin="stin_oie",
                         scene_kwargs={"pretrained": str(own), "frozen_blocks": 10}, stin_kwargs={"feature_dim": 32})
    ckpt = {"model": model.state_dict(), "model_name": "fusion", "class_names": list("abcd"),
            "model_args": {"scene": "tsm_mobilenet_v2", "stin": "stin_oie", "stin_kwargs": {"feature_dim": 32},
                           "scene_kwargs": {"pretrained": str(own), "frozen_blocks": 10}}}
    own.unlink()  # the weights the model started from are gone; the checkpoint holds all it needs
    again = model_from_checkpoint(ckpt)
    batch = {**boxes_batch(B=2), "frames": torch.randn(2, 3, 8, 32, 32)}
    with torch.no_grad():
        torch.testing.assert_close(again(batch), model.eval()(batch))


@pytest.mark.parametrize("scene", ["tsm_mobilenet_v2", "i3d_mobilenet_v2"])
def test_trunks_in_fusion_ensemble_and_strg(net2d_file, tmp_path, scene):
    _, path = net2d_file
    torch.manual_seed(0)
    scene_model = create_model(scene, 3, pretrained=str(path), frozen_blocks=14)
    ckpt = tmp_path / "scene.pt"
    torch.save({"model": scene_model.state_dict()}, ckpt)
    batch = {**boxes_batch(B=2), "frames": torch.randn(2, 3, 8, 64, 64)}
    fusion = create_model("fusion", 3, scene=scene, stin="stin_oie", scene_kwargs={"frozen_blocks": 14},
                          stin_kwargs={"feature_dim": 32}, scene_checkpoint=str(ckpt), freeze_scene=True).train()
    assert fusion.feature_dim == 512 + 32 and not fusion.scene.training
    for k, v in scene_model.state_dict().items():
        if not k.startswith("classifier."):
            assert torch.equal(fusion.scene.state_dict()[k], v), k
    F.cross_entropy(fusion(batch), batch["label"]).backward()
    assert all(p.grad is None for p in fusion.scene.parameters())
    joint = create_model("fusion", 3, scene=scene, stin="stin_oie", scene_kwargs={"frozen_blocks": 14},
                         stin_kwargs={"feature_dim": 32}, scene_checkpoint=str(ckpt)).train()
    F.cross_entropy(joint(batch), batch["label"]).backward()  # joint: the trained blocks learn, frozen ones not
    trunk = joint.scene.backbone
    assert all(p.grad is not None for p in trunk.features[14:].parameters())
    assert all(p.grad is None for p in trunk.frozen_part().parameters())
    ensemble = ScoreEnsemble([scene_model.eval(), create_model("stin_oie", 3, feature_dim=32).eval()])
    with torch.no_grad():
        assert torch.allclose(ensemble(batch).exp().sum(1), torch.ones(2))
    strg = create_model("strg", 3, scene=scene, scene_kwargs={"frozen_blocks": 14}, scene_checkpoint=str(ckpt),
                        node_dim=16, roi_size=2).eval()
    assert isinstance(strg.backbone, MobileNetV2Video) and strg.region_proj[0].in_features == 1280
    mask = torch.zeros(2, 8, 4, dtype=torch.bool)
    mask[:, :, :2] = True
    strg_batch = {**batch, "rgb_boxes": torch.tensor([0.5, 0.5, 0.4, 0.4]).expand(2, 8, 4, 4) * mask[..., None],
                  "rgb_box_mask": mask}
    with torch.no_grad():
        out = strg(strg_batch)
        cached = strg({**strg_batch, "frames": None, "frame_features": strg.backbone.frame_features(batch["frames"])})
    assert out.shape == (2, 3)
    torch.testing.assert_close(cached, out)


def test_depthwise_temporal_conv_trains_like_conv3d():
    from vislearn.backbones.mobilenet import DepthwiseConv3dReplicateT

    torch.manual_seed(0)
    model = create_model("i3d_mobilenet_v2", 3, frozen_blocks=15)
    conv = model.backbone.features[16].conv[1][0]
    assert type(conv) is DepthwiseConv3dReplicateT and conv.weight.shape == (960, 1, 3, 3, 3)
    x = torch.randn(2, 960, 5, 4, 4, requires_grad=True)
    y = conv(x)  # the 2D-tap path (gradients needed)
    ref = F.conv3d(F.pad(x, (0, 0, 0, 0, 1, 1), mode="replicate"), conv.weight, None, 1, (0, 1, 1), 1, 960)
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)
    gy = torch.randn_like(y)
    g_taps = torch.autograd.grad(y, (x, conv.weight), gy)
    g_ref = torch.autograd.grad(ref, (x, conv.weight), gy)
    for a, b in zip(g_taps, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        torch.testing.assert_close(conv(x), ref, rtol=1e-5, atol=1e-5)
