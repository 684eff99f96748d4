"""Contrastive pre-training on one core: MoCo-v2, ReSim and LooC (`methods.py`), trained by `train.py`."""
