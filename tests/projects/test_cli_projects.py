"""`threadline keys` project commands, run as an operator would (the real CLI, on the running server's database):
what they create works on the running server at once, what they revoke is refused at once, and the audit log
records the operator's session as the actor."""

from __future__ import annotations

import hashlib
import os
import subprocess

from support.sdk import raw_http_client
from support.server import server_python


def cli(server, *args: str) -> subprocess.CompletedProcess[str]:  # noqa: ANN001
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLINE_")}
    where = ["--data-dir", str(server.data_dir), "--database-url", server.database_url]
    cmd = [server_python(), "-m", "threadline.cli", "keys", *args, *where]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def ok(server, *args: str) -> str:  # noqa: ANN001
    done = cli(server, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_project_commands(server, admin, validator) -> None:  # noqa: ANN001
    pid = ok(server, "create-project", "--name", "From the CLI").strip()
    assert pid.startswith("proj_")
    assert admin.get(f"/organization/projects/{pid}").json()["name"] == "From the CLI"
    projects = ok(server, "list-projects")
    assert f"{pid}\tFrom the CLI\tactive" in projects and "proj_default\tDefault project\tactive" in projects

    first = ok(server, "create-key", "--project", pid, "--name", "worker").strip()
    second = ok(server, "create-key", "--project", pid).strip()
    assert first.startswith("sk-svcacct-") and second != first
    listed = ok(server, "list-keys", "--project", pid)
    assert first not in listed and second not in listed
    rows = [line.split("\t") for line in listed.splitlines()]
    assert [r[1] for r in rows] == [pid, pid] and rows[0][2] == "worker" and rows[0][3].startswith("service_account:")
    assert ok(server, "list-keys").count(pid) == 2
    api_keys = admin.get(f"/organization/projects/{pid}/api_keys").json()["data"]
    assert [k["id"] for k in api_keys] == [r[0] for r in rows]

    with (
        raw_http_client(server.base_url, api_key=first, validator=validator) as one,
        raw_http_client(server.base_url, api_key=second, validator=validator) as two,
    ):
        assert one.get("/assistants").status_code == 200 and two.get("/assistants").status_code == 200
        assert "revoked" in ok(server, "revoke-key", "--id", rows[0][0])
        assert one.get("/assistants").status_code == 401 and two.get("/assistants").status_code == 200
        assert "archived" in ok(server, "archive-project", "--project", pid)
        assert two.get("/assistants").status_code == 401
    assert pid not in ok(server, "list-projects")
    assert f"{pid}\tFrom the CLI\tarchived" in ok(server, "list-projects", "--include-archived")

    logged = admin.get("/organization/audit_logs", params={"project_ids[]": pid, "limit": 100}).json()["data"]
    assert [e["type"] for e in logged][:2] == ["project.archived", "api_key.deleted"]
    assert logged[-1]["type"] == "project.created" and len(logged) == 7
    assert all(e["actor"]["type"] == "session" for e in logged)
    assert logged[0]["actor"]["session"]["user"]["id"] == "user_operator"


def test_refusals(server) -> None:  # noqa: ANN001
    for args, message in (
        (("create-key", "--project", "proj_nope"), "no project has the id proj_nope"),
        (("archive-project", "--project", "proj_nope"), "no project has the id proj_nope"),
        (("archive-project", "--project", "proj_default"), "the default project cannot be archived"),
        (("revoke-key", "--id", "key_nope"), "no project API key has that id"),
        (("list-keys", "--project", "proj_nope"), "no project has the id proj_nope"),
    ):
        done = cli(server, *args)
        assert done.returncode == 1 and message in done.stderr, (args, done.stderr)
    pid = ok(server, "create-project", "--name", "Gone").strip()
    ok(server, "archive-project", "--project", pid)
    done = cli(server, "create-key", "--project", pid)
    assert done.returncode == 1 and "archived" in done.stderr and "sk-" not in done.stdout
    assert cli(server, "create-project").returncode == 2  # --name is required


def test_simple_key_commands_are_audit_logged(server, admin) -> None:  # noqa: ANN001
    """`threadline add-key` / `revoke-key` (the single-project setup's keys) change which keys work, so they are
    in the audit log like the `keys` commands: the default project's api_key.created / api_key.deleted, with the
    key's public id and the operator's session as the actor."""

    def simple(*args: str) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLINE_")}
        where = ["--data-dir", str(server.data_dir), "--database-url", server.database_url]
        done = subprocess.run(
            [server_python(), "-m", "threadline.cli", *args, *where],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    key = simple("add-key", "--name", "audited").strip()
    assert key.startswith("sk-")
    key_id = "key_" + hashlib.sha256(key.encode()).hexdigest()[:16]
    assert "revoked 1" in simple("revoke-key", "--name", "audited")

    params = {"resource_ids[]": key_id, "limit": 100}
    logged = admin.get("/organization/audit_logs", params=params).json()["data"]
    assert [e["type"] for e in logged] == ["api_key.deleted", "api_key.created"]
    assert all(e["project"]["id"] == "proj_default" and e["actor"]["type"] == "session" for e in logged)
    assert logged[0]["api_key.deleted"]["id"] == key_id and logged[1]["api_key.created"]["id"] == key_id
