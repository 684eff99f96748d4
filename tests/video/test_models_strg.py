"""STRG: region features line up with the pixels, graphs and masking, learning, checkpoints, fusion."""
import json

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.ops import box_iou

from vislearn.video.actions.models import STRG, create_model, load_backbone_weights
from vislearn.video.actions.models.strg import GraphConv, pairwise_iou, region_features, temporal_graphs
from vislearn.video.data.annotations import frame_name
from vislearn.video.data.box_store import open_boxes
from vislearn.video.data.clip_dataset import ClipDataset, collate
from vislearn.video.data.ssv2 import Record

from conftest import encode_video

torch.set_num_threads(1)


def strg_small(num_classes=5, **kw):
    kw = {"scene": "small3d", "scene_kwargs": {"width": 8, "feature_dim": 32}, "node_dim": 16, "roi_size": 3,
          **kw}
    return create_model("strg", num_classes, **kw)


def batch_of(B=2, T=8, N=4, H=48, seed=0, keep=0.7):
    g = torch.Generator().manual_seed(seed)
    centre = torch.rand(B, T, N, 2, generator=g) * 0.5 + 0.25
    size = torch.rand(B, T, N, 2, generator=g) * 0.3 + 0.1
    mask = torch.rand(B, T, N, generator=g) < keep
    boxes = torch.cat([centre, size], -1) * mask.unsqueeze(-1)
    return {"frames": torch.randn(B, 3, T, H, H, generator=g), "rgb_boxes": boxes, "rgb_box_mask": mask}


def test_shapes_and_attributes():
    model = strg_small().eval()
    out = model(batch_of())
    assert out.shape == (2, 5)
    assert model.feature_dim == 32 + 16 and model.features(batch_of()).shape == (2, 48)
    assert model.needs_frames and model.needs_boxes and model.needs_rgb_boxes
    with pytest.raises(ValueError, match="rgb_boxes"):
        model({"frames": torch.randn(1, 3, 8, 48, 48)})


def test_empty_slots_contribute_nothing():
    model = strg_small().eval()
    b = batch_of()
    ref = model(b)
    noisy = dict(b)  # different coordinates where the mask is False
    noisy["rgb_boxes"] = torch.where(b["rgb_box_mask"].unsqueeze(-1), b["rgb_boxes"], torch.rand_like(b["rgb_boxes"]))
    assert not torch.equal(noisy["rgb_boxes"], b["rgb_boxes"])
    torch.testing.assert_close(model(noisy), ref)
    padded = dict(b)  # two more slots, all empty
    padded["rgb_boxes"] = torch.cat([b["rgb_boxes"], torch.rand(2, 8, 2, 4)], 2)
    padded["rgb_box_mask"] = torch.cat([b["rgb_box_mask"], torch.zeros(2, 8, 2, dtype=torch.bool)], 2)
    torch.testing.assert_close(model(padded), ref)


def test_one_object_no_hand_and_no_boxes():
    model = strg_small().eval()
    b = batch_of(B=1)
    mask = torch.zeros(1, 8, 4, dtype=torch.bool)
    mask[0, :, 1] = True  # slot 0 (hand) empty, one object track
    b["rgb_box_mask"] = mask
    b["rgb_boxes"] = torch.tensor([0.5, 0.5, 0.3, 0.3]).expand(1, 8, 4, 4) * mask.unsqueeze(-1)
    fmap = model.feature_map(b)
    graph = model.graph_features(fmap, b["rgb_boxes"], mask)
    assert torch.isfinite(graph).all() and graph.abs().sum() > 0
    b["rgb_box_mask"] = torch.zeros_like(mask)  # no box at all: the global feature alone
    assert torch.equal(model.graph_features(fmap, b["rgb_boxes"], b["rgb_box_mask"]), torch.zeros(1, 16))
    assert torch.isfinite(model(b)).all()


