"""Space-Time Region Graphs (STRG; Wang & Gupta, "Videos as Space-Time Region Graphs", ECCV 2018).

The paper's strongest Something-Else rows use STRG, but the official release ships only a
compiled stub. This is a re-implementation on top of any scene trunk (I3D ResNet-50 as in the
paper, or the CPU `small3d`):

  frames -> trunk feature map [B,D,T'',H',W'] -> time-pooled to the T box frames [B,D,T,H',W']
  region nodes: RoIAlign at each (frame, slot) box, max over the RoI grid, Linear+ReLU -> [B,T*N,C]
  graphs over the nodes (all [B,M,M], M = T*N):
    similarity  softmax_j(theta(x_i) . phi(x_j) / sqrt(d))   learned affinities, all frame pairs
    forward     IoU(box_i at t, box_j at t+1), each row normalised to sum 1
    backward    IoU(box_i at t, box_j at t-1), each row normalised to sum 1
  graph convolution layers: X <- X + ReLU(LayerNorm(sum_g G_g X W_g))   (3 layers, as the paper)
  feature = concat(global mean of the feature map -> Linear+ReLU, mean of the node features)

Boxes are the batch's `rgb_boxes` / `rgb_box_mask`: the slots on the RGB frames the trunk saw,
(cx,cy,w,h) normalised to the same crop as the pixels (`video.data.clip_dataset`, rgb_boxes=True),
so box and feature map share coordinates by construction. The mask is STIN's slot mask: an empty
(frame, slot) is not a node. It gets no feature, no edge in any graph, and stays out of the mean.
A video with no box at all is classified from the global feature alone.

Submodule names `backbone` / `proj` / `frame_head` equal those of `SceneModel`, so a trained scene stream
initialises STRG directly (`create_model("strg", ..., scene_checkpoint=...)`). RoIAlign needs a map with
more than a cell or two per box: on the TSM MobileNetV2 trunk STRG runs at `output_stride: 16` (8x8 cells
at 128 px; the dilated trunk takes the weights of a stride-32 scene run as they are, see
`vislearn.backbones.mobilenet`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_convert, roi_align

from .layers import masked_apply, masked_mean
from vislearn.backbones.loading import load_backbone_weights

from .scene import SceneModel, pool_map, trunk_map


def node_boxes_xyxy(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(cx,cy,w,h) normalised to the input view -> (x1,y1,x2,y2) in feature-map cells."""
    xyxy = box_convert(boxes, "cxcywh", "xyxy")
    return xyxy * xyxy.new_tensor([width, height, width, height])


def region_features(fmap: torch.Tensor, boxes: torch.Tensor, mask: torch.Tensor, roi_size: int = 7,
                    sampling_ratio: int = 2, dense: bool = False) -> torch.Tensor:
    """RoIAlign of a time-aligned feature map at the real boxes, max-pooled over the RoI grid.

    fmap [B,D,T,H,W] (time already matched to the box frames), boxes [B,T,N,4] normalised
    (cx,cy,w,h), mask [B,T,N]. Returns [B,T,N,D], zero where the mask is False.
    `dense=True` pools at every (frame, slot) box and zeroes the empty ones after: the same result
    (each RoI is pooled on its own) with fixed shapes instead of the mask's data-dependent gather, which
    is what TorchScript/ONNX export needs.
    """
    B, D, T, H, W = fmap.shape
    if not torch.jit.is_tracing() and (tuple(boxes.shape[:2]) != (B, T) or tuple(mask.shape) != tuple(boxes.shape[:3])):
        raise ValueError(f"region_features: feature map {list(fmap.shape)} (time-pooled) does not match "
                         f"boxes {list(boxes.shape)} / mask {list(mask.shape)}")
    N = boxes.shape[2]
    planes = fmap.permute(0, 2, 1, 3, 4).reshape(B * T, D, H, W)  # one image per (video, frame)
    if dense:
        rois = node_boxes_xyxy(boxes.reshape(B * T * N, 4).to(fmap.dtype), H, W)
        plane = torch.arange(B * T, device=fmap.device).repeat_interleave(N).to(fmap.dtype).unsqueeze(1)
        pooled = roi_align(planes, torch.cat([plane, rois], 1), roi_size, spatial_scale=1.0,
                           sampling_ratio=sampling_ratio, aligned=True)  # [B*T*N,D,r,r]
        return pooled.amax((2, 3)).reshape(B, T, N, D).masked_fill(~mask.unsqueeze(-1), 0.0)
    idx = mask.nonzero(as_tuple=False)  # [K,3] (b, t, n)
    if idx.shape[0] == 0:
        return fmap.new_zeros(B, T, N, D)
    rois = node_boxes_xyxy(boxes[idx[:, 0], idx[:, 1], idx[:, 2]].to(fmap.dtype), H, W)
    plane = (idx[:, 0] * T + idx[:, 1]).to(fmap.dtype).unsqueeze(1)
    pooled = roi_align(planes, torch.cat([plane, rois], 1), roi_size, spatial_scale=1.0,
                       sampling_ratio=sampling_ratio, aligned=True)  # [K,D,r,r]
    out = pooled.new_zeros(B, T, N, D)  # pooled's dtype: RoIAlign may run in float32 under autocast
    out[idx[:, 0], idx[:, 1], idx[:, 2]] = pooled.amax((2, 3))
    return out


