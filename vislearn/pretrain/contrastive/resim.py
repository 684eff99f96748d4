"""`vislearn pretrain resim`: see `train.py`."""
from .train import method_main

main = method_main("resim")
