"""The `threadline` command: migrate, serve, add-key, list-keys, revoke-key."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
from pathlib import Path

import httpx
import pytest

from support.server import ServerFactory, ServerHandle, server_python


def threadline(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    script = Path(server_python()).parent / "threadline"
    cmd = [str(script)] if script.exists() else [server_python(), "-m", "threadline.cli"]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLINE_")}
    full_env.update(env or {})
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=full_env, timeout=timeout)


def database_args(backend: str, server_factory: ServerFactory, data_dir: Path) -> list[str]:
    return ["--database-url", server_factory.database_url(backend, data_dir)] if backend == "postgres" else []


def test_migrate_fresh_and_idempotent(tmp_path: Path, backend: str, server_factory: ServerFactory) -> None:
    data_dir = tmp_path / "fresh" / "data"  # does not exist yet
    db_args = database_args(backend, server_factory, data_dir)
    first = threadline("migrate", "--data-dir", str(data_dir), *db_args)
    assert first.returncode == 0, first.stderr
    match = re.search(r"at revision (\S+)", first.stdout)
    assert match, first.stdout
    assert match.group(1) != "None"
    assert ("SQLite" if backend == "sqlite" else "PostgreSQL") in first.stdout
    second = threadline("migrate", "--data-dir", str(data_dir), *db_args)
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    if backend == "sqlite":
        db = data_dir / "threadline.db"
        assert db.exists()
        with sqlite3.connect(db) as conn:
            tables = {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}
        assert {"assistants", "threads", "messages", "files", "uploads", "alembic_version"} <= tables


def test_migrate_via_environment(tmp_path: Path) -> None:
    data_dir = tmp_path / "env-data"
    proc = threadline("migrate", env={"THREADLINE_DATA_DIR": str(data_dir)})
    assert proc.returncode == 0, proc.stderr
    assert (data_dir / "threadline.db").exists()


def test_serve_prints_url_and_store(server_factory: ServerFactory, backend: str) -> None:
    handle = server_factory.start(backend=backend)
    try:
        log = handle.log_text()
        assert f"threadline serving on http://127.0.0.1:{handle.port}/v1" in log
        if backend == "sqlite":
            assert f"store: SQLite ({handle.data_dir.resolve() / 'threadline.db'})" in log
        else:
            assert f"store: PostgreSQL ({handle.database_url})" in log
        assert "no API keys configured" in log  # an open server says so
        assert httpx.get(f"{handle.root_url}/health").json()["store"] == backend
    finally:
        handle.stop()


def test_serve_after_migrate_with_env_settings(server_factory: ServerFactory) -> None:
    """Host, port, data dir and database from THREADLINE_* variables; a migrated data dir is served as is."""
    handle = server_factory.prepare(backend="sqlite")
    assert threadline("migrate", "--data-dir", str(handle.data_dir)).returncode == 0
    handle.settings_via_env = True
    try:
        handle.start()
        assert "--port" not in handle.command()
        assert f"threadline serving on http://127.0.0.1:{handle.port}/v1" in handle.log_text()
        assert httpx.post(f"{handle.base_url}/threads", json={}).status_code == 200
    finally:
        handle.stop()


def test_add_key_enables_auth(server_factory: ServerFactory, backend: str) -> None:
    handle = server_factory.prepare(backend=backend)
    db_args = ["--database-url", handle.database_url]
    proc = threadline("add-key", "--data-dir", str(handle.data_dir), "--name", "ci", *db_args)
    assert proc.returncode == 0, proc.stderr
    key = proc.stdout.strip().splitlines()[-1]
    assert key.startswith("sk-tl-") and len(key) > 30
    chosen = threadline("add-key", "--data-dir", str(handle.data_dir), "--key", "my-chosen-key", *db_args)
    assert chosen.returncode == 0 and chosen.stdout.strip().endswith("my-chosen-key")
    handle.start()
    try:
        url = f"{handle.base_url}/assistants"
        assert httpx.get(url, headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert httpx.get(url, headers={"Authorization": "Bearer my-chosen-key"}).status_code == 200
        assert httpx.get(url, headers={"Authorization": "Bearer sk-tl-wrong"}).status_code == 401
        assert httpx.get(url).status_code == 401
        assert "no API keys configured" not in handle.log_text()
    finally:
        handle.stop()


def status(handle: ServerHandle, key: str | None) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.get(f"{handle.base_url}/assistants", headers=headers).status_code


def test_key_changes_apply_at_once_in_every_server_process(server_factory: ServerFactory, backend: str) -> None:
    """Two servers on one database, both started open: add-key closes both at once, revoke-key shuts the key out
    of both at once, no restart."""
    first = server_factory.prepare(backend=backend)
    second = server_factory.prepare(backend=backend)
    second.database_url = first.database_url
    db_args = ["--data-dir", str(first.data_dir), "--database-url", first.database_url]
    first.start()
    second.start()
    try:
        for handle in (first, second):
            assert status(handle, None) == 200 and "no API keys configured" in handle.log_text()
        added = threadline("add-key", "--key", "sk-tl-first-key-0001", "--name", "first", *db_args)
        assert added.returncode == 0, added.stderr
        assert threadline("add-key", "--key", "sk-tl-other-key-0002", "--name", "other", *db_args).returncode == 0
        for handle in (first, second):
            assert status(handle, None) == 401
            assert status(handle, "sk-tl-wrong-key-0000") == 401
            assert status(handle, "sk-tl-first-key-0001") == 200
            assert status(handle, "sk-tl-other-key-0002") == 200

        again = threadline("add-key", "--key", "sk-tl-first-key-0001", *db_args)
        assert again.returncode == 1 and "stored already" in again.stderr

        listed = threadline("list-keys", *db_args)
        assert listed.returncode == 0, listed.stderr
        rows = [line.split("\t") for line in listed.stdout.strip().splitlines()]
        assert [r[1] for r in rows] == ["first", "other"]
        assert "sk-tl-first" not in listed.stdout  # only a hash prefix is shown

        revoked = threadline("revoke-key", "--key", "sk-tl-first-key-0001", *db_args)
        assert revoked.returncode == 0 and "revoked 1 key" in revoked.stdout
        for handle in (first, second):
            assert status(handle, "sk-tl-first-key-0001") == 401
            assert status(handle, "sk-tl-other-key-0002") == 200

        assert threadline("revoke-key", "--id", rows[1][0], *db_args).returncode == 0
        assert threadline("revoke-key", "--name", "nobody", *db_args).returncode == 1
        for handle in (first, second):  # no key left: open again, as at start
            assert status(handle, None) == 200
    finally:
        second.stop()
        first.stop()


def test_revoke_key_needs_one_selector(tmp_path: Path) -> None:
    proc = threadline("revoke-key", "--data-dir", str(tmp_path))
    assert proc.returncode == 2 and "one of the arguments --key --id --name is required" in proc.stderr


def test_bad_database_url(tmp_path: Path) -> None:
    proc = threadline("migrate", "--data-dir", str(tmp_path), "--database-url", "mysql://nobody@localhost/x")
    assert proc.returncode != 0
    assert "Unsupported database URL" in proc.stderr


@pytest.mark.parametrize("args", [[], ["frobnicate"], ["serve", "--port", "notanumber"]])
def test_usage_errors(args: list[str]) -> None:
    proc = threadline(*args)
    assert proc.returncode == 2
    assert "usage: threadline" in proc.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [("THREADLINE_RUN_WORKERS", "many"), ("THREADLINE_SANDBOX_TIMEOUT_S", "-1"), ("THREADLINE_LOG_FORMAT", "xml")],
)
def test_serve_refuses_an_invalid_setting_naming_it(tmp_path: Path, variable: str, value: str) -> None:
    data_dir = tmp_path / "data"
    got = threadline("serve", "--port", "9", "--data-dir", str(data_dir), env={variable: value}, timeout=60)
    assert got.returncode == 2, got.stderr
    assert got.stderr.startswith(f"threadline: invalid setting {variable}='{value}': "), got.stderr
    assert "Traceback" not in got.stderr and "serving" not in got.stdout
    assert not data_dir.exists()  # it stopped before touching anything


def test_python_dash_m_threadline_is_the_command(tmp_path: Path) -> None:
    """`python -m threadline ...` runs the same command as the `threadline` script (no installed script needed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLINE_")}
    run = [server_python(), "-m", "threadline"]
    helped = subprocess.run([*run, "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert helped.returncode == 0 and "usage: threadline" in helped.stdout and "serve" in helped.stdout
    migrated = subprocess.run(
        [*run, "migrate", "--data-dir", str(tmp_path)], capture_output=True, text=True, env=env, timeout=120
    )
    assert migrated.returncode == 0, migrated.stderr
    assert "at revision" in migrated.stdout
