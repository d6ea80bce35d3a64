"""Start the real threadline server as a subprocess, for tests.

    factory = ServerFactory(tmp_root)                       # one per test session
    server = factory.start(env={"OPENAI_BASE_URL": ...}, backend="postgres")
    server.base_url      # http://127.0.0.1:PORT/v1
    server.restart()     # same port, data dir and database
    server.kill()        # SIGKILL, for crash tests; server.start() brings it back
    factory.close()      # stops every server, then the PostgreSQL cluster if one was started

A PostgreSQL server's database is a clone (CREATE DATABASE ... TEMPLATE) of one migrated once per session.

The server runs with the project's main virtualenv (env THREADLINE_TEST_PYTHON, default <repo>/.venv/bin/python),
whatever interpreter runs the tests, so the same suite can run from a venv with an older openai SDK. Its environment
is the test process's minus THREADLINE_*, OPENAI_* and ANTHROPIC_* variables, plus THREADLINE_SANDBOX_WARM_POOL=0
(servers that run code pass THREADLINE_SANDBOX_WARM_POOL=1), THREADLINE_WORKERS=1 (one process) and a 5 s linger
for the sandbox service a server starts on demand (in <data dir>/sandbox/service), plus the `env` given to start().
The log (stdout+stderr of every start) is at handle.log_path; pytest shows its tail when a test fails.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from .postgres import PostgresCluster, free_port

REPO = Path(__file__).resolve().parents[2]
BACKENDS = ("sqlite", "postgres")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
INHERIT_NOT = ("THREADLINE_", "OPENAI_", "ANTHROPIC_")
TEMPLATE_DB = "tl_template"
# Where things are on this machine, not how the server behaves: the tests' choice reaches the servers.
INHERIT_ANYWAY = ("THREADLINE_MODELS_DIR",)


def server_python() -> str:
    configured = os.environ.get("THREADLINE_TEST_PYTHON")
    if configured:
        return configured
    candidate = REPO / ".venv" / "bin" / "python"
    return str(candidate) if candidate.exists() else sys.executable


def selected_backends() -> list[str]:
    """Backends to test, from THREADLINE_TEST_BACKENDS (comma-separated; default: all)."""
    raw = os.environ.get("THREADLINE_TEST_BACKENDS", "")
    chosen = [b.strip() for b in raw.split(",") if b.strip()] or list(BACKENDS)
    unknown = set(chosen) - set(BACKENDS)
    if unknown:
        raise ValueError(f"THREADLINE_TEST_BACKENDS: unknown backend(s) {sorted(unknown)}; use {BACKENDS}")
    return chosen


class ServerError(RuntimeError):
    pass


class ServerHandle:
    """One server: a data dir, a database, a port and (while running) a process."""

    def __init__(
        self,
        name: str,
        data_dir: Path,
        log_path: Path,
        database_url: str,
        backend: str,
        port: int,
        env: dict[str, str],
        args: list[str],
        python: str,
    ) -> None:
        self.name = name
        self.data_dir = data_dir
        self.log_path = log_path
        self.database_url = database_url
        self.backend = backend
        self.port = port
        self.env = env
        self.args = args
        self.python = python
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        # True: pass host/port/data dir/database as THREADLINE_* variables instead of command-line options.
        self.settings_via_env = False

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def settings_env(self) -> dict[str, str]:
        return {
            "THREADLINE_HOST": "127.0.0.1",
            "THREADLINE_PORT": str(self.port),
            "THREADLINE_DATA_DIR": str(self.data_dir),
            "THREADLINE_DATABASE_URL": self.database_url,
        }

    def command(self) -> list[str]:
        if self.settings_via_env:
            return [self.python, "-m", "threadline.cli", "serve", *self.args]
        return [
            self.python,
            "-m",
            "threadline.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--database-url",
            self.database_url,
            *self.args,
        ]

    def start(self, timeout: float = START_TIMEOUT_S) -> ServerHandle:
        if self.running:
            raise ServerError(f"{self.name} is already running")
        self.starts += 1
        # Hermetic: settings and provider credentials of the shell running the tests do not leak into the server.
        env = {k: v for k, v in os.environ.items() if not k.startswith(INHERIT_NOT) or k in INHERIT_ANYWAY}
        env.update({"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"})
        # Most servers never run code: no warm sandbox (the suites that run code ask for one; a cold one still works).
        env["THREADLINE_SANDBOX_WARM_POOL"] = "0"
        # The machine's sandbox service a server starts on demand exits soon after its servers stop.
        env["THREADLINE_SANDBOX_SERVICE_LINGER_S"] = "5"
        # One process per server unless a test asks for more (`serve` defaults to one per core).
        env["THREADLINE_WORKERS"] = "1"
        if self.settings_via_env:
            env.update(self.settings_env())
        env.update(self.env)
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(self.command())}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.data_dir.parent,
                start_new_session=True,  # its own process group: stop() also reaches any children
            )
        self._wait_healthy(timeout)
        return self

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.01
        with httpx.Client(timeout=2.0) as http:
            while True:
                if self.process is not None and self.process.poll() is not None:
                    raise ServerError(
                        f"{self.name} exited with code {self.process.returncode} during start-up:\n{self.log_tail()}"
                    )
                try:
                    if http.get(f"{self.root_url}/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    self.kill()
                    raise ServerError(f"{self.name} did not become healthy in {timeout:.0f} s:\n{self.log_tail()}")
                time.sleep(delay)
                delay = min(delay * 1.5, 0.1)

    def _signal(self, sig: int) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`. Returns the exit code (None if it was not running)."""
        if self.process is None:
            return None
        proc = self.process
        if proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                proc.wait()
        self._signal(signal.SIGKILL)  # leftovers in the process group, if any
        self.process = None
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL the server's process group at once (simulates a crash)."""
        if self.process is None:
            return
        self._signal(signal.SIGKILL)
        self.process.wait()
        self.process = None

    def restart(self, timeout: float = START_TIMEOUT_S) -> ServerHandle:
        """Stop (gracefully) and start again on the same port, data dir and database."""
        self.stop()
        return self.start(timeout)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def __repr__(self) -> str:
        return f"<ServerHandle {self.name} {self.backend} {self.base_url} running={self.running}>"


