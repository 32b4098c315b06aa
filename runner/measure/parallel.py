"""The CPUs a measurement runs on, and a team of threads each making one native call on its CPU.

ctypes releases the GIL for the duration of a foreign call, so Python threads that each call
generated code run truly in parallel; the timed loops stay in native code (each thread's bench
call loops n times over its share). Thread t runs on its own CPU, the last `threads` of those
this process may use (the last one alone for one thread, as every single-thread measurement).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence



#: The CPUs measurements may use when not this process's own (see measure_on).
_measurement_pool: list[int] | None = None


def measure_on(cpus: set[int]) -> None:
    """Measure on `cpus` from now on, whatever this process's affinity: a sweep's worker compiles on
    fewer CPUs than its sweep measures a multi-threaded GEMM on."""
    global _measurement_pool
    _measurement_pool = sorted(cpus)


def measurement_cpus(threads: int) -> list[int]:
    """The CPUs a measurement with `threads` threads runs on (ValueError when there are fewer)."""
    if not hasattr(os, "sched_getaffinity"):
        return []
    allowed = _measurement_pool or sorted(os.sched_getaffinity(0))
    if threads > len(allowed):
        raise ValueError(f"threads: {threads} threads, but this process may use {len(allowed)} CPUs")
    return allowed[-threads:]


class Team:
    """`threads` worker threads; run(calls) runs calls[t] on thread t (pinned to its CPU), and waits."""

    def __init__(self, threads: int):
        self.cpus = measurement_cpus(threads)
        self._pool = ThreadPoolExecutor(max_workers=threads) if threads > 1 else None

    def run(self, calls: Sequence[Callable[[], None]]) -> None:
        if self._pool is None:
            calls[0]()
            return
        for future in [self._pool.submit(self._pinned, t, call) for t, call in enumerate(calls)]:
            future.result()

    def _pinned(self, t: int, call: Callable[[], None]) -> None:
        if self.cpus:
            os.sched_setaffinity(0, {self.cpus[t]})
        call()
