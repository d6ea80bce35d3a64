"""Shared fixtures: real servers (SQLite and PostgreSQL), spec-validating SDK clients.

Fixtures:
    server_factory  (session)  ServerFactory: .start(env=None, backend="sqlite") -> ServerHandle
    pg_cluster      (session)  the PostgreSQL cluster the servers use (started on first use); .create_database()
    backend         (session)  "sqlite" / "postgres"; restrict with THREADLINE_TEST_BACKENDS=sqlite
    server          (session)  a running plain server per backend, shared by the modules that need nothing special
    validator       (function) ResponseValidator; any spec mismatch fails the test at teardown
    client          (function) openai.OpenAI on `server`, validating every JSON response
    http            (function) raw httpx.Client on `server` (base_url .../v1), validating too
    admin           (function) raw httpx.Client on `server` with the module's `admin_key` fixture, validating too
    price_file      (module)   Path of a THREADLINE_PRICES_FILE holding the module's `prices` fixture
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

pytest_plugins = ["support.fixtures", "support.llm"]
