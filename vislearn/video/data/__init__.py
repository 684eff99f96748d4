"""Something-Else / Something-Something V2 data: metadata, box annotations, videos, clips, the synthetic set.

Importing this package is light (no torch); the torch Dataset lives in `video.data.clip_dataset`.
"""
