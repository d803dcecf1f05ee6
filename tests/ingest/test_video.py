import numpy as np
import pytest

from lifeveil.errors import MediaError
from lifeveil.ingest import iter_video_frames, load_image, probe_video


def test_probe_and_decode_real_clip(talking_face_clip):
    info = probe_video(talking_face_clip)
    assert info.width > 0 and info.fps > 0
    frames = list(iter_video_frames(talking_face_clip))
    assert len(frames) > 10
    f = frames[0]
    assert f.image.dtype == np.uint8 and f.image.shape == (info.height, info.width, 3)


def test_sampling_rate_is_respected(talking_face_clip):
    frames = list(iter_video_frames(talking_face_clip, fps=2.0))
    info = probe_video(talking_face_clip)
    assert abs(len(frames) - info.seconds * 2) <= 2
    assert np.allclose(np.diff([f.timestamp for f in frames]), 0.5, atol=0.05)


def test_max_frames(clips_root):
    clip = next(clips_root.glob("*/*.avi"), None) or next(clips_root.glob("*/*.mp4"))
    assert len(list(iter_video_frames(clip, max_frames=3))) == 3


def test_bad_videos(tmp_path):
    with pytest.raises(MediaError, match="no such"):
        list(iter_video_frames(tmp_path / "x.mp4"))
    empty = tmp_path / "e.mp4"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match="empty"):
        list(iter_video_frames(empty))
    junk = tmp_path / "j.mp4"
    junk.write_bytes(b"junk" * 1000)
    with pytest.raises(MediaError, match="j.mp4"):
        list(iter_video_frames(junk))
    with pytest.raises(MediaError, match="fps"):
        list(iter_video_frames(junk, fps=0))


def test_load_image(orl_root, tmp_path):
    img = load_image(orl_root / "s1" / "1.pgm")
    assert img.shape == (112, 92, 3)
    bad = tmp_path / "b.jpg"
    bad.write_bytes(b"nope")
    with pytest.raises(MediaError, match="cannot decode"):
        load_image(bad)
