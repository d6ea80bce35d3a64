"""The `threadline` command: serve, sandbox, migrate, keys, usage."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import sys

from .config import Settings, SettingsError, export

log = logging.getLogger("threadline")


def _settings(args: argparse.Namespace) -> Settings:
    """The environment's settings with the command line's options on top (SettingsError names a bad one)."""
    return Settings.load(
        host=getattr(args, "host", None) or None,
        port=getattr(args, "port", None) or None,
        data_dir=getattr(args, "data_dir", None) or None,
        database_url=getattr(args, "database_url", None) or None,
        sandbox_service_dir=getattr(args, "service_dir", None) or None,
        workers=getattr(args, "workers", None),
    )


def _describe_store(url: str) -> str:
    if url.startswith("sqlite"):
        return f"SQLite ({url.removeprefix('sqlite:///')})"
    from sqlalchemy.engine import make_url

    return f"PostgreSQL ({make_url(url).render_as_string(hide_password=True)})"


def _describe_sandbox(settings: Settings) -> str:
    if settings.sandbox_service == "off":
        return "sandboxes in this process (THREADLINE_SANDBOX_SERVICE=off)"
    from .sandbox.selection import service_dir

    how = "started on demand" if settings.sandbox_service == "auto" else "run `threadline sandbox`"
    return f"the machine's sandbox service at {service_dir(settings).socket_path} ({how})"


def process_count(settings: Settings) -> int:
    """`serve` processes: --workers, else THREADLINE_WORKERS, else (0) one per core."""
    return settings.workers or os.cpu_count() or 1


def _announce(settings: Settings, keys_enabled: bool, processes: int) -> None:
    plural = f" ({processes} processes)" if processes > 1 else ""
    print(f"threadline serving on http://{settings.host}:{settings.port}/v1{plural}", flush=True)
    print(f"store: {_describe_store(settings.effective_database_url)}", flush=True)
    print(f"files: {settings.blob_url or settings.blob_dir}", flush=True)
    print(f"code_interpreter: {_describe_sandbox(settings)}", flush=True)
    if not keys_enabled:
        print(
            "WARNING: no API keys configured (THREADLINE_API_KEYS): the server is OPEN to anyone who can reach it.",
            flush=True,
        )


def serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    level = logging.getLevelName(args.log_level.upper())
    if isinstance(level, int):  # uvicorn's own `trace` level has no logging name: leave the root at INFO
        logging.getLogger().setLevel(level)
    processes = process_count(settings)
    if processes == 1:
        from .app import create_app

        app = create_app(settings)
        _announce(settings, app.state.runtime.keys.enabled, 1)
        # log_config=None: uvicorn's own loggers go through the root handler, in the configured (JSON or text) format
        uvicorn.run(
            app, host=settings.host, port=settings.port, log_level=args.log_level, access_log=False, log_config=None
        )
        return 0
    # N processes on one port: uvicorn's supervisor binds the socket, spawns the processes (each builds its own
    # Runtime from the environment, so the command line's settings go there) and restarts any that dies.
    from .auth import KeyChecker
    from .store import Store

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.database_url = settings.effective_database_url
    if settings.prometheus_multiproc_dir is None:
        # /metrics on any of the processes aggregates the counters and histograms of all (docs/deployment.md)
        metrics_dir = settings.data_dir / "prometheus"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        settings.prometheus_multiproc_dir = metrics_dir.resolve()
    export(settings, "host", "port", "data_dir", "database_url", "prometheus_multiproc_dir")
    store = Store(settings.effective_database_url)
    store.migrate()  # once, before the processes start (each would wait for the others' migration otherwise)
    enabled = KeyChecker(store, settings.api_keys, settings.admin_keys).enabled
    store.close()
    _announce(settings, enabled, processes)
    uvicorn.run(
        "threadline.app:app_from_env",
        factory=True,
        workers=processes,
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        access_log=False,
        log_config=None,
    )
    return 0


def sandbox(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the machine's code_interpreter sandbox sessions to every threadline process (see sandbox/service.py)."""
    from .sandbox.selection import manager_from_settings, service_dir
    from .sandbox.service import run_service

    where = service_dir(settings)
    linger = settings.sandbox_service_linger_s if args.on_demand else None
    print(f"threadline sandbox service on {where.socket_path}", flush=True)
    return run_service(manager_from_settings(settings), where, linger_s=linger)


