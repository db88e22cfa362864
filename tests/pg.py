"""A real PostgreSQL server for the tests: Debian's binaries, a temporary cluster.

`PostgresServer` initdb's a cluster in a temporary directory (as `nobody`
when the tests run as root: PostgreSQL refuses to run as root), starts it
on a free port on 127.0.0.1 with its unix socket in that directory, and
stops it at the end.  `new_database()` creates a fresh database per test.
When no PostgreSQL is installed or it cannot start, `start()` raises
`Unavailable` with the reason, which the fixtures turn into a skip, or a
failure when CONFIGSPEC_REQUIRE_POSTGRES=1 (CI).
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REQUIRE_ENV = "CONFIGSPEC_REQUIRE_POSTGRES"
START_S = 60.0


class Unavailable(Exception):
    pass


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def find_bin_dir() -> Path:
    """The newest /usr/lib/postgresql/*/bin with initdb, or initdb on PATH."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit()
                        else 0)
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise Unavailable("PostgreSQL is not installed (no initdb in /usr/lib/postgresql/*/bin "
                      "or on PATH); run tools/install_test_deps.sh")


class PostgresServer:
    def __init__(self) -> None:
        self.bin = find_bin_dir()
        self.dir = Path(tempfile.mkdtemp(prefix="configspec-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self._as: list[str] = []
        if os.geteuid() == 0:
            self.dir.chmod(0o755)
            shutil.chown(self.dir, "nobody")
            runuser = shutil.which("runuser") or shutil.which("setpriv")
            if runuser is None:
                raise Unavailable("running as root and neither runuser nor setpriv is "
                                  "available to start PostgreSQL as nobody")
            self._as = ([runuser, "-u", "nobody", "--"] if runuser.endswith("runuser") else
                        [runuser, "--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        self._names = itertools.count(1)

    def _run(self, *cmd: str) -> None:
        done = subprocess.run([*self._as, *cmd], capture_output=True, text=True, timeout=120,
                              cwd=self.dir)
        if done.returncode != 0:
            raise Unavailable(f"{Path(cmd[0]).name} failed ({done.returncode}): "
                              f"{(done.stderr or done.stdout).strip()[-500:]}")

    def start(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C")
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c max_connections=300 -c shared_buffers=64MB")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l",
                  str(self.dir / "server.log"), "-o", options, "-w", "-t", str(int(START_S)),
                  "start")
        self._wait()

    def _wait(self) -> None:
        import psycopg

        deadline = time.monotonic() + START_S
        while True:
            try:
                psycopg.connect(self.admin_dsn, connect_timeout=2).close()
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise Unavailable(f"PostgreSQL did not accept connections: {exc}") from None
                time.sleep(0.2)

    @property
    def admin_dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def new_database(self, prefix: str = "t") -> str:
        """A fresh, empty database; its SQLAlchemy URL."""
        import psycopg

        name = f"{prefix}_{next(self._names)}_{os.getpid()}"
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run([*self._as, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m",
                            "immediate", "-w", "stop"], capture_output=True, timeout=60,
                           cwd=self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)


def require_postgres() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")
