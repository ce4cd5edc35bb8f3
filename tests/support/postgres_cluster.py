"""A throwaway PostgreSQL server for the test suite: a cluster in a temporary directory,
listening on loopback, run by a non-root user (initdb refuses root)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from adapters.testing.servers import free_port


def binaries() -> Path | None:
    """The directory of initdb and pg_ctl, newest version first; None if not installed."""
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and shutil.which("initdb") else None


class Cluster:
    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="cardledger-pg-"))
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = "postgres" if _exists("postgres") else "nobody"
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.port = free_port()

    def _run(self, *args: str) -> None:
        subprocess.run([str(self.bin_dir / args[0]), *args[1:]], check=True, user=self.user,
                       capture_output=True, cwd=self.root)

    def start(self) -> str:
        data = self.root / "data"
        self._run("initdb", "-D", str(data), "-A", "trust", "-U", "cardledger", "-E", "UTF8",
                  "--no-locale")
        self.resume()
        return f"postgresql://cardledger@127.0.0.1:{self.port}/postgres"

    def pause(self) -> None:
        """Stop the server (fast shutdown: sessions are ended), keeping its data."""
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        """Start the paused server again, on the same port."""
        self._run("pg_ctl", "-D", str(self.root / "data"), "-l", str(self.root / "server.log"),
                  "-w", "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                  "-c max_connections=200", "start")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True


def new_database(server: str) -> str:
    """A fresh, empty database on the server at URL ``server``: its URL."""
    import anyio
    import asyncpg

    name = f"t_{uuid.uuid4().hex}"

    async def create() -> None:
        db = await asyncpg.connect(server)
        try:
            await db.execute(f'CREATE DATABASE "{name}"')
        finally:
            await db.close()

    anyio.run(create)
    return server.rsplit("/", 1)[0] + f"/{name}"
