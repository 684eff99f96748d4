"""`vislearn pretrain convert`: official MoCo / ReSim ResNet-50 files -> an encoder checkpoint of `resnet50_ms`,
on files written the way the reference code writes them (no released weights here; none are downloaded).

Layouts, one per test:
- `test_moco_pretraining_checkpoint...`: main_moco.py's `{"epoch", "arch", "state_dict", "optimizer"}` of a MoCo
  module (`encoder_q`, `encoder_k` = torchvision resnet50 with the v2 MLP head `fc.0`/`fc.2`, buffers `queue`,
  `queue_ptr`) wrapped in `nn.DataParallel`, so its keys start with `module.`; the ReSim variant adds ReSim's
  pyramid convolutions (`fpn_lateral{5,4,3}`, `fpn_output{4,3}`) to `encoder_q`, as its moco/models.py has them.
- `test_detectron2_backbone...`: the "Detectron Backbone" files: a torchvision resnet50's keys renamed the way
  `detection/convert-pretrain-to-detectron2.py` renames them (stem., resN, convN.norm, shortcut), numpy arrays in
  `{"model": ..., "__author__": "MOCO"}`, saved with torch.save (ReSim's script) and with pickle (MoCo's).
- `test_files_that_do_not_fit...`: a truncated file, a ResNet-18 MoCo file, a file of other keys, a pickle holding an
  object that would run code: one line each, nothing written.
"""
import pickle

import pytest
import torch
from torch import nn
from torchvision.models import resnet18, resnet50

from cli_helpers import call, one_line
from vislearn.backbones import create_backbone
from vislearn.backbones.encoders import load_encoder_checkpoint
from vislearn.pretrain.__main__ import main as pretrain

pytestmark = pytest.mark.usefixtures("one_thread")
X = torch.randn(2, 3, 64, 64)


class MoCoReference(nn.Module):
    """The MoCo module's state layout (facebookresearch/moco builder.py with mlp=True; ReSim's with `resim`)."""

    def __init__(self, make=resnet50, dim: int = 128, K: int = 16, resim: bool = False):
        super().__init__()
        self.encoder_q, self.encoder_k = make(weights=None), make(weights=None)
        width = self.encoder_q.fc.in_features
        for enc in (self.encoder_q, self.encoder_k):
            enc.fc = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, dim))
            if resim:  # ReSim's moco/models.py: a detectron2-style pyramid inside the encoder
                for lvl, c in zip((5, 4, 3), (2048, 1024, 512)):
                    setattr(enc, f"fpn_lateral{lvl}", nn.Conv2d(c, 256, 1))
                    if lvl < 5:
                        setattr(enc, f"fpn_output{lvl}", nn.Conv2d(256, 256, 3, padding=1))
        self.register_buffer("queue", nn.functional.normalize(torch.randn(dim, K), dim=0))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))


def trained_like(net: nn.Module) -> nn.Module:
    """Running statistics that are not BatchNorm's initial ones, so loading them is tested too."""
    with torch.no_grad():
        net.train()(torch.randn(2, 3, 64, 64))
    return net.eval()


def layer4(net: nn.Module) -> torch.Tensor:
    trunk = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)
    with torch.no_grad():
        return trunk.eval()(X)


def converted_layer4(path) -> torch.Tensor:
    model, info = load_encoder_checkpoint(path)
    assert info.backbone == "resnet50_ms"
    with torch.no_grad():
        return model.eval().body_maps(X)["2"]


@pytest.mark.parametrize("resim", [False, True], ids=["moco", "resim"])
def test_moco_pretraining_checkpoint_converts_to_the_same_features(tmp_path, resim):
    torch.manual_seed(0)
    ref = MoCoReference(resim=resim)
    trained_like(ref.encoder_q)
    state = nn.DataParallel(ref).state_dict()
    assert {"module.queue", "module.queue_ptr", "module.encoder_q.conv1.weight", "module.encoder_q.fc.2.weight",
            "module.encoder_k.layer4.2.bn3.running_var"} <= state.keys()
    torch.save({"epoch": 200, "arch": "resnet50", "state_dict": state, "optimizer": {}}, tmp_path / "ckpt.pth.tar")

    rc, out, err = call(pretrain, "convert", tmp_path / "ckpt.pth.tar", "--out", tmp_path / "encoder.pth")
    assert rc == 0, err
    assert ("resim" if resim else "moco") in out and "head (4 tensors)" in out and ("pyramid (10" in out) == resim
    torch.testing.assert_close(converted_layer4(tmp_path / "encoder.pth"), layer4(ref.encoder_q))
    ckpt = torch.load(tmp_path / "encoder.pth", weights_only=True)
    assert ckpt["format"] == "vislearn-encoder" and ckpt["source"]["method"] == ("resim" if resim else "moco")
    assert ckpt["source"]["epoch"] == 200 and all(k.startswith("body.") for k in ckpt["model"])
    # the same file by name through the registry, as the other families load weights
    enc = create_backbone("resnet50_ms", weights=str(tmp_path / "encoder.pth")).eval()
    with torch.no_grad():
        torch.testing.assert_close(enc.body_maps(X)["2"], layer4(ref.encoder_q))

    rc, _, err = call(pretrain, "convert", tmp_path / "ckpt.pth.tar", "--out", tmp_path / "encoder.pth")
    assert rc == 2 and "--overwrite" in one_line(err)


