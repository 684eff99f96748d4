"""Scene-independent drawing of hands and objects with numpy, shared by the synthetic Something-Else videos
(`vislearn.video.data.synthetic`) and the image set for classification (`vislearn.backbones.imagesets`).

- `objects`: the nouns (signed-distance silhouettes + painters, `NOUNS`, `Noun.make_look` for an instance).
- `draw`: one object under a pose (`ObjState`, `draw_object`), its boxes, its contact shadow (`draw_shadow`).
- `hand`: a hand with forearm and sleeve (`make_hand`, `draw_hand`), the box of its palm and fingers.
- `background`: tables, walls and their clutter (`make_background`), smooth noise, a camera's gain map
  (`make_lighting`).
- `geometry`: boxes of the visible part of a shape, regions of interest, segment clipping.

Numpy only (no torch). Changing what any of these draw changes the pixels of both data sets: each one's
`VERSION` must change with it.
"""
