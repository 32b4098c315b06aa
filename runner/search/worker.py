"""Candidate evaluation in a child process: a segfault, an LLVM abort or a hang there becomes a
recorded status (`crash`, `timeout`), and the sweep goes on with a fresh worker.

A worker compiles on the CPUs left after reserving one for measurement; when the parent (which
serialises measurements) asks it to measure, it verifies and times on the reserved CPU, with the
FMA peak at the kernel's width sampled in alternation, in the same process.
"""
from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import traceback
from dataclasses import dataclass
from typing import Any

from pipelines.targets import get_target
from transforms.steps import load_plugins

from runner.measure.lifecycle import Built, Candidate, build_or_record, verify_and_measure
from runner.measure.parallel import measure_on
from runner.measure.record import Record
from runner.measure.timing import TimingPolicy


#: prctl option: the signal a process gets when its parent dies.
_PR_SET_PDEATHSIG = 1


class HarnessBug(RuntimeError):
    """An exception in a worker that is not a candidate's failure: the sweep stops and shows it."""


@dataclass(frozen=True)
class _Raised:
    """What a worker sends back instead of a result when its code raised (with the traceback)."""

    text: str


class WorkerStopped(Exception):
    """The sweep is stopping and killed the worker: no record, no restart."""


class WorkerDied(Exception):
    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status  # "crash" or "timeout"


class _Server:
    """The child side: keeps the last compiled candidate."""

    def __init__(self, target_name: str, measure_cpu: int | None):
        load_plugins()
        self.target = get_target(target_name)
        self.measure_cpu = measure_cpu
        self.built: Built | None = None

    def compile(self, candidate: dict) -> float | Record:
        """Compile seconds, or the compile_error record (`candidate`: Candidate.to_dict)."""
        built = build_or_record(Candidate.from_dict(candidate, self.target))
        if isinstance(built, Record):
            self.built = None
            return built
        self.built = built
        return built.seconds

    def measure(self, policy: TimingPolicy) -> Record:
        return verify_and_measure(self.built, policy, self.measure_cpu)


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (even by SIGKILL): no orphan keeps compiling."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the parent's own cleanup is all there is
        pass


def _serve(conn, target_name: str, compile_cpus: set[int] | None, measure_cpu: int | None,
           measure_cpus: set[int] | None, parent: int) -> None:
    _die_with_parent()
    if os.getppid() != parent:  # the parent died before the request above was made
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles ^C and stops us
    if measure_cpus:
        measure_on(measure_cpus)
    if compile_cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, compile_cpus)
    server = _Server(target_name, measure_cpu)
    while True:
        try:
            request, argument = conn.recv()
        except EOFError:
            return
        try:
            reply = getattr(server, request)(argument)
        except Exception:  # a harness bug: candidates' own failures are records, never exceptions
            reply = _Raised(traceback.format_exc())
        conn.send(reply)


class Worker:
    """The parent side of one worker process. Not thread-safe: one thread owns a worker."""

    def __init__(self, target_name: str, compile_cpus: set[int] | None, measure_cpu: int | None,
                 measure_cpus: set[int] | None):
        """`measure_cpu` times single-threaded code; a multi-threaded GEMM runs on `measure_cpus` (the
        sweep's CPUs: the worker's own affinity is only the compile CPUs)."""
        self._args = (target_name, compile_cpus, measure_cpu, measure_cpus, os.getpid())
        self._stopping = False
        self._context = multiprocessing.get_context("spawn")
        self._start()

    def _start(self) -> None:
        self._conn, child = self._context.Pipe()
        self._process = self._context.Process(target=_serve, args=(child, *self._args), daemon=True)
        self._process.start()
        child.close()

    def _restart(self) -> None:
        self._process.kill()
        self._process.join()
        self._conn.close()
        self._start()

    def kill(self) -> None:
        """Stop now (the sweep is ending or interrupted): the process dies, a call in progress returns."""
        self._stopping = True
        self._process.kill()

    def call(self, request: str, argument: Any, timeout: float) -> Any:
        """Run `request` in the worker; WorkerDied if it crashes or exceeds `timeout` seconds."""
        if self._stopping:
            raise WorkerStopped()
        try:
            self._conn.send((request, argument))
        except (BrokenPipeError, OSError):
            if self._stopping:
                raise WorkerStopped() from None
            raise
        ready = self._conn.poll(timeout)
        if self._stopping:
            raise WorkerStopped()
        if not ready:
            self._restart()
            raise WorkerDied("timeout", f"{request}: no answer within {timeout:g} s (killed)")
        try:
            reply = self._conn.recv()
            if isinstance(reply, _Raised):
                raise HarnessBug(f"{request} raised in a sweep worker:\n{reply.text}")
            return reply
        except (EOFError, ConnectionResetError):
            if self._stopping:
                raise WorkerStopped() from None
            self._process.join()
            code = self._process.exitcode
            self._restart()
            reason = f"signal {-code} ({signal.Signals(-code).name})" if code and code < 0 else f"exit status {code}"
            raise WorkerDied("crash", f"{request}: the worker died with {reason}") from None

    def close(self) -> None:
        self._conn.close()
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
