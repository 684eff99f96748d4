"""Box-tracking front end: hand/object detector (torchvision detection heads on the ImageNet
MobileNetV2), ByteTrack-style tracker, Something-Else identity assignment, and MOT evaluation
(py-motmetrics).

    detections.py  detections JSON (Something-Else layout + score): load/validate/save
    backbones.py   MobileNetV2 + feature pyramid, and the FCOS / Faster R-CNN / RetinaNet heads on it
    detector.py    detector building, weights from local files, training samples, inference, checkpoints
    train_detector.py  `vislearn video tracking train-detector`: options, training loop, held-out AP, run folder
    track_split.py `vislearn video tracking track-split`: every video of a split, sharded, resumable
    ap.py          box average precision
    kalman.py      constant-velocity Kalman filter
    tracker.py     ByteTrack-style two-stage association, class-aware; the `Tracker` protocol any tracker meets
    identities.py  tracks -> `hand`, `0000`, `0001`, ... (the Something-Else ids)
    mot_eval.py    MOTA / IDF1 / ID switches / precision / recall per video and overall
    simulate.py    detections from ground truth with detector-like errors; greedy IoU linker
The detector modules import torch; the others need only numpy/scipy (and motmetrics to evaluate).
"""
from .detections import CLASSES, VideoDetections, load_detections, save_detections
from .identities import IdentityConfig, assign_identities, identities_to_records, tracks_to_records
from .tracker import ByteTracker, Track, Tracker, TrackerConfig, fill_gaps, run_tracker, track_video

__all__ = ["CLASSES", "VideoDetections", "load_detections", "save_detections", "IdentityConfig",
           "assign_identities", "identities_to_records", "tracks_to_records", "ByteTracker", "Track",
           "Tracker", "TrackerConfig", "fill_gaps", "run_tracker", "track_video"]
