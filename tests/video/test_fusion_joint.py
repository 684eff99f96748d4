"""Joint fine-tuning of feature fusion (configs/video/synthetic/fusion_joint.yaml): SGD steps through the
trainer's own model building and optimiser groups (head at lr, streams at lr x stream_lr_scale) change both
streams' weights and leave the scene trunk's frozen blocks (and their BatchNorm statistics) exactly as they were."""
import torch

from vislearn.video.actions.table_rows import run_config
from vislearn.video.actions.train import build_model, param_groups

from sample_batch import sample_batch


def test_joint_finetuning_changes_both_streams_and_keeps_frozen_blocks(sample_dir):
    torch.manual_seed(0)
    cfg = run_config("fusion_joint.yaml", ["model_args.scene_checkpoint=null", "model_args.stin_checkpoint=null",
                                           "input_size=64", "num_rgb_frames=4"])  # small clips: a quick test
    names = [f"class {i}" for i in range(174)]
    model = build_model(cfg, names, log=lambda *a: None)
    trunk = model.scene.backbone
    frozen = {k: v.clone() for k, v in trunk.frozen_part().state_dict().items()}
    trained = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith("scene.backbone.features.16") for n in trained)  # later trunk blocks train
    assert any(n.startswith("stin.") for n in trained) and any(n.startswith("classifier.") for n in trained)
    assert not any(n.startswith(f"scene.backbone.features.{i}.") for n in trained for i in range(trunk.frozen_blocks))
    batch = sample_batch(sample_dir, cfg, needs_boxes=True, needs_frames=True)
    batch = {k: v[:4] for k, v in batch.items()}  # 4 real clips
    labels = torch.arange(len(batch["video_id"])) % 5
    groups = param_groups(model, cfg)  # the trainer's optimiser groups: the head at lr, the streams at a tenth
    head_ids = {id(p) for p in model.classifier.parameters()}
    assert [g.get("lr", cfg.lr) for g in groups] == [cfg.lr, cfg.lr * cfg.stream_lr_scale] and cfg.stream_lr_scale < 1
    assert {id(p) for p in groups[0]["params"]} == head_ids
    assert len(groups[1]["params"]) == len(trained) - len(head_ids)
    opt = torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9)
    model.train()
    for _ in range(2):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(batch), labels).backward()
        opt.step()
    moved = {n for n, p in model.named_parameters() if n in trained and not torch.equal(p, trained[n])}
    assert any(n.startswith("scene.backbone.features.1") for n in moved)  # the scene trunk's later blocks
    assert any(n.startswith("scene.proj") or n.startswith("scene.frame_head") for n in moved)
    assert any(n.startswith("stin.") for n in moved)
    after = trunk.frozen_part().state_dict()
    assert all(torch.equal(after[k], v) for k, v in frozen.items())  # weights and BatchNorm statistics
