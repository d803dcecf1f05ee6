"""Step 4 of the store benchmark: ingest alone and while a thread queries, in turn.

The stretches run alone, querying, alone, ..., alone (``2 * rounds + 1``), and each querying
stretch is compared with the mean of the two alone stretches around it. Ingest slows as the
store grows (bigger tables and indexes, a checkpoint, an autovacuum), so comparing each
querying stretch with the alone one *before* it (as the benchmark did before the eighth
session) counted that drift as a drop. The spread of the alone stretches between themselves
is reported too: a drop smaller than it is noise.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from lifeveil.server.priority import QUERY_NICE, lower_thread_priority
from lifeveil.server.store import ZStore

#: Querying stretches in step 4 (each between two alone ones).
ROUNDS = 5


class Feeder(Protocol):
    """Sends z to the store, returning z per second."""

    def send(self, z: np.ndarray) -> float: ...


class QueryThread(threading.Thread):
    """k-NN queries while ``active`` is set (back to back, or ``rate`` per second), timing
    each, until stopped."""

    def __init__(
        self, store: ZStore, tenant_id: int, queries: np.ndarray, k: int, rate: float = 0.0
    ) -> None:
        super().__init__(name="lifeveil-bench-queries", daemon=True)
        self.store, self.tenant_id, self.queries, self.k = store, tenant_id, queries, k
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.active, self.stop_event = threading.Event(), threading.Event()
        self.latencies: list[float] = []

    def run(self) -> None:
        lower_thread_priority(QUERY_NICE)  # as the server's SearchPool threads run
        i, due = 0, time.perf_counter()
        while not self.stop_event.is_set():
            if not self.active.wait(0.05):
                due = time.perf_counter()
                continue
            if self.interval:
                due += self.interval
                time.sleep(max(0.0, due - time.perf_counter()))
            t0 = time.perf_counter()
            self.store.knn(self.tenant_id, self.queries[i % len(self.queries)], self.k)
            self.latencies.append(time.perf_counter() - t0)
            i += 1

    def stop(self) -> None:
        """End the thread (after its current query)."""
        self.active.clear()
        self.stop_event.set()
        self.join(60)


@dataclass
class Stretches:
    """z/s of each stretch of step 4, in order of the two kinds."""

    alone: list[float]  # rounds + 1 stretches
    querying: list[float]  # rounds stretches; querying[i] ran between alone[i] and alone[i+1]

    @property
    def drops(self) -> list[float]:
        """Each querying stretch's drop against the mean of the alone stretches around it."""
        return [
            1 - busy / ((self.alone[i] + self.alone[i + 1]) / 2)
            for i, busy in enumerate(self.querying)
        ]

    @property
    def alone_spread(self) -> float:
        """Median relative change from one alone stretch to the next: the noise floor."""
        a = self.alone
        return float(np.median([abs(1 - a[i + 1] / a[i]) for i in range(len(a) - 1)]))

    def summary(self) -> dict[str, object]:
        """The step's numbers for the benchmark report (medians, and each round's drop)."""
        if not self.querying:
            return {}
        return {
            "ingest_alone_z_per_s": round(float(np.median(self.alone)), 1),
            "ingest_while_querying_z_per_s": round(float(np.median(self.querying)), 1),
            "ingest_drop_while_querying": round(float(np.median(self.drops)), 3),
            "ingest_drops_per_round": [round(d, 3) for d in self.drops],
            "ingest_alone_spread": round(self.alone_spread, 3),
            "ingest_stretches_alone_z_per_s": [round(r) for r in self.alone],
            "ingest_stretches_querying_z_per_s": [round(r) for r in self.querying],
        }


def alternate(
    feeder: Feeder, loop: QueryThread, extra: np.ndarray, rounds: int = ROUNDS
) -> Stretches:
    """Ingest ``extra`` in ``2 * rounds + 1`` equal stretches, queries off (first and last)
    and on in turn."""
    stretches = Stretches([], [])
    if not len(extra):
        return stretches
    for i, chunk in enumerate(np.array_split(extra, 2 * rounds + 1)):
        querying = i % 2 == 1
        if querying:
            loop.active.set()
        else:
            loop.active.clear()
        (stretches.querying if querying else stretches.alone).append(feeder.send(chunk))
    loop.active.clear()
    return stretches