def worker(args: argparse.Namespace, settings: Settings) -> int:
    """Execute background runs and ingest vector-store files, without HTTP, until SIGTERM / SIGINT."""
    if settings.run_workers <= 0:
        print("error: THREADLINE_RUN_WORKERS is 0: this worker would execute no runs", file=sys.stderr)
        return 2

    async def main() -> None:
        from .app import Runtime

        runtime = Runtime(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await runtime.start()
        print(
            f"threadline worker ready: {settings.run_workers} run workers on "
            f"{_describe_store(settings.effective_database_url)}",
            flush=True,
        )
        try:
            await stop.wait()
        finally:
            await runtime.stop()

    asyncio.run(main())
    return 0


def migrate(args: argparse.Namespace, settings: Settings) -> int:
    from .store import Store
    from .store.migrate import current

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.effective_database_url)
    store.migrate()
    print(f"{_describe_store(settings.effective_database_url)} at revision {current(store.engine)}")
    store.close()
    return 0


def _key_store(settings: Settings):  # noqa: ANN202 - (Store, KeyChecker)
    from .auth import KeyChecker
    from .store import Store

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.effective_database_url)
    store.migrate()
    return store, KeyChecker(store, [])


def add_key(args: argparse.Namespace, settings: Settings) -> int:
    import secrets

    store, keys = _key_store(settings)
    try:
        key = args.key or "sk-tl-" + secrets.token_urlsafe(32)
        if not keys.add(key, args.name):
            print("error: that key is stored already", file=sys.stderr)
            return 1
        print(key)
        return 0
    finally:
        store.close()


