"""`vislearn pretrain looc`: see `train.py`."""
from .train import method_main

main = method_main("looc")
