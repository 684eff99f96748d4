"""STRG on the TSM MobileNetV2 trunk at output stride 16 (configs/video/synthetic/strg.yaml): the dilated
trunk's finer map, its feature-cache key, a stride-32 scene run's checkpoint loading into it, and training
with the frozen blocks left alone."""
import pytest
import torch
import torch.nn.functional as F
from torchvision.models import mobilenet_v2

from vislearn.backbones.mobilenet import MobileNetV2Video
from vislearn.video.actions.config import load_config
from vislearn.video.actions.models import create_model
from vislearn.common.paths import CONFIG_DIR

from test_models_mobilenet import net2d_file  # noqa: F401  (a fixture)
from test_models_scene import randomise_bn

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def net_file(net2d_file):
    """test_models_mobilenet's MobileNetV2 file (non-trivial BatchNorm statistics)."""
    return net2d_file[1]


def trunk(path, frozen, stride):
    return create_model("tsm_mobilenet_v2", 3, pretrained=str(path), frozen_blocks=frozen,
                        output_stride=stride).backbone.eval()


def test_stride16_map_is_8x8_and_the_stride32_map_on_its_even_cells(net_file):
    """Dilation with matching padding computes the stride-32 network on a twice finer grid: its even cells are
    exactly the stride-32 map (wrong padding or dilation shifts or blurs them)."""
    s32, s16, s8 = (trunk(net_file, 14, s) for s in (32, 16, 8))
    x = torch.randn(1, 3, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        m32, m16, m8 = s32(x), s16(x), s8(x)
        torch.testing.assert_close(s16.frame_features(x), s32.frame_features(x), rtol=0, atol=0)
    assert m32.shape == (1, 1280, 3, 4, 4) and m16.shape == (1, 1280, 3, 8, 8) and m8.shape[-2:] == (16, 16)
    torch.testing.assert_close(m16[..., ::2, ::2], m32, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(m8[..., ::4, ::4], m32, rtol=1e-4, atol=1e-4)
    assert (m16[..., 1::2, 1::2] - m32).abs().max() > 1e-3  # the odd cells are new (the even ones: ~1e-6)
    assert list(s16.state_dict()) == list(s32.state_dict())  # torchvision's keys, same shapes
    with pytest.raises(ValueError, match="output_stride"):
        MobileNetV2Video(mobilenet_v2(weights=None), output_stride=12)


def test_feature_cache_key_shared_only_when_the_frozen_part_is_unchanged(net_file):
    # frozen blocks 0-13 are untouched by the dilation: the stride-32 scene run's entries at block 13 serve
    assert trunk(net_file, 14, 16).frozen_digest() == trunk(net_file, 14, 32).frozen_digest()
    # a frozen block 14 at stride 1 computes another map from the same weights: another cache folder
    assert trunk(net_file, 16, 16).frozen_digest() != trunk(net_file, 16, 32).frozen_digest()
    assert trunk(net_file, 16, 16).frozen_digest() != trunk(net_file, 16, 8).frozen_digest()


def strg16(ckpt=None):
    return create_model("strg", 3, scene="tsm_mobilenet_v2", node_dim=16, roi_size=4, scene_checkpoint=ckpt,
                        scene_kwargs={"frozen_blocks": 14, "output_stride": 16, "head": "frames", "num_frames": 4})


def boxes_on(B, T):
    mask = torch.zeros(B, T, 4, dtype=torch.bool)
    mask[:, :, :2] = True
    boxes = torch.tensor([[0.3, 0.4, 0.3, 0.4], [0.7, 0.6, 0.25, 0.3], [0, 0, 0, 0], [0, 0, 0, 0]])
    return {"rgb_boxes": boxes.expand(B, T, 4, 4).clone(), "rgb_box_mask": mask}


def test_stride32_scene_checkpoint_loads_into_stride16_strg(net_file, tmp_path):
    torch.manual_seed(0)
    scene = create_model("tsm_mobilenet_v2", 3, pretrained=str(net_file), frozen_blocks=16, head="frames",
                         num_frames=4).eval()
    randomise_bn(scene, seed=2)  # trained-looking statistics in the blocks the scene run trained
    ckpt = tmp_path / "best.pt"
    torch.save({"model": scene.state_dict()}, ckpt)
    strg = strg16(str(ckpt)).eval()
    for k, v in scene.state_dict().items():
        if not k.startswith("classifier."):
            assert torch.equal(strg.state_dict()[k], v), k
    # the same weights on the stride-32 grid (with frozen 14, as STRG: block 15 is now a trained TSM block
    # and shifts, which the scene run's frozen block 15 did not)
    coarse = create_model("tsm_mobilenet_v2", 3, frozen_blocks=14, head="frames", num_frames=4).eval()
    coarse.load_state_dict(scene.state_dict())
    frames = torch.randn(1, 3, 4, 128, 128, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        fine = strg.feature_map({"frames": frames})
        torch.testing.assert_close(fine[..., ::2, ::2], coarse.backbone(frames), rtol=1e-4, atol=1e-4)
    assert fine.shape[-2:] == (8, 8)


def test_strg_stride16_trains_its_later_blocks_only():
    torch.manual_seed(0)
    model = strg16().train()
    bb = model.backbone
    frozen = {k: v.clone() for k, v in bb.frozen_part().state_dict().items()}
    later = {k: v.clone() for k, v in bb.features[14:].state_dict().items()}
    frames = torch.randn(2, 3, 4, 128, 128)
    with torch.no_grad():
        cached = bb.frame_features(frames)
    assert cached.shape == (2, 96, 4, 8, 8)  # what the feature cache keeps: block 13's output
    batch = {"frame_features": cached, **boxes_on(2, 4), "label": torch.tensor([0, 2])}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    F.cross_entropy(model(batch), batch["label"]).backward()
    assert all(p.grad is not None for p in bb.features[14:].parameters())
    opt.step()
    for k, v in bb.frozen_part().state_dict().items():  # weights and BatchNorm statistics
        assert torch.equal(v, frozen[k]), k
    now = bb.features[14:].state_dict()
    assert {k.split(".")[0] for k in later if not torch.equal(now[k], later[k])} == {"14", "15", "16", "17", "18"}
    model.eval()
    with torch.no_grad():  # the cached path and the pixel path agree
        torch.testing.assert_close(model({**batch, "frame_features": bb.frame_features(frames)}),
                                   model({**batch, "frames": frames, "frame_features": None}))


def test_fusion_strg_config_builds_strg_yaml_architecture():
    strg = load_config(CONFIG_DIR / "video/synthetic/strg.yaml").model_args
    fused = load_config(CONFIG_DIR / "video/synthetic/fusion_strg.yaml").model_args["scene_kwargs"]
    assert {k: v for k, v in strg.items() if k != "scene_checkpoint"} == fused
    assert strg["scene_kwargs"]["output_stride"] == 16 and strg["scene_kwargs"]["frozen_blocks"] <= 14


@pytest.mark.parametrize("size", [8, 6])  # 6: not a multiple of dilation 4, the plain conv runs
def test_dilated_depthwise_convs_train_as_the_plain_convolution(size):
    """The space-to-batch path the dilated blocks train through gives the dilated conv's values and gradients,
    in 2D (TSM) and with the inflated temporal taps (I3D)."""
    from torch import nn
    from vislearn.backbones.i3d_resnet import Conv3dReplicateT
    from vislearn.backbones.mobilenet import DepthwiseConv3dReplicateT, DilatedDepthwiseConv2d

    g = torch.Generator().manual_seed(0)
    for d in (2, 4):
        plain = nn.Conv2d(12, 12, 3, padding=d, dilation=d, groups=12)
        fast = DilatedDepthwiseConv2d(12, 12, 3, padding=d, dilation=d, groups=12)
        plain3 = Conv3dReplicateT(12, 12, (3, 3, 3), padding=(0, d, d), dilation=(1, d, d), groups=12, temporal_pad=1)
        fast3 = DepthwiseConv3dReplicateT(12, 12, (3, 3, 3), padding=(0, d, d), dilation=(1, d, d), groups=12,
                                          temporal_pad=1)
        fast.load_state_dict(plain.state_dict())
        fast3.load_state_dict(plain3.state_dict())
        for a, b, shape in ((plain, fast, (3, 12, size, size)), (plain3, fast3, (2, 12, 4, size, size))):
            x = torch.randn(*shape, generator=g)
            xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
            ya, yb = a(xa), b(xb)
            torch.testing.assert_close(yb, ya, rtol=1e-5, atol=1e-5)
            w = torch.randn(ya.shape, generator=g)
            (ya * w).sum().backward()
            (yb * w).sum().backward()
            torch.testing.assert_close(xb.grad, xa.grad, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(b.weight.grad, a.weight.grad, rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(b.bias.grad, a.bias.grad, rtol=1e-4, atol=1e-4)
