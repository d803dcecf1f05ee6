"""Decoding media into RGB uint8 frames: images (``images``) and video files (``video``)."""

from lifeveil.ingest.images import IMAGE_SUFFIXES, list_images, load_image
from lifeveil.ingest.video import VIDEO_SUFFIXES, Frame, iter_video_frames, probe_video

__all__ = [
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "Frame",
    "iter_video_frames",
    "list_images",
    "load_image",
    "probe_video",
]