class ServerFactory:
    """Starts servers in fresh data dirs (and fresh PostgreSQL databases); cleans up everything on close()."""

    def __init__(self, root: Path, python: str | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.python = python or server_python()
        self.handles: list[ServerHandle] = []
        self._postgres: PostgresCluster | None = None
        self._template: str | None = None
        self._counter = itertools.count(1)

    @property
    def postgres(self) -> PostgresCluster:
        """The session's PostgreSQL cluster, started on first use."""
        if self._postgres is None:
            self._postgres = PostgresCluster.start()
        return self._postgres

    def database_url(self, backend: str, data_dir: Path, migrated: bool = True) -> str:
        """A fresh database; `migrated=False` gives an empty one (PostgreSQL otherwise clones the migrated template),
        for tests of the migrations themselves."""
        if backend == "sqlite":
            return f"sqlite:///{data_dir.resolve() / 'threadline.db'}"
        if backend == "postgres":
            return self.postgres.create_database(template=self.postgres_template() if migrated else None)
        raise ValueError(f"unknown backend {backend!r}; use one of {BACKENDS}")

    def postgres_template(self) -> str:
        """A database migrated once per session (`threadline migrate` with the server's interpreter); every
        server's database is cloned from it instead of being migrated at its first start."""
        if self._template is None:
            url = self.postgres.create_database(TEMPLATE_DB)
            env = {k: v for k, v in os.environ.items() if not k.startswith(INHERIT_NOT)}
            cmd = [self.python, "-m", "threadline.cli", "migrate", "--database-url", url]
            cmd += ["--data-dir", str(self.root / "template-data")]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
            if proc.returncode != 0:
                raise ServerError(f"migrating the template database failed:\n{proc.stdout}\n{proc.stderr}")
            self._template = TEMPLATE_DB
        return self._template

    def prepare(
        self,
        env: dict[str, str] | None = None,
        backend: str = "sqlite",
        *,
        args: list[str] | None = None,
        name: str | None = None,
    ) -> ServerHandle:
        """Allocate data dir, database and port without starting (call .start() on the result)."""
        n = next(self._counter)
        name = name or f"server-{n}-{backend}"
        data_dir = self.root / name / "data"
        data_dir.mkdir(parents=True)
        handle = ServerHandle(
            name=name,
            data_dir=data_dir,
            log_path=self.root / name / "server.log",
            database_url=self.database_url(backend, data_dir),
            backend=backend,
            port=free_port(),
            env=dict(env or {}),
            args=list(args or []),
            python=self.python,
        )
        self.handles.append(handle)
        return handle

    def start(
        self,
        env: dict[str, str] | None = None,
        backend: str = "sqlite",
        *,
        args: list[str] | None = None,
        name: str | None = None,
        timeout: float = START_TIMEOUT_S,
    ) -> ServerHandle:
        """A running server on a fresh data dir and database. `env` is added to the server's environment."""
        return self.prepare(env, backend, args=args, name=name).start(timeout)

    def close(self) -> None:
        for handle in self.handles:
            handle.stop()
        if self._postgres is not None:
            self._postgres.stop()
            self._postgres = None
            self._template = None

    def __enter__(self) -> ServerFactory:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
