"""Console routes: the page and its static files, and the read-only extension endpoints the /v1 API lacks.

Extensions (all GET, all under /v1 so the API-key check and project scoping apply to them as to any call):

    /v1/console/session                         what the console may show: auth mode, store backend, projects
    /v1/console/threads                         list and search threads, with counts, last run and token totals
    /v1/console/usage                           tokens and spend per day by model, assistant and project, and the
                                                threads and runs that cost the most
    /v1/console/threads/{t}/runs/{r}/cost       one run's cost per turn, per step and per tool
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from ..api.common import check_id, check_no_nul, json, runtime
from ..api.errors import APIError, bad_request, invalid_id
from ..auth import Access, Verdict
from ..ids import PREFIXES, has_prefix
from ..services import runs as run_service
from ..services import spend
from ..store import console as queries
from ..store import projects
from ..tenancy import DEFAULT_PROJECT_ID, current_project

STATIC_DIR = Path(__file__).resolve().parent / "static"
DAY_S = 86_400
MAX_USAGE_DAYS = 366
MAX_PROJECTS = 1000  # the switcher lists at most this many (active) projects
MAX_TIMESTAMP = 253_402_300_799  # 9999-12-31T23:59:59Z: beyond it, times overflow the BIGINT columns' comparisons

# The page loads nothing from elsewhere; images are blob: URLs made from /v1/files/{id}/content.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
PAGE_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}

api = APIRouter(prefix="/v1/console", tags=["console"])


def install(app: FastAPI) -> None:
    """Serve the console at `/` and `/console/*`, and its extension endpoints under `/v1/console/`."""

    @app.get("/", include_in_schema=False)
    def index() -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)

    app.include_router(api)
    app.mount("/console", StaticFiles(directory=STATIC_DIR), name="console")


def _timestamp(param: str, value: str | None) -> int | None:
    """Unix seconds, or a date/time in ISO 8601 (UTC when no offset is given)."""
    if value is None or value == "":
        return None
    check_no_nul(param, value)
    if value.isdigit():
        if len(value) > 12 or int(value) > MAX_TIMESTAMP:
            raise bad_request(f"Invalid '{param}': {value[:64]} is after the year 9999.", param=param)
        return int(value)
    from datetime import UTC, datetime

    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise bad_request(
            f"Invalid '{param}': expected Unix seconds or an ISO 8601 date, got {value[:64]!r}.", param=param
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


# -- endpoints ------------------------------------------------------------------------------------------------------


@api.get("/session")
def session(request: Request) -> Response:
    """What this key may see: its project (`{id, name}`), and for an admin key (or anyone on an open server) the
    active projects it may switch between with `OpenAI-Project` (`projects`, else null). Cost is always reported
    (priced from the usage records, services/prices.py)."""
    rt = runtime(request)
    access = _access(request)
    switches = _switches(access)
    current = current_project.get() or DEFAULT_PROJECT_ID
    with rt.store.read() as conn:
        found = projects.get_project(conn, current)
        listed = projects.list_projects(conn, after=None, limit=MAX_PROJECTS, include_archived=False)[0]
    return json(
        {
            "object": "console.session",
            "auth": "api_key" if rt.keys.enabled or access.admin else "open",
            "admin": access.admin,
            "backend": rt.store.backend,
            "project": {"id": current, "name": found["name"] if found else current},
            "projects": [{"id": p["id"], "name": p["name"]} for p in listed] if switches else None,
            "cost_available": True,
        }
    )


@api.get("/threads")
def list_threads(
    request: Request,
    limit: int = Query(20, ge=1, le=100),
    after: str | None = Query(None),
    q: str | None = Query(None, max_length=256),
    assistant_id: str | None = Query(None),
    metadata_key: str | None = Query(None, max_length=64),
    metadata_value: str | None = Query(None, max_length=512),
    created_after: str | None = Query(None),
    created_before: str | None = Query(None),
) -> Response:
    """Threads, newest first, each with `message_count`, `run_count`, `last_run` and summed run `usage`.

    Filters: `q` (a thread id or its beginning), `assistant_id` (threads with a run of that assistant),
    `metadata_key` + `metadata_value` (exact match), `created_after` / `created_before` (Unix seconds or ISO date).
    Cursor pagination with `after` (a thread id), as in the rest of the API.
    """
    rt = runtime(request)
    for name, value in (("q", q), ("metadata_key", metadata_key), ("metadata_value", metadata_value)):
        check_no_nul(name, value)
    if assistant_id and not has_prefix("assistant", assistant_id):
        raise invalid_id("assistant_id", assistant_id, PREFIXES["assistant"])
    since, until = _timestamp("created_after", created_after), _timestamp("created_before", created_before)
    if after:
        check_id("thread", after, "after")
    where = queries.ThreadFilter(
        id_prefix=q,
        assistant_id=assistant_id,
        metadata_key=metadata_key,
        metadata_value=metadata_value or "",
        since=since,
        until=until,
        after=after,
    )
    with rt.store.read() as conn:
        rows, has_more = queries.threads(conn, where, limit)
        ids = [thread_id for thread_id, _ in rows]
        summaries = queries.thread_summaries(conn, ids)
    data = [{**thread, "object": "console.thread", **summaries.get(thread_id, {})} for thread_id, thread in rows]
    return json(
        {
            "object": "list",
            "data": data,
            "first_id": ids[0] if ids else None,
            "last_id": ids[-1] if ids else None,
            "has_more": has_more,
        }
    )


def _access(request: Request) -> Access:
    """What the request's key allows (the middleware checked it already; this tells admin keys apart)."""
    auth = request.headers.get("authorization", "")
    key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
    return runtime(request).keys.resolve(key or None)


