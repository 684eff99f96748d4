"""Something-Else (CVPR 2020), compositional action recognition: `data` (SSv2 / Something-Else formats,
box store, synthetic set), `splits`, `tracking` (detector, tracker, MOT) and `actions` (STIN, scene
stream, fusion, STRG, training and evaluation). `vislearn video --help` lists the commands."""
