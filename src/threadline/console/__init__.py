"""The web console: a small client of the public /v1 API (static files) plus a few read-only extension endpoints.

`install(app)` serves the page at `/`, its files under `/console/`, and the extensions under `/v1/console/`
(behind the same API-key check as the rest of /v1).
"""

from .router import install

__all__ = ["install"]
