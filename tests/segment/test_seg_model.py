"""Our SAM against the official `segment-anything` 1.0: the same state dict loads both ways with no key renamed,
and image embeddings, masks and IoU predictions agree (<= 1e-4 on logits) for point, box and mask prompts, multimask
on and off. The official model is built with random weights and saved, as a user's official `.pth` would be."""
from __future__ import annotations

import pytest
import torch

from vislearn.common.errors import UserError
from vislearn.segment.model.build import ARCHS, arch_of_official_state, build_sam, load_sam, save_sam

sam_official = pytest.importorskip("segment_anything")
from official_sam import SMALL, official_model  # noqa: E402



@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    official = official_model(SMALL, perturb=0.05)
    path = tmp_path_factory.mktemp("sam") / "sam_official.pth"
    torch.save(official.state_dict(), path)
    ours, arch = load_sam(path)
    return official, ours, arch


def test_official_file_loads_with_its_size_read_off_the_shapes(pair):
    official, ours, arch = pair
    assert (arch.width, arch.depth, arch.img_size, arch.window_size) == (64, 4, 128, 4)
    assert arch.global_attn_indexes == (1, 3)
    assert list(ours.state_dict()) == list(official.state_dict())
    official.load_state_dict(ours.state_dict(), strict=True)  # and ours load into the official model


def _image(seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, 128, 96), generator=g).float()


PROMPTS = {
    "point": dict(point_coords=torch.tensor([[[40.0, 50.0]]]), point_labels=torch.tensor([[1]])),
    "points": dict(point_coords=torch.tensor([[[40.0, 50.0], [10.0, 100.0], [70.0, 20.0]]]),
                   point_labels=torch.tensor([[1, 0, 1]])),
    "box": dict(boxes=torch.tensor([[10.0, 20.0, 80.0, 110.0]])),
    "box+point": dict(boxes=torch.tensor([[10.0, 20.0, 80.0, 110.0]]), point_coords=torch.tensor([[[40.0, 50.0]]]),
                      point_labels=torch.tensor([[0]])),
    "mask": dict(point_coords=torch.tensor([[[40.0, 50.0]]]), point_labels=torch.tensor([[1]]),
                 mask_inputs=torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(3))),
    "batch": dict(point_coords=torch.tensor([[[40.0, 50.0]], [[5.0, 5.0]]]), point_labels=torch.tensor([[1], [1]])),
}


@pytest.mark.parametrize("multimask", [True, False])
@pytest.mark.parametrize("prompt", list(PROMPTS))
def test_masks_and_ious_equal_the_official(pair, prompt, multimask):
    official, ours, _ = pair
    record = {"image": _image(), "original_size": (200, 150), **PROMPTS[prompt]}
    want = official([record], multimask_output=multimask)[0]
    got = ours([record], multimask_output=multimask)[0]
    assert got["low_res_logits"].shape == want["low_res_logits"].shape
    assert (got["low_res_logits"] - want["low_res_logits"]).abs().max() <= 1e-4
    assert (got["iou_predictions"] - want["iou_predictions"]).abs().max() <= 1e-4
    differ = (got["masks"] != want["masks"]).float().mean()
    assert differ <= 1e-3  # a pixel whose logit is within float noise of 0 may flip


def test_image_embedding_equals_the_official(pair):
    official, ours, _ = pair
    x = official.preprocess(_image()[None])
    with torch.no_grad():
        assert (official.image_encoder(x) - ours.image_encoder(x)).abs().max() <= 1e-4


def test_official_sizes_have_the_official_keys_and_shapes():
    """vit_b as `segment_anything.build_sam_vit_b` builds it (the model, not a forward: 90 M parameters)."""
    from segment_anything import sam_model_registry

    official = sam_model_registry["vit_b"]().state_dict()
    ours = build_sam("vit_b").state_dict()
    assert list(ours) == list(official)
    assert all(ours[k].shape == official[k].shape for k in ours)
    assert arch_of_official_state(official).name == "vit_b"


def test_our_checkpoint_round_trip_and_wrong_size(tmp_path):
    arch = ARCHS["vit_tiny_c256"]
    model = build_sam(arch)
    save_sam(tmp_path / "a.pth", model, arch, command="test")
    loaded, got = load_sam(tmp_path / "a.pth")
    assert got == arch
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    with pytest.raises(UserError, match="wrong size"):
        load_sam(tmp_path / "a.pth", arch="vit_tiny_p256")
    save_sam(tmp_path / "h.pth", model, arch, half=True)
    assert (tmp_path / "h.pth").stat().st_size < 0.55 * (tmp_path / "a.pth").stat().st_size
    half, _ = load_sam(tmp_path / "h.pth")
    assert all(v.dtype == torch.float32 for v in half.state_dict().values() if v.is_floating_point())
    assert all(torch.allclose(a, b, rtol=1e-3, atol=1e-4) for a, b in
               zip(model.state_dict().values(), half.state_dict().values()) if a.is_floating_point())
    torch.save({"weights": torch.zeros(3)}, tmp_path / "b.pth")
    with pytest.raises(UserError, match="not a SAM checkpoint"):
        load_sam(tmp_path / "b.pth")
    (tmp_path / "c.pth").write_text("not torch")
    with pytest.raises(UserError, match="c.pth"):
        load_sam(tmp_path / "c.pth")
