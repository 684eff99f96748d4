"""Segment Anything (Kirillov et al., ICCV 2023): the promptable model, its training with simulated interactive
annotation, the automatic mask generator, the data engine, evaluation and export. See docs/segment.md."""
