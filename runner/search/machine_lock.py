"""One measurement at a time on this machine, whichever sweep process asks.

Sweep workers compile in parallel but must not time kernels while another process times one: the
second would measure the first's load. The lock is a Unix socket bound to a name in Linux's abstract
namespace: binding succeeds for one holder only, nothing is written to disk, and the kernel releases
it when the holder dies, SIGKILL included, so a killed worker can never leave it taken.
"""
from __future__ import annotations

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