def _switches(access: Access) -> bool:
    """Whether this key may look at any project (an admin key, or anyone on an open server)."""
    return access.admin or access.verdict is Verdict.OPEN


@api.get("/usage")
def usage(
    request: Request,
    days: int = Query(30, ge=1, le=MAX_USAGE_DAYS),
    end: str | None = Query(None),
    scope: str = Query("project", pattern="^(project|all)$"),
) -> Response:
    """Usage and spend per UTC day over the `days` days ending at `end` (default: today), from the usage records
    that /v1/organization/usage and /costs sum, priced as /costs prices them (USD): one bucket per day, kind,
    project, assistant and model; the TOP_N threads and runs that cost the most, then used the most tokens.

    `scope=project` (default): the request's project (its key's, or the OpenAI-Project header's for an admin key);
    `scope=all`: every project, for an admin key only (403 otherwise)."""
    rt = runtime(request)
    projects_of_scope: list[str] | None = [current_project.get() or DEFAULT_PROJECT_ID]
    if scope == "all":
        if not _switches(_access(request)):
            raise APIError(
                403, "Only an admin key can see every project's usage (scope=all).", param="scope", code="forbidden"
            )
        projects_of_scope = None
    until = _timestamp("end", end) or rt.clock.now()
    until = until - until % DAY_S + DAY_S  # through the end of that UTC day
    since = until - days * DAY_S
    # Every project (an admin's scope=all): read as the server, not as the header's project.
    token = current_project.set(None) if projects_of_scope is None else None
    try:
        with rt.store.read() as conn:
            found = spend.usage(conn, since, until, projects_of_scope, rt.prices)
    finally:
        if token is not None:
            current_project.reset(token)
    return json(
        {"object": "console.usage", "scope": scope, "start": since, "end": until, "cost_available": True, **found}
    )


@api.get("/threads/{thread_id}/runs/{run_id}/cost")
def run_cost(thread_id: str, run_id: str, request: Request) -> Response:
    """What one run cost: each turn (tokens, what its prompt was made of, USD), each step's usage priced at the run's
    model, and its tool use (file_search calls, code-interpreter sessions). 404 as the run itself."""
    rt = runtime(request)
    with rt.store.read() as conn:
        run = run_service.load_run(conn, thread_id, run_id)
        return json(spend.run_cost(conn, run, rt.prices))
