"""The synthetic Something-Else-style data set: the project's embedded default data.

Short videos (VP9 .webm, 12 fps, 2-4 s) of a hand and one to three objects performing SSv2
templates, written in the real SSv2 / Something-Else formats with the renderer's exact boxes.

    vislearn video synthetic --out data/video/synthetic --videos 240 --seed 0

Modules: `templates` (verbs: motion scripts), `bias` (which nouns a template is done with: SSv2's
noun-verb bias, fitted to its statistics), `render` (scenes), `generate` (writing the data set,
statistics). The nouns (`NOUNS`: looks) and the scene-independent drawing (backgrounds, lighting, the
hand, objects, shadows) are in `vislearn.common.drawing`, shared with the image set of
`vislearn.backbones.imagesets`.
"""
from vislearn.common.drawing.objects import NOUNS

from .generate import VERSION, VideoSpec, dataset_stats, format_stats, generate, make_spec, render_spec
from .templates import TEMPLATES, appearance_groups

__all__ = ["VERSION", "VideoSpec", "NOUNS", "TEMPLATES", "appearance_groups", "dataset_stats", "format_stats",
           "generate", "make_spec", "render_spec"]