def test_temporal_graphs_link_neighbouring_frames_by_iou():
    b = batch_of(B=2, T=4, N=3, keep=0.8, seed=3)
    boxes, mask = b["rgb_boxes"], b["rgb_box_mask"]
    fwd, bwd = temporal_graphs(boxes, mask)
    B, T, N = mask.shape
    for v in range(B):
        xyxy = torch.cat([boxes[v, ..., :2] - boxes[v, ..., 2:] / 2, boxes[v, ..., :2] + boxes[v, ..., 2:] / 2], -1)
        flat = xyxy.reshape(T * N, 4)
        iou = box_iou(flat, flat)
        real = mask[v].reshape(-1)
        for i in range(T * N):
            for graph, step in ((fwd, 1), (bwd, -1)):
                t = i // N + step
                row = torch.zeros(T * N)
                if real[i] and 0 <= t < T:
                    cols = torch.arange(t * N, t * N + N)
                    row[cols] = iou[i, cols] * real[cols]
                    row = row / row.sum() if row.sum() > 0 else row
                torch.testing.assert_close(graph[v, i], row, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(pairwise_iou(boxes.reshape(B, T * N, 4))[0, 0, 0],
                               torch.tensor(1.0 if mask[0, 0, 0] else 0.0))


def test_graph_layer_gradcheck_and_masked_rows():
    layer = GraphConv(6).double()
    x = torch.randn(1, 5, 6, dtype=torch.double, requires_grad=True)
    real = torch.tensor([[True, True, False, True, True]])
    graphs = [torch.rand(1, 5, 5, dtype=torch.double) * real[:, None, :] for _ in range(3)]
    assert torch.autograd.gradcheck(lambda x: layer(x, graphs, real), (x,))
    assert torch.equal(layer(x, graphs, real)[0, 2], torch.zeros(6, dtype=torch.double))


def test_graph_head_learns():
    """Only the region/graph head trains (trunk frozen): it fits labels that depend only on where the boxes
    are relative to each other over time, which the global pooled feature cannot see."""
    torch.manual_seed(0)
    model = strg_small(num_classes=2, dropout=0.0)
    model.backbone.requires_grad_(False)
    model.proj.requires_grad_(False)
    B, T, N = 16, 4, 2
    frames = torch.randn(1, 3, T, 48, 48).expand(B, -1, -1, -1, -1).contiguous()  # same pixels for all
    y = torch.arange(B) % 2
    boxes = torch.zeros(B, T, N, 4)
    for v in range(B):  # class 1: the two boxes overlap; class 0: apart
        boxes[v, :, 0] = torch.tensor([0.3, 0.3, 0.3, 0.3])
        boxes[v, :, 1] = torch.tensor([0.35, 0.35, 0.3, 0.3]) if y[v] else torch.tensor([0.75, 0.75, 0.3, 0.3])
    batch = {"frames": frames, "rgb_boxes": boxes, "rgb_box_mask": torch.ones(B, T, N, dtype=torch.bool)}
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=3e-3)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if n.startswith(("similarity", "graph_layers"))}
    first = None
    for _ in range(60):
        loss = nn.functional.cross_entropy(model(batch), y)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 * first, (first, loss.item())
    changed = [n for n, p in model.named_parameters() if n in before and not torch.equal(p, before[n])]
    assert len(changed) == len(before), set(before) - set(changed)


def test_scene_checkpoint_initialises_trunk_and_projection(tmp_path):
    scene = create_model("small3d", 5, width=8, feature_dim=32)
    for p in scene.parameters():
        nn.init.normal_(p)
    torch.save({"model": scene.state_dict()}, tmp_path / "scene.pt")
    model = strg_small(scene_checkpoint=str(tmp_path / "scene.pt"))
    for k, v in scene.state_dict().items():
        if k.startswith(("backbone.", "proj.")):
            assert torch.equal(model.state_dict()[k], v), k
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt"):
        strg_small(scene_checkpoint=str(tmp_path / "bad.pt"))


def test_fusion_with_stin_reads_both_box_sets(tmp_path):
    strg = strg_small()
    torch.save({"model": strg.state_dict()}, tmp_path / "strg.pt")
    fusion = create_model("fusion", 5, scene="strg", stin="stin_oie", scene_kwargs={
        "scene": "small3d", "scene_kwargs": {"width": 8, "feature_dim": 32}, "node_dim": 16, "roi_size": 3},
        stin_kwargs={"feature_dim": 32}, scene_checkpoint=str(tmp_path / "strg.pt"), freeze_scene=True).eval()
    assert fusion.needs_rgb_boxes and fusion.feature_dim == 48 + 32
    b = batch_of(T=8)
    b.update(boxes=torch.rand(2, 8, 4, 4), box_mask=torch.ones(2, 8, 4, dtype=torch.bool),
             box_ids=torch.tensor([[1, 2, 2, 0], [1, 2, 0, 0]]))
    assert fusion(b).shape == (2, 5)
    torch.testing.assert_close(fusion.scene.features(b), strg.eval().features(b))
    with pytest.raises(ValueError, match="strg"):
        create_model("strg", 5, scene="stin")


