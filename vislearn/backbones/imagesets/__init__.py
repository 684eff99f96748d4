"""Image sets for classification on a CPU: a rendered set of 24 object classes (the synthetic videos' 18 nouns
and 6 more), scikit-learn's digits, or any ImageFolder tree or .npz, all through one loader.

    from vislearn.backbones.imagesets import load_images
    train = load_images("objects", "train")          # LabelledImages: uint8 [6000,3,64,64], int64 [6000], 24 names
    test = load_images("digits", "test", size=32)

    vislearn backbones imageset --out data/objects [--format folder|npz] [--size 64] [--per-class 250,50,100]

Modules: `nouns` (the classes), `render` (one image: what varies, seeded per image, `VERSION`), `store`
(rendering the splits, the folder and .npz writers), `load` (`load_images` and the readers), `command` (the CLI).
Numpy only, except `load_images`, which returns torch tensors.
"""
from .load import load_images
from .nouns import CLASS_NAMES, CLASSES
from .render import SPLITS, VERSION, render_image, render_images
from .store import DEFAULT_PER_CLASS, LabelledImages, make_set

__all__ = ["CLASSES", "CLASS_NAMES", "DEFAULT_PER_CLASS", "LabelledImages", "SPLITS", "VERSION", "load_images",
           "make_set", "render_image", "render_images"]
