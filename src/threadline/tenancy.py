"""Which project a piece of work belongs to.

Every object (assistants, threads and what they hold, files, uploads, vector stores, responses, containers) belongs
to one project. The project of the current request is set by the API middleware from the request's key (and, for
an admin key, its `OpenAI-Project` header); an execution (a run or a background response) sets it from its own row
before it touches anything, so a tool can only reach its own project's files and vector stores.

`current_project` is None outside any request or execution (start-up, the sweeper, the CLI): code running there
acts for the whole server and must not read objects on behalf of a client.
"""

from __future__ import annotations

import contextvars

# The project every object belongs to on a single-project server (THREADLINE_API_KEYS, `threadline add-key`,
# an open server), and the one existing objects were moved into when projects were introduced.
DEFAULT_PROJECT_ID = "proj_default"

current_project: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_project", default=None)


def project_id() -> str:
    """The project new objects are created in: the current one, or the default project outside a request."""
    return current_project.get() or DEFAULT_PROJECT_ID
