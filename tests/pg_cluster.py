"""A throwaway PostgreSQL cluster for tests: initdb in a temporary folder, the server on a Unix socket
there (no TCP port), trust authentication, stopped and deleted afterwards. The real server, no mock.

PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres` user that Debian's
package creates (the Makefile installs it).
"""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

_BIN = Path("/usr/lib/postgresql")


def server_bin(tool: str) -> str:
    """A server tool (initdb, pg_ctl): PATH first, else Debian's versioned folder (newest)."""
    found = shutil.which(tool)
    if found:
        return found
    versions = sorted(_BIN.glob("*/bin"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    if not versions:
        raise FileNotFoundError(f"{tool}: PostgreSQL's server is not installed (make system-packages installs it)")
    return str(versions[-1] / tool)


class Cluster:
    PORT = 5432  # names the socket file only: nothing listens on TCP

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="ukl-pg-"))
        self.data = self.root / "data"
        self._as = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self.root.chmod(0o755)

    def _run(self, *command: str) -> None:
        subprocess.run([*self._as, *command], check=True, capture_output=True, text=True)

    def start(self) -> "Cluster":
        if not self.data.exists():
            self._run(server_bin("initdb"), "-D", str(self.data), "-U", "ukl", "--auth=trust", "-E", "UTF8",
                      "--no-sync")
        self._run(server_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-o",
                  f"-c listen_addresses='' -k {self.root} -p {self.PORT} -c fsync=off -c max_connections=200",
                  "start")
        return self

    def stop(self) -> None:
        self._run(server_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def create_database(self, name: str) -> str:
        """A new database; returns its URL."""
        self._run(server_bin("createdb"), "-h", str(self.root), "-p",
                  str(self.PORT), "-U", "ukl", name)
        return self.url(name)

    def url(self, name: str) -> str:
        return f"postgresql://ukl@/{name}?host={self.root}&port={self.PORT}"

    def destroy(self) -> None:
        try:
            self._run(server_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except subprocess.CalledProcessError:
            pass  # not running
        shutil.rmtree(self.root, ignore_errors=True)
