"""Representation learners (DESIGN.md: common <- backbones <- pretrain <- {video, segment, control}): MAE here;
each writes an encoder checkpoint that `vislearn.backbones.create_backbone(name, weights=...)` loads."""