def pool_time(fmap: torch.Tensor, frames: int) -> torch.Tensor:
    """`F.adaptive_avg_pool3d(fmap, (frames, H, W))` [B,D,T,H,W] -> [B,D,frames,H,W] as a product with its
    constant [frames, T] averaging matrix: the same numbers, and it exports (ONNX's adaptive pooling
    needs an output size dividing the input's; a trunk's T/4 time steps are pooled *up* to T box frames)."""
    t_in = int(fmap.shape[2])
    if t_in == frames:
        return fmap
    weights = torch.zeros(frames, t_in, dtype=fmap.dtype, device=fmap.device)
    for i in range(frames):
        start, end = (i * t_in) // frames, -(-((i + 1) * t_in) // frames)
        weights[i, start:end] = 1.0 / (end - start)
    return torch.einsum("bdthw,st->bdshw", fmap, weights)


def pairwise_iou(boxes: torch.Tensor) -> torch.Tensor:
    """IoU between all boxes of each video: boxes [B,M,4] (cx,cy,w,h) -> [B,M,M]."""
    xyxy = box_convert(boxes, "cxcywh", "xyxy")
    lt = torch.maximum(xyxy[:, :, None, :2], xyxy[:, None, :, :2])
    rb = torch.minimum(xyxy[:, :, None, 2:], xyxy[:, None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = (xyxy[..., 2:] - xyxy[..., :2]).clamp(min=0).prod(-1)
    return inter / (area[:, :, None] + area[:, None, :] - inter).clamp(min=1e-9)


def temporal_graphs(boxes: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward and backward spatial-temporal graphs [B,M,M] over nodes m = t*N + n.

    Edge i->j weighs IoU(box_i, box_j) for j on the next (forward) / previous (backward) frame;
    each row is normalised to sum 1 (a row without overlap stays zero); empty nodes have no edge.
    """
    B, T, N, _ = boxes.shape
    iou = pairwise_iou(boxes.reshape(B, T * N, 4).float())
    frame = torch.arange(T, device=boxes.device).repeat_interleave(N)
    real = mask.reshape(B, T * N)
    both = real[:, :, None] & real[:, None, :]
    graphs = []
    for step in (1, -1):
        edge = (frame[None, :] == frame[:, None] + step)[None] & both
        g = iou * edge
        graphs.append(g / g.sum(-1, keepdim=True).clamp(min=1e-9))
    return graphs[0], graphs[1]


class SimilarityGraph(nn.Module):
    """Learned affinities: softmax over the real nodes j of theta(x_i) . phi(x_j) / sqrt(d)."""

    def __init__(self, dim: int, inner: int):
        super().__init__()
        self.theta, self.phi = nn.Linear(dim, inner), nn.Linear(dim, inner)
        self.scale = inner ** -0.5

    def forward(self, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        logits = self.theta(x) @ self.phi(x).transpose(1, 2) * self.scale  # [B,M,M]
        logits = logits.masked_fill(~real[:, None, :], torch.finfo(logits.dtype).min)
        return logits.softmax(-1) * real[:, :, None] * real[:, None, :]


class GraphConv(nn.Module):
    """One STRG layer: X + ReLU(LayerNorm(sum over graphs of G X W)); empty nodes stay zero."""

    def __init__(self, dim: int, num_graphs: int = 3):
        super().__init__()
        self.weights = nn.ModuleList(nn.Linear(dim, dim, bias=False) for _ in range(num_graphs))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, graphs: list[torch.Tensor], real: torch.Tensor) -> torch.Tensor:
        msg = sum(g.to(x.dtype) @ w(x) for g, w in zip(graphs, self.weights))
        return (x + F.relu(self.norm(msg))) * real.unsqueeze(-1).to(x.dtype)


class STRG(nn.Module):
    """Scene trunk + space-time region graph head (see the module docstring)."""

    needs_frames = True
    needs_boxes = True
    needs_rgb_boxes = True

    def __init__(self, scene: SceneModel, num_classes: int, *, node_dim: int = 512, graph_layers: int = 3,
                 roi_size: int = 7, similarity_dim: int | None = None, dropout: float = 0.5):
        super().__init__()
        # names as SceneModel: its weights load
        self.backbone, self.proj, self.frame_head = scene.backbone, scene.proj, scene.frame_head
        self.num_classes, self.node_dim, self.roi_size = num_classes, node_dim, roi_size
        self.region_proj = nn.Sequential(nn.Linear(scene.backbone.out_dim, node_dim), nn.ReLU(inplace=True))
        self.similarity = SimilarityGraph(node_dim, similarity_dim or node_dim)
        self.graph_layers = nn.ModuleList(GraphConv(node_dim) for _ in range(graph_layers))
        self.feature_dim = scene.feature_dim + node_dim
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.feature_dim, num_classes))

    def feature_map(self, batch: dict) -> torch.Tensor:
        return trunk_map(self.backbone, batch)

    def graph_features(self, fmap: torch.Tensor, boxes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean of the graph-convolved region nodes [B, node_dim] (zero for a video without boxes)."""
        B, T, N, _ = boxes.shape
        fmap = pool_time(fmap, int(T))  # trunk time -> box frames
        dense = not self.training  # eval: no gathers, fixed shapes (export-friendly), same result
        regions = region_features(fmap, boxes, mask, self.roi_size, dense=dense)  # [B,T,N,D]
        x = masked_apply(self.region_proj, regions, mask, self.node_dim, dense).reshape(B, T * N, self.node_dim)
        real = mask.reshape(B, T * N)
        graphs = [self.similarity(x, real), *temporal_graphs(boxes, mask)]
        for layer in self.graph_layers:
            x = layer(x, graphs, real)
        return masked_mean(x, real, 1)

    def features(self, batch: dict) -> torch.Tensor:
        if "rgb_boxes" not in batch:
            raise ValueError("STRG reads `rgb_boxes` / `rgb_box_mask` (boxes on the RGB frames): build the "
                             "dataset with rgb_boxes=True")
        boxes, mask = batch["rgb_boxes"].float(), batch["rgb_box_mask"].bool()
        fmap = self.feature_map(batch)
        if not torch.jit.is_tracing() and (boxes.dim() != 4 or boxes.shape[0] != fmap.shape[0]
                                           or tuple(mask.shape) != tuple(boxes.shape[:3])):
            raise ValueError(f"STRG: rgb_boxes must be [B,T,N,4] with rgb_box_mask [B,T,N], got "
                             f"{list(boxes.shape)} and {list(mask.shape)}")
        scene = pool_map(fmap, self.proj, self.frame_head)
        return torch.cat([scene, self.graph_features(fmap, boxes, mask)], 1)

    def forward(self, batch: dict) -> torch.Tensor:
        return self.classifier(self.features(batch))


def strg(
    num_classes: int,
    *,
    scene: str = "i3d_r50",
    scene_kwargs: dict | None = None,
    scene_checkpoint: str | None = None,
    node_dim: int = 512,
    graph_layers: int = 3,
    roi_size: int = 7,
    similarity_dim: int | None = None,
    dropout: float = 0.5,
) -> STRG:
    """STRG over the trunk of scene model `scene` (I3D ResNet-50 in the paper).

    `scene_checkpoint`: a local checkpoint of a trained scene model (e.g. the trainer's best.pt),
    whose trunk and feature projection initialise STRG's; its classifier is not loaded.
    """
    from . import SCENE_MODELS, create_model  # the name table imports this module

    if scene not in SCENE_MODELS:
        raise ValueError(f"strg: unknown scene model {scene!r}; valid: {', '.join(SCENE_MODELS)}")
    scene_model = create_model(scene, num_classes, **(scene_kwargs or {}))
    if scene_checkpoint is not None:
        load_backbone_weights(scene_model, scene_checkpoint, ignore_prefixes=("classifier.",))
    return STRG(scene_model, num_classes, node_dim=node_dim, graph_layers=graph_layers, roi_size=roi_size,
                similarity_dim=similarity_dim, dropout=dropout)
