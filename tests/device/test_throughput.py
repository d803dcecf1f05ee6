"""The device benchmark processes every frame of a real clip in each runtime."""

from lifeveil.device.throughput import device_benchmark
from lifeveil.ingest.video import iter_video_frames, prefetch
from lifeveil.paths import shared_data_root


def test_benchmark_counts_every_frame_in_each_runtime():
    clip = shared_data_root() / "action-clips" / "ucf101" / "v_ApplyEyeMakeup_g01_c01.avi"
    report = device_benchmark(clip, runtimes=("onnx", "torch"), threads=1, with_deface=False)
    rows = {r["name"]: r for r in report["rows"]}
    n = sum(1 for _ in iter_video_frames(clip))
    assert set(rows) == {"decode only", "privatizer (onnx)", "privatizer (torch)"}
    assert all(r["frames"] == n and r["fps"] > 0 for r in rows.values())


def test_prefetch_yields_in_order_and_reraises():
    assert list(prefetch(iter(range(50)), maxsize=3)) == list(range(50))

    def broken():
        yield 1
        raise ValueError("decoder failed")

    got = []
    try:
        for x in prefetch(broken()):
            got.append(x)
    except ValueError as exc:
        assert "decoder failed" in str(exc)
    else:
        raise AssertionError("the producer's error was swallowed")
    assert got == [1]