def detectron2_name(k: str) -> str:
    """convert-pretrain-to-detectron2.py's renaming of one encoder_q key."""
    if "layer" not in k:
        k = "stem." + k
    for t in (1, 2, 3, 4):
        k = k.replace(f"layer{t}", f"res{t + 1}")
    for t in (1, 2, 3):
        k = k.replace(f"bn{t}", f"conv{t}.norm")
    return k.replace("downsample.0", "shortcut").replace("downsample.1", "shortcut.norm")


def test_detectron2_backbone_files_convert_to_the_same_features(tmp_path):
    torch.manual_seed(1)
    net = trained_like(resnet50(weights=None))
    model = {detectron2_name(k): v.numpy() for k, v in net.state_dict().items()}
    assert {"stem.conv1.weight", "stem.conv1.norm.running_var", "res2.0.shortcut.weight",
            "res2.0.shortcut.norm.weight", "res5.2.conv3.norm.bias", "stem.fc.weight"} <= model.keys()
    file = {"model": model, "__author__": "MOCO", "matching_heuristics": True}
    torch.save(file, tmp_path / "resim_d2.pth")
    with open(tmp_path / "moco_d2.pkl", "wb") as f:
        pickle.dump(file, f)
    for name in ("resim_d2.pth", "moco_d2.pkl"):
        rc, out, err = call(pretrain, "convert", tmp_path / name, "--out", tmp_path / f"{name}.enc.pth",
                            "--method", "resim")
        assert rc == 0 and "detectron2 layout" in out, err
        torch.testing.assert_close(converted_layer4(tmp_path / f"{name}.enc.pth"), layer4(net))


def test_files_that_do_not_fit_are_refused_in_one_line(tmp_path):
    torch.manual_seed(2)
    ref = MoCoReference(make=resnet18)
    torch.save({"epoch": 1, "arch": "resnet18", "state_dict": nn.DataParallel(ref).state_dict(), "optimizer": {}},
               tmp_path / "r18.pth.tar")
    rc, _, err = call(pretrain, "convert", tmp_path / "r18.pth.tar", "--out", tmp_path / "a.pth")
    line = one_line(err)
    assert rc == 2 and "r18.pth.tar" in line and "do not fit" in line and not (tmp_path / "a.pth").exists()

    data = (tmp_path / "r18.pth.tar").read_bytes()
    (tmp_path / "cut.pth.tar").write_bytes(data[: len(data) // 2])
    rc, _, err = call(pretrain, "convert", tmp_path / "cut.pth.tar", "--out", tmp_path / "b.pth")
    assert rc == 2 and "cut.pth.tar" in one_line(err) and not (tmp_path / "b.pth").exists()

    torch.save({"state_dict": {"backbone.weight": torch.zeros(2)}}, tmp_path / "other.pth")
    rc, _, err = call(pretrain, "convert", tmp_path / "other.pth", "--out", tmp_path / "c.pth")
    assert rc == 2 and "no encoder_q" in one_line(err)

    class RunsCode:
        def __reduce__(self):
            return (print, ("the file ran code",))

    with open(tmp_path / "unsafe.pkl", "wb") as f:  # a detectron2-style pickle with an object besides arrays
        pickle.dump({"model": {"stem.conv1.weight": RunsCode()}}, f)
    rc, out, err = call(pretrain, "convert", tmp_path / "unsafe.pkl", "--out", tmp_path / "d.pth")
    assert rc == 2 and "could run code" in one_line(err) and "ran code" not in out