def list_keys(args: argparse.Namespace, settings: Settings) -> int:
    import datetime

    store, keys = _key_store(settings)
    try:
        stored = keys.list()
        if not stored:
            print("no keys stored (keys in THREADLINE_API_KEYS are not listed)")
        for k in stored:
            created = datetime.datetime.fromtimestamp(k.created_at, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            print(f"{k.id}\t{k.name or '-'}\t{created}\tsha256:{k.hash_prefix}")
        return 0
    finally:
        store.close()


def revoke_key(args: argparse.Namespace, settings: Settings) -> int:
    store, keys = _key_store(settings)
    try:
        count = keys.revoke(key=args.key, key_id=args.id, name=args.name)
        if not count:
            print("error: no stored key matches (keys in THREADLINE_API_KEYS are revoked there)", file=sys.stderr)
            return 1
        print(f"revoked {count} key(s)")
        return 0
    finally:
        store.close()


def _when(at: int | None) -> str:
    import datetime

    if at is None:
        return "-"
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class _Refused(Exception):
    """A refusal (an unknown id, a key stored already ...): the transaction is rolled back."""


def keys_command(args: argparse.Namespace, settings: Settings) -> int:
    """`threadline keys ...`: admin keys for /v1/organization, and projects and their keys for operators without
    HTTP access (stored hashed; each change is in the audit log and applies at once in every running server)."""
    store, _ = _key_store(settings)
    out: list[str] = []
    try:
        with store.write() as conn:
            _keys(conn, args, out)
    except _Refused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    for line in out:
        print(line)
    return 0


def _keys(conn, args: argparse.Namespace, out: list[str]) -> None:  # noqa: ANN001, C901, PLR0912
    from .store import admin_keys, audit, projects

    actor, command = audit.CLI_ACTOR, args.keys_command
    if command == "add-admin":
        created = admin_keys.create(conn, args.name, value=args.key)
        if created is None:
            raise _Refused("that key is stored already")
        scopes = ["api.management.read", "api.management.write"]
        audit.record(conn, "api_key.created", actor=actor, details={"id": created["id"], "data": {"scopes": scopes}})
        out.append(created["value"])
    elif command == "list-admin":
        stored, _ = admin_keys.listed(conn, after=None, order="asc", limit=10_000)
        if not stored:
            out.append("no admin keys stored (keys in THREADLINE_ADMIN_KEYS are not listed)")
        for k in stored:
            out.append(f"{k['id']}\t{k['name'] or '-'}\t{_when(k['created_at'])}\t{k['redacted_value']}")
    elif command == "revoke-admin":
        if not admin_keys.delete(conn, args.id):
            raise _Refused("no stored admin key has that id (see list-admin)")
        audit.record(conn, "api_key.deleted", actor=actor, details={"id": args.id})
        out.append(f"revoked {args.id}")
    elif command == "create-project":
        project = projects.create_project(conn, args.name)
        details = {"id": project["id"], "data": {"name": args.name, "title": args.name}}
        audit.record(conn, "project.created", project_id=project["id"], actor=actor, details=details)
        out.append(project["id"])
    elif command == "list-projects":
        listed, _ = projects.list_projects(conn, after=None, limit=100_000, include_archived=args.include_archived)
        for p in listed:
            out.append(f"{p['id']}\t{p['name'] or '-'}\t{p['status']}\t{_when(p['created_at'])}")
    elif command == "archive-project":
        project = _project(conn, args.project)
        if args.project == "proj_default":
            raise _Refused("the default project cannot be archived")
        if project["archived_at"] is None:
            projects.archive_project(conn, args.project)
            audit.record(conn, "project.archived", project_id=args.project, actor=actor, details={"id": args.project})
        out.append(f"archived {args.project}")
    elif command == "create-key":
        if _project(conn, args.project)["archived_at"] is not None:
            raise _Refused(f"the project {args.project} is archived")
        created = projects.create_service_account(conn, args.project, args.name)
        details = {"id": created["id"], "data": {"role": created["role"]}}
        audit.record(conn, "service_account.created", project_id=args.project, actor=actor, details=details)
        details = {"id": created["api_key"]["id"], "data": {"scopes": ["api.all"]}}
        audit.record(conn, "api_key.created", project_id=args.project, actor=actor, details=details)
        out.append(created["api_key"]["value"])
    elif command == "list-keys":
        if args.project:
            ids = [_project(conn, args.project)["id"]]
        else:
            ids = [p["id"] for p in projects.list_projects(conn, after=None, limit=100_000, include_archived=True)[0]]
        for pid in ids:
            for k in projects.list_api_keys(conn, pid, after=None, limit=100_000)[0]:
                owner = k["owner"].get("service_account") or k["owner"]["user"]
                out.append(
                    f"{k['id']}\t{pid}\t{k['name']}\t{k['owner']['type']}:{owner['id']}\t{k['redacted_value']}"
                    f"\tcreated {_when(k['created_at'])}\tlast used {_when(k['last_used_at'])}"
                )
    elif command == "revoke-key":
        pid = projects.project_of_key(conn, args.id)
        if pid is None or not projects.delete_api_key(conn, pid, args.id):
            raise _Refused("no project API key has that id (see list-keys)")
        audit.record(conn, "api_key.deleted", project_id=pid, actor=actor, details={"id": args.id})
        out.append(f"revoked {args.id}")


def _project(conn, project_id: str) -> dict:  # noqa: ANN001
    from .store import projects

    project = projects.get_project(conn, project_id)
    if project is None:
        raise _Refused(f"no project has the id {project_id} (see list-projects)")
    return project


def _period(args: argparse.Namespace, now: float) -> tuple[int, int, str]:
    """(start, end, label) of the report's period: --since / --until (UTC dates or ISO times; --until a date
    includes that day), else the last --days days including today (30 by default). Raises ValueError."""
    import datetime

    utc = datetime.UTC

    def parse(text: str, *, end: bool) -> int:
        value = datetime.datetime.fromisoformat(text)
        if value.tzinfo is None:
            value = value.replace(tzinfo=utc)
        if end and len(text) == 10:  # a date: up to the end of that day
            value += datetime.timedelta(days=1)
        return int(value.timestamp())

    if args.days is not None and (args.since or args.until):
        raise ValueError("--days cannot be combined with --since / --until")
    if args.since or args.until:
        if not args.since:
            raise ValueError("--until needs --since")
        start = parse(args.since, end=False)
        end = parse(args.until, end=True) if args.until else int(now) + 1
    else:
        days = 30 if args.days is None else args.days
        if days < 1:
            raise ValueError("--days must be at least 1")
        today = int(now) - int(now) % 86400
        start, end = today - (days - 1) * 86400, int(now) + 1
    if end <= start:
        raise ValueError("the period ends before it starts")

    def show(ts: int) -> str:
        return datetime.datetime.fromtimestamp(ts, utc).strftime("%Y-%m-%d %H:%M:%S")

    return start, end, f"from {show(start)} to {show(end)} UTC (end excluded)"


def usage(args: argparse.Namespace, settings: Settings) -> int:
    """`threadline usage`: spend (USD, the prices of /v1/organization/costs) and tokens per project, key,
    assistant, thread and/or model over a period, as a table or CSV, read from the database."""
    import time

    from .services.prices import Prices
    from .services.usage_report import report, to_csv, to_table
    from .store import Store

    try:
        start, end, period = _period(args, time.time())
        prices = Prices.load(settings.prices_file)
    except (ValueError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    by = list(dict.fromkeys(args.by or ["project"]))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.effective_database_url)
    try:
        store.migrate()
        with store.read() as conn:
            rows = report(conn, start, end, by, prices)
    finally:
        store.close()
    if args.csv:
        try:
            with open(args.csv, "w", newline="", encoding="utf-8") as f:
                f.write(to_csv(rows, by))
        except OSError as exc:
            print(f"error: cannot write {args.csv}: {exc.strerror}", file=sys.stderr)
            return 1
    if args.format == "csv":
        sys.stdout.write(to_csv(rows, by))
    else:
        sys.stdout.write(to_table(rows, by, period))
        if args.csv:
            print(f"\n{len(rows)} rows written to {args.csv}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="threadline", description="OpenAI Assistants API v2 server.")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", help="data directory (env THREADLINE_DATA_DIR, default ./var)")
        p.add_argument("--database-url", help="sqlite:///... or postgresql://... (env THREADLINE_DATABASE_URL)")

    p = sub.add_parser("serve", help="run the HTTP server")
    p.add_argument("--host", help="bind address (env THREADLINE_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (env THREADLINE_PORT, default 8000)")
    p.add_argument("--log-level", default="info")
    p.add_argument(
        "--workers",
        type=int,
        help="processes serving the port (env THREADLINE_WORKERS; default 0: one per core)",
    )
    common(p)
    p.set_defaults(func=serve)

    p = sub.add_parser("sandbox", help="run the machine's code_interpreter sandbox service (shared by every process)")
    p.add_argument("--service-dir", help="socket and token directory (env THREADLINE_SANDBOX_SERVICE_DIR)")
    p.add_argument(
        "--on-demand",
        action="store_true",
        help="exit once no threadline process is attached (THREADLINE_SANDBOX_SERVICE_LINGER_S); servers use this",
    )
    common(p)
    p.set_defaults(func=sandbox)

    p = sub.add_parser("worker", help="execute background runs and ingestion, without HTTP")
    common(p)
    p.set_defaults(func=worker)

    p = sub.add_parser("migrate", help="apply database migrations")
    common(p)
    p.set_defaults(func=migrate)

    p = sub.add_parser("add-key", help="create an API key (stored hashed) and print it")
    p.add_argument("--key", help="use this key instead of a random one")
    p.add_argument("--name")
    common(p)
    p.set_defaults(func=add_key)

    p = sub.add_parser("list-keys", help="list stored API keys (id, name, created, hash prefix)")
    common(p)
    p.set_defaults(func=list_keys)

    p = sub.add_parser("revoke-key", help="delete a stored API key; running servers reject it at once")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--key", help="the key itself")
    which.add_argument("--id", type=int, help="its id (see list-keys)")
    which.add_argument("--name", help="every key with this name")
    common(p)
    p.set_defaults(func=revoke_key)

    p = sub.add_parser("keys", help="admin keys for /v1/organization; projects and their keys (no HTTP needed)")
    keys_sub = p.add_subparsers(dest="keys_command", required=True)
    k = keys_sub.add_parser("add-admin", help="create an admin key (stored hashed) and print it once")
    k.add_argument("--key", help="use this key instead of a random one")
    k.add_argument("--name")
    common(k)
    k = keys_sub.add_parser("list-admin", help="list stored admin keys (id, name, created, redacted value)")
    common(k)
    k = keys_sub.add_parser("revoke-admin", help="delete a stored admin key; running servers refuse it at once")
    k.add_argument("--id", required=True, help="its id (key_..., see list-admin)")
    common(k)
    k = keys_sub.add_parser("create-project", help="create a project and print its id")
    k.add_argument("--name", required=True)
    common(k)
    k = keys_sub.add_parser("list-projects", help="list projects (id, name, status, created)")
    k.add_argument("--include-archived", action="store_true", help="archived projects too")
    common(k)
    k = keys_sub.add_parser("archive-project", help="archive a project; running servers refuse its keys at once")
    k.add_argument("--project", required=True, help="its id (proj_...)")
    common(k)
    k = keys_sub.add_parser("create-key", help="create a project's service account and API key; print the key once")
    k.add_argument("--project", required=True, help="the project's id (proj_...)")
    k.add_argument("--name", default="service account", help="the service account's (and its key's) name")
    common(k)
    k = keys_sub.add_parser("list-keys", help="list project API keys (id, project, name, owner, redacted value)")
    k.add_argument("--project", help="only this project's keys (proj_...)")
    common(k)
    k = keys_sub.add_parser("revoke-key", help="delete a project API key; running servers refuse it at once")
    k.add_argument("--id", required=True, help="its id (key_..., see list-keys)")
    common(k)
    p.set_defaults(func=keys_command)

    from .services.usage_report import DIMENSIONS

    p = sub.add_parser(
        "usage", help="spend (USD) and tokens by project / api key / assistant / thread / model for a period"
    )
    p.add_argument(
        "--by",
        action="append",
        choices=tuple(DIMENSIONS),
        help="group by this (repeat for several, e.g. --by project --by model; default: project)",
    )
    p.add_argument("--since", help="start: a UTC date (YYYY-MM-DD) or ISO time")
    p.add_argument("--until", help="end: a UTC date (that day included) or ISO time (excluded); default now")
    p.add_argument("--days", type=int, help="the last N days, today included (default 30)")
    p.add_argument("--format", choices=("table", "csv"), default="table", help="what to print (default: table)")
    p.add_argument("--csv", metavar="FILE", help="also write the rows as CSV to FILE")
    common(p)
    p.set_defaults(func=usage)

    args = parser.parse_args(argv)
    from .logs import configure

    try:
        settings = _settings(args)
    except SettingsError as exc:
        print(f"threadline: {exc}", file=sys.stderr)
        return 2
    configure(logging.INFO, settings.log_format)
    for noisy in ("alembic", "httpx", "httpx2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return args.func(args, settings)


if __name__ == "__main__":
    sys.exit(main())