class Pool4(nn.Module):
    """A 'trunk' that only averages 4x4 pixel cells: its feature map is the picture, so region features
    can be checked against what was drawn."""

    out_dim = 3

    def forward(self, x):
        return nn.functional.avg_pool3d(x, (1, 4, 4))


@pytest.mark.parametrize("crop", ["full", "center"])
def test_box_on_a_frame_lands_on_its_feature_cells(tmp_path, crop):
    """A white square drawn on a dark 160x96 video at the annotated box: after the loader's crop and
    resize, RoIAlign at the loader's box reads white; the same box moved to a corner reads dark."""
    W, H, T = 160, 96, 12
    frames = np.full((T, H, W, 3), 20, np.uint8)
    records = []
    for t in range(T):
        x1, y1 = 50 + 3 * t, 30 + t
        frames[t, y1:y1 + 24, x1:x1 + 24] = 235
        records.append({"name": frame_name("77", t), "labels": [
            {"box2d": {"x1": x1, "y1": y1, "x2": x1 + 24, "y2": y1 + 24}, "category": "cube",
             "standard_category": "0000", "gt_annotation": "object 0"}]})
    videos = tmp_path / "videos"
    videos.mkdir()
    encode_video(videos / "77.webm", frames)
    (tmp_path / "boxes.json").write_text(json.dumps({"77": records}))
    ds = ClipDataset([Record("77", "Moving [something]", "Moving cube", ["cube"])], None,
                     open_boxes(tmp_path / "boxes.json"), videos, load_frames=True, rgb_boxes=True,
                     num_rgb_frames=4, rgb_sampler="segment", train=False, input_size=64, crop=crop)
    batch = collate([ds[0]])
    fmap = Pool4()(batch["frames"])  # [1,3,4,16,16]
    mask = batch["rgb_box_mask"]
    assert mask[0, :, 1].all() and not mask[0, :, [0, 2, 3]].any()  # the object's slot, every frame
    inside = region_features(fmap, batch["rgb_boxes"], mask, roi_size=3)[0, :, 1].mean(-1)
    moved = batch["rgb_boxes"].clone()
    moved[..., :2] = torch.stack([moved[..., 2] / 2, 1 - moved[..., 3] / 2], -1)  # bottom-left corner: background
    outside = region_features(fmap, moved, mask, roi_size=3)[0, :, 1].mean(-1)
    white = (235 / 255 - 0.45) / 0.226  # ImageNet-normalised grey levels (approximately, per channel)
    dark = (20 / 255 - 0.45) / 0.226
    assert (inside > white - 0.35).all(), inside
    assert (outside < dark + 0.35).all(), outside


def test_fewshot_last_layer_finetuning_moves_only_the_output_layer():
    """The few-shot protocol's `trainable=last` on STRG: one step changes the output layer and nothing else,
    and the frozen trunk's BatchNorm statistics stay put."""
    from vislearn.video.actions.train import set_trainable

    model = strg_small(num_classes=3)
    set_trainable(model, "last")
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    nn.functional.cross_entropy(model(batch_of()), torch.tensor([0, 2])).backward()
    opt.step()
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"classifier.1.weight", "classifier.1.bias"}


def test_bfloat16_autocast_forward_and_backward():
    """The trainer's AMP path (bf16 autocast; CUDA in training, CPU here): RoIAlign, the graphs' masked
    softmax and the index writes must agree on dtypes."""
    model = strg_small()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(batch_of())
    out.float().sum().backward()
    assert torch.isfinite(out.float()).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_missing_scene_checkpoint_is_a_one_line_error_naming_it(tmp_path, capsys):
    from vislearn.common.cli import run_main

    missing = tmp_path / "runs" / "scene" / "best.pt"
    assert run_main(lambda: strg_small(scene_checkpoint=str(missing))) == 2
    assert capsys.readouterr().err.strip() == f"error: {missing}: weights file not found"
