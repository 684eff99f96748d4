"""The video writer moved down to `vislearn.common.video_writer` (control's `record` writes mp4s too); the video
family's modules keep importing it from here."""
from vislearn.common.video_writer import VideoWriter, write_video

__all__ = ["VideoWriter", "write_video"]
