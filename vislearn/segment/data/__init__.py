"""Segmentation data: the synthetic renderer with part/whole masks, SA-1B and COCO readers and writers."""
