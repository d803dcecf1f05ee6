"""One tenant's approximate k-NN index: an HNSW graph (usearch) plus an exactly scanned tail.

Records are identified by ``(device_id, seq)`` keys; HNSW label ``i`` is row ``i`` of the
key table. New records go to the *tail* at once (so a query sees a record as soon as it is
stored) and are scored there by brute force; a background worker later *absorbs* the tail
into a copy of the graph and swaps it in, so searches never wait for an insert and the
published graph is never written while it is searched.

usearch (the ``server`` extra's choice, measured against faiss-cpu and hnswlib in
``docs/SERVER.md``) is imported only when an index is built or loaded.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# HNSW parameters: 16 links per node, 128 candidates while inserting, 512 while searching
# (at 1M stored z recall@10 was 0.930 with 256, 0.959 with 384, 0.967 with 512 for 0.9 ms a
# search; 128 gave 0.90; see docs/SERVER.md).
CONNECTIVITY, EXPANSION_ADD, EXPANSION_SEARCH = 16, 128, 512
FORMAT_VERSION = 1
#: Records inserted into the graph between two checks for a store closing (about 2 s).
ABSORB_CHUNK = 8192


def new_hnsw(z_dim: int) -> Any:
    """An empty cosine HNSW graph of float32 vectors."""
    from usearch.index import Index

    return Index(
        ndim=z_dim,
        metric="cos",
        dtype="f32",
        connectivity=CONNECTIVITY,
        expansion_add=EXPANSION_ADD,
        expansion_search=EXPANSION_SEARCH,
    )


def ann_available() -> bool:
    """Whether the ANN library is installed (otherwise every k-NN is an exact scan)."""
    try:
        import usearch.index  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class _Tail:
    """Rows not yet in the graph: ``keys[:n]`` (device_id, seq), ``z[:n]`` and their L2
    norms ``norms[:n]`` (kept so that a query's exact scan is one product, not two passes).

    Appends write past ``n`` and publish a new ``_Tail``; rows below ``n`` never change, so a
    search may keep using a snapshot while ingest goes on.
    """

    keys: np.ndarray
    z: np.ndarray
    norms: np.ndarray
    n: int

    @classmethod
    def empty(cls, z_dim: int, capacity: int = 1024) -> _Tail:
        return cls(
            np.zeros((capacity, 2), np.int64),
            np.zeros((capacity, z_dim), np.float32),
            np.zeros(capacity, np.float32),
            0,
        )

    def append(self, keys: np.ndarray, z: np.ndarray) -> _Tail:
        m = len(keys)
        grown = self
        if self.n + m > len(self.keys):
            grown = _Tail.empty(self.z.shape[1], max(2 * len(self.keys), self.n + m))
            grown.keys[: self.n], grown.z[: self.n] = self.keys[: self.n], self.z[: self.n]
            grown.norms[: self.n] = self.norms[: self.n]
        end = self.n + m
        grown.keys[self.n : end], grown.z[self.n : end] = keys, z
        grown.norms[self.n : end] = np.sqrt(np.einsum("ij,ij->i", z, z, dtype=np.float32))
        return _Tail(grown.keys, grown.z, grown.norms, end)

    def drop_first(self, m: int) -> _Tail:
        rest = _Tail.empty(self.z.shape[1], max(1024, self.n - m))
        return rest.append(self.keys[m : self.n], self.z[m : self.n])


class TenantAnnIndex:
    """The graph and tail of one tenant; thread-safe (searches never block on inserts)."""

    def __init__(self, z_dim: int, graph: Any = None, keys: np.ndarray | None = None) -> None:
        self.z_dim = z_dim
        self._lock = threading.Lock()
        self._graph = graph
        self._keys = keys if keys is not None else np.zeros((0, 2), np.int64)
        self._tail = _Tail.empty(z_dim)
        self.dirty = graph is None  # the graph on disk (if any) is older than this one

    @property
    def n_indexed(self) -> int:
        """Records in the graph."""
        return len(self._keys)

    @property
    def n_pending(self) -> int:
        """Records in the tail, scanned exactly until absorbed."""
        return self._tail.n

    def __len__(self) -> int:
        return self.n_indexed + self.n_pending

    def adopt(self, saved: TenantAnnIndex) -> None:
        """Use a loaded index's graph and keys in place of this one's; the tail stays."""
        with saved._lock:
            graph, keys = saved._graph, saved._keys
        with self._lock:
            self._graph, self._keys = graph, keys
            self.dirty = False

    def append(self, keys: np.ndarray, z: np.ndarray) -> None:
        """Add stored records (``keys`` int64 ``(m, 2)``, ``z`` float32 ``(m, d)``) to the tail."""
        with self._lock:
            self._tail = self._tail.append(keys, z)

    def wants_absorb(self, min_rows: int = 4096, fraction: float = 0.05) -> bool:
        """Whether the tail is big enough to be worth folding into the graph."""
        return self.n_pending >= max(min_rows, int(fraction * self.n_indexed))

    def candidates(self, query: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Keys ``(c, 2)`` and z ``(c, d)`` of up to ``2 * count`` likely neighbours of
        ``query`` (unique keys), z exactly as stored (the graph keeps float32 vectors), so
        the caller can score them without reading the database."""
        with self._lock:
            graph, keys, tail = self._graph, self._keys, self._tail
        rows = _tail_best(tail, query, count)
        found_keys, found_z = [tail.keys[rows]], [tail.z[rows]]
        if graph is not None and len(keys):
            labels = np.asarray(graph.search(query.astype(np.float32), count, threads=1).keys)
            labels = labels[labels < len(keys)]
            if len(labels):
                found_keys.append(keys[labels.astype(np.int64)])
                found_z.append(np.asarray(graph.get(labels), dtype=np.float32))
        all_keys = np.concatenate(found_keys)
        _, first = np.unique(all_keys, axis=0, return_index=True)
        return all_keys[first], np.concatenate(found_z)[first]

    def absorb(self, threads: int = 1, stopping: Callable[[], bool] = lambda: False) -> bool:
        """Insert the current tail into a copy of the graph, then publish the copy; True if
        published.

        Inserts go in chunks of :data:`ABSORB_CHUNK`; when ``stopping()`` turns true between
        two, the copy is dropped (the tail stays, nothing is lost), so closing the store never
        waits for, or exits in the middle of, a long insert. Only one absorb may run at a time
        (the caller's worker serialises them).
        """
        with self._lock:
            graph, keys, tail = self._graph, self._keys, self._tail
        n = tail.n
        if n == 0:
            return False
        grown = graph.copy() if graph is not None else new_hnsw(self.z_dim)
        for start in range(0, n, ABSORB_CHUNK):
            if stopping():
                return False
            end = min(n, start + ABSORB_CHUNK)
            labels = np.arange(len(keys) + start, len(keys) + end, dtype=np.uint64)
            grown.add(labels, tail.z[start:end], threads=threads)
        new_keys = np.concatenate([keys, tail.keys[:n]])
        with self._lock:
            self._graph, self._keys = grown, new_keys
            self._tail = self._tail.drop_first(n)
            self.dirty = True
        return True

    # -- persistence --------------------------------------------------------------------------
    def save(self, folder: Path, stem: str) -> None:
        """Write the graph and its keys (not the tail) atomically as ``folder/stem.*``."""
        with self._lock:
            graph, keys = self._graph, self._keys
        if graph is None:
            return
        folder.mkdir(parents=True, exist_ok=True)
        base = folder / stem
        _replace(base.with_suffix(".usearch"), graph.save)
        _replace(base.with_suffix(".keys.npy"), lambda p: _save_npy(p, keys))
        meta = {"format": FORMAT_VERSION, "z_dim": self.z_dim, "n": len(keys), "lib": "usearch"}
        _replace(base.with_suffix(".json"), lambda p: Path(p).write_text(json.dumps(meta)))
        self.dirty = False

    @classmethod
    def load(cls, folder: Path, stem: str, z_dim: int) -> TenantAnnIndex | None:
        """The index saved as ``folder/stem.*``, or None if missing, unreadable or of another
        shape."""
        from usearch.index import Index

        base = folder / stem
        try:
            meta = json.loads(base.with_suffix(".json").read_text())
            keys = np.load(base.with_suffix(".keys.npy"), allow_pickle=False)
            graph = Index.restore(str(base.with_suffix(".usearch")))
        except (OSError, ValueError, RuntimeError):
            return None
        consistent = (
            meta.get("format") == FORMAT_VERSION
            and meta.get("z_dim") == z_dim
            and graph is not None
            and meta.get("n") == len(keys) == len(graph)
            and graph.ndim == z_dim
            and keys.shape == (len(keys), 2)
        )
        if not consistent:
            return None
        graph.expansion_search = EXPANSION_SEARCH  # the file keeps the value it was saved with
        index = cls(z_dim, graph, keys.astype(np.int64))
        index.dirty = False
        return index

    def indexed_keys(self) -> np.ndarray:
        """Keys of every record in the graph or the tail."""
        with self._lock:
            return np.concatenate([self._keys, self._tail.keys[: self._tail.n]])


def _tail_best(tail: _Tail, query: np.ndarray, count: int) -> np.ndarray:
    """Row numbers of the ``count`` tail rows most cosine-similar to ``query`` (any order)."""
    if tail.n <= count:
        return np.arange(tail.n)
    norms = tail.norms[: tail.n] * max(float(np.linalg.norm(query)), 1e-30)
    scores = (tail.z[: tail.n] @ query.astype(np.float32)) / np.maximum(norms, 1e-30)
    return np.argpartition(-scores, count)[:count]


def _save_npy(path: str, array: np.ndarray) -> None:
    with open(path, "wb") as fh:  # a file object: np.save would append ".npy" to a name
        np.save(fh, array, allow_pickle=False)


def _replace(path: Path, write: Any) -> None:
    """Write via ``write(tmp_path)`` then rename over ``path`` (readers never see half)."""
    tmp = path.with_name(path.name + ".tmp")
    write(str(tmp))
    os.replace(tmp, path)
