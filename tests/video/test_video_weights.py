"""torchvision-format weight files from a local path: video trunks (r3d_18, mc3_18, r2plus1d_18, s3d, swin3d_t,
mvit_v1_b) and ImageNet 2D ResNet-50 (inflated into i3d_r50). Files are torchvision's own state dicts, named
as torchvision names them (`<model>-<first 8 hex digits of sha256>.pth`); they load strictly, a damaged or
renamed file and a file of another architecture are one-line errors (exit 2 through the CLI)."""
import shutil
from pathlib import Path

import pytest
import torch
from torchvision.models import resnet50
from torchvision.models import video as tvv

from vislearn.video.actions.models import create_model
from vislearn.common.errors import UserError
from vislearn.common.weights import file_sha256

pytestmark = pytest.mark.usefixtures("one_thread")


def torchvision_file(net: torch.nn.Module, folder: Path, arch: str) -> Path:
    """`net`'s state dict saved as torchvision names its weight files."""
    tmp = folder / f"{arch}.tmp"
    torch.save(net.state_dict(), tmp)
    path = folder / f"{arch}-{file_sha256(tmp)[:8]}.pth"
    tmp.rename(path)
    return path


HEADS = ("fc.", "head.", "classifier.", "avgpool.")


@pytest.mark.parametrize("arch", ["r3d_18", "mc3_18", "r2plus1d_18", "s3d", "swin3d_t", "mvit_v1_b"])
def test_torchvision_video_weights_load_strictly(arch, tmp_path):
    torch.manual_seed(0)
    net = getattr(tvv, arch)(weights=None)
    path = torchvision_file(net, tmp_path, arch)
    model = create_model(arch, 7, backbone_weights=str(path))
    own = model.backbone.state_dict()
    theirs = {k: v for k, v in net.state_dict().items() if not k.startswith(HEADS)}
    assert set(own) == set(theirs)
    assert all(torch.equal(own[k], v) for k, v in theirs.items())


@pytest.mark.parametrize("arch", ["r3d_18", "swin3d_t"])
def test_the_trunk_computes_what_torchvision_computes(arch, tmp_path):
    torch.manual_seed(0)
    net = getattr(tvv, arch)(weights=None).eval()
    model = create_model(arch, 7, backbone_weights=str(torchvision_file(net, tmp_path, arch))).eval()
    setattr(net, "fc" if arch == "r3d_18" else "head", torch.nn.Identity())  # torchvision's pooled feature
    clip = torch.randn(2, 3, 4, 48, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model.feature_map({"frames": clip}).mean((2, 3, 4)), net(clip), rtol=1e-4, atol=1e-5)


def test_mvit_takes_its_fixed_clip_size_only():
    model = create_model("mvit_v1_b", 3).eval()
    with pytest.raises(ValueError, match=r"mvit_v1_b takes clips of 16x224x224 .* got 8x112x112"):
        model({"frames": torch.zeros(1, 3, 8, 112, 112)})


def test_imagenet_resnet50_file_inflates_into_i3d(tmp_path):
    torch.manual_seed(0)
    net = resnet50(weights=None)
    path = torchvision_file(net, tmp_path, "resnet50")
    model = create_model("i3d_r50", 3, backbone_weights=str(path))
    w2d = net.layer1[0].conv1.weight  # a 3x1x1 kernel there: the 2D weights / 3 on each tap
    torch.testing.assert_close(model.backbone.layer1[0].conv1.weight, w2d.unsqueeze(2).repeat(1, 1, 3, 1, 1) / 3)


def test_a_damaged_or_renamed_file_is_refused(tmp_path):
    torch.manual_seed(0)
    path = torchvision_file(tvv.r3d_18(weights=None), tmp_path, "r3d_18")
    damaged = tmp_path / "damaged" / path.name
    damaged.parent.mkdir()
    damaged.write_bytes(path.read_bytes()[:-1000])  # an incomplete download, same name
    with pytest.raises(UserError) as e:
        create_model("r3d_18", 3, backbone_weights=str(damaged))
    msg = str(e.value)
    assert "\n" not in msg and str(damaged) in msg and f"its name says sha256 {path.name[7:15]}" in msg
    renamed = tmp_path / "r3d_18-00000000.pth"  # another file under a torchvision name
    shutil.copy(path, renamed)
    with pytest.raises(UserError, match="r3d_18-00000000.pth: its name says sha256 00000000"):
        create_model("r3d_18", 3, backbone_weights=str(renamed))
    mine = tmp_path / "my_r3d_18_kinetics.pth"  # a name without a hash: no name check, loads
    shutil.copy(path, mine)
    create_model("r3d_18", 3, backbone_weights=str(mine))


def test_another_architecture_through_the_training_cli(tmp_path, capsys):
    """r3d_18 weights given to mc3_18: exit 2 and one line naming the keys whose shapes differ; nothing loads in part."""
    from vislearn.video.actions.train import main as train

    torch.manual_seed(0)
    path = torchvision_file(tvv.r3d_18(weights=None), tmp_path, "r3d_18")
    split = tmp_path / "split"
    split.mkdir()
    (split / "labels.json").write_text('{"a": "0", "b": "1"}')
    assert train(["--dry-run", f"split={split}", "model=mc3_18", f"model_args.backbone_weights={path}"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and path.name in lines[0] and "weights do not fit VideoResNetTrunk" in lines[0], lines
    assert "shape mismatches" in lines[0] and "layer2.0.conv1.0.weight: file (128, 64, 3, 3, 3) vs model (128, 64, 1, 3, 3)" in lines[0]


@pytest.mark.slow
def test_mvit_trunk_map_is_torchvision_patch_tokens(tmp_path):
    torch.manual_seed(0)
    net = tvv.mvit_v1_b(weights=None).eval()
    model = create_model("mvit_v1_b", 7, backbone_weights=str(torchvision_file(net, tmp_path, "mvit_v1_b"))).eval()
    seen = {}
    net.norm.register_forward_hook(lambda m, i, o: seen.update(tokens=o))
    clip = torch.randn(1, 3, 16, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        net(clip)
        fmap = model.feature_map({"frames": clip})
    assert fmap.shape == (1, 768, 8, 7, 7)
    torch.testing.assert_close(fmap.flatten(2).transpose(1, 2), seen["tokens"][:, 1:], rtol=1e-4, atol=1e-5)
