"""One measurement at a time on this machine, whichever sweep process asks.

Sweep workers compile in parallel but must not time kernels while another process times one: the
second would measure the first's load. The lock is a Unix socket bound to a name in Linux's abstract
namespace: binding succeeds for one holder only, nothing is written to disk, and the kernel releases
it when the holder dies, SIGKILL included, so a killed worker can never leave it taken.
"""
from __future__ import annotations

import contextlib
import socket
import threading
import time

#: The abstract socket name every ukl process on this machine binds to measure.
_NAME = b"\0ukernel-lab-measurement"
_POLL_SECONDS = 0.002


class MachineLock:
    """A context manager: the threads of this process queue on a mutex, then one of them takes the
    machine-wide lock for the measurement."""

    def __init__(self) -> None:
        self._threads = threading.Lock()

    def __enter__(self) -> "MachineLock":
        self._threads.acquire()
        try:
            self._socket = _bind()
        except BaseException:
            self._threads.release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._socket.close()
        self._threads.release()


def _bind() -> socket.socket:
    while True:
        holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            holder.bind(_NAME)
            return holder
        except OSError:  # held by another process: it is measuring
            holder.close()
            time.sleep(_POLL_SECONDS)


class CompileGate:
    """Within one sweep, compiles run side by side on the compile CPUs; a measurement that needs every
    CPU (a multi-threaded GEMM) waits for the compiles in flight and holds new ones back until done."""

    def __init__(self) -> None:
        self._state = threading.Condition()
        self._compiling = 0
        self._measuring_alone = False

    @contextlib.contextmanager
    def compiling(self):
        with self._state:
            self._state.wait_for(lambda: not self._measuring_alone)
            self._compiling += 1
        try:
            yield
        finally:
            with self._state:
                self._compiling -= 1
                self._state.notify_all()

    @contextlib.contextmanager
    def alone(self):
        """Hold it with the MachineLock (one such measurement at a time)."""
        with self._state:
            self._measuring_alone = True
            self._state.wait_for(lambda: self._compiling == 0)
        try:
            yield
        finally:
            with self._state:
                self._measuring_alone = False
                self._state.notify_all()
