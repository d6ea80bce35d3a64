"""Skips for tests written ahead of the server feature they exercise."""

from __future__ import annotations

import httpx
import pytest

NOT_SERVED = "POST /v1/responses is not served yet (404): this test runs once Responses execution lands"


def responses_served(base_url: str) -> bool:
    """Whether the server routes POST /v1/responses: an unrouted path answers 404 `Invalid URL (...)`, a routed one
    answers an empty body with a 400."""
    r = httpx.post(f"{base_url}/responses", json={}, headers={"Authorization": "Bearer test"}, timeout=30)
    return not (r.status_code == 404 and "Invalid URL" in r.text)


def require_responses(base_url: str) -> None:
    """Skip the calling test while POST /v1/responses is not served."""
    if not responses_served(base_url):
        pytest.skip(NOT_SERVED)
