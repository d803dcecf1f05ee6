"""Open a checkpoint in the fastest runtime that can serve it (the device's entry point).

:func:`open_privatizer` returns a :class:`~lifeveil.privatizer.lite.LitePrivatizer` (ONNX
Runtime, no PyTorch) when the checkpoint's graph is cached, and otherwise loads it through
:func:`lifeveil.privatizer.runtime.load_privatizer`, which imports PyTorch and caches the graph.
"""

from __future__ import annotations

from pathlib import Path

from lifeveil.privatizer.lite import LitePrivatizer


def open_privatizer(
    path: str | Path | None = None,
    runtime: str = "onnx",
    seed: int | None = None,
    threads: int | None = None,
):  # noqa: ANN201  (LitePrivatizer or lifeveil.privatizer.Privatizer)
    """The fastest way to run a checkpoint: the lite runtime when its ONNX graph is cached.

    Otherwise (runtime ``torch``, a clip-mode checkpoint, or no cached graph yet) this is
    :func:`lifeveil.privatizer.runtime.load_privatizer`, which imports PyTorch and, for
    ``onnx``, builds and caches the graph so the next start is lite.
    """
    if runtime == "onnx":
        lite = LitePrivatizer.from_cache(path, seed, threads)
        if lite is not None:
            return lite
    from lifeveil.privatizer.runtime import load_privatizer

    return load_privatizer(path, runtime, seed, threads)
