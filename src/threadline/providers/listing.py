"""Which models the configured routes serve, for ``GET /v1/models``.

Listed, in OpenAI's Model shape (``{id, object: "model", created, owned_by}``), sorted by id:

* every exact ``model`` route of the routes file;
* every name in the routes file's ``models`` table that some route serves;
* what each enumerable route's upstream serves: a route without ``upstream_model`` that is a catch-all (the
  ``OPENAI_BASE_URL`` default), a ``prefix`` or a ``pattern`` route asks its upstream's own model list
  (``GET {base_url}/models`` for OpenAI-compatible servers, ``GET {base_url}/v1/models`` for Anthropic). Upstream
  ids are mapped back to the names clients use (``prefix`` + id with ``strip_prefix``; otherwise the id, kept only
  when it matches the prefix or pattern) and kept only when the router would send that name to this very route.

Upstream lists are fetched with a short timeout (``THREADLINE_UPSTREAM_MODELS_TIMEOUT_S``, default 3 s) and
cached (``THREADLINE_UPSTREAM_MODELS_TTL_S``, default 300 s); a failing upstream is logged, left out, and asked
again only after ``FAILURE_RETRY_S``, so the listing never fails and stays fast while an upstream is down.
``THREADLINE_UPSTREAM_MODELS=off`` lists only the routes file's names.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx

from .router import ModelNotRoutable, ProviderRouter, Route

if TYPE_CHECKING:
    from ..config import Settings

log = logging.getLogger("threadline.providers")

FAILURE_RETRY_S = 30.0
MAX_UPSTREAM_MODELS = 10_000  # a list longer than this is cut (memory bound against a misbehaving upstream)
ANTHROPIC_VERSION = "2023-06-01"


def model_object(model_id: str, created: int = 0, owned_by: str = "threadline") -> dict[str, Any]:
    """OpenAI's Model object; `created` is 0 when the upstream does not say (Unix seconds otherwise)."""
    return {"id": model_id, "object": "model", "created": created, "owned_by": owned_by}


class _Upstream:
    """One upstream model list: the fetch result and when to fetch again."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.models: list[dict[str, Any]] | None = None  # None: unknown (never fetched, or the fetch failed)
        self.refresh_at = 0.0


class ModelLister:
    """Lists the models of a ProviderRouter (see the module docstring); safe to share across requests."""

    def __init__(
        self, router: ProviderRouter, *, upstream: bool = True, timeout_s: float = 3.0, ttl_s: float = 300.0
    ) -> None:
        self.router = router
        self.upstream = upstream
        self.timeout_s = timeout_s
        self.ttl_s = ttl_s
        self._cache: dict[tuple, _Upstream] = {}

    @classmethod
    def from_settings(cls, router: ProviderRouter, settings: Settings) -> ModelLister:
        """A lister with the THREADLINE_UPSTREAM_MODELS* settings."""
        return cls(
            router,
            upstream=settings.upstream_models,
            timeout_s=settings.upstream_models_timeout_s,
            ttl_s=settings.upstream_models_ttl_s,
        )

    # -- public ---------------------------------------------------------------------------------------------------

    async def list(self) -> list[dict[str, Any]]:
        """Every model the routes serve, sorted by id. Never raises for an upstream problem."""
        found: dict[str, dict[str, Any]] = {}
        for route in self.router.routes:
            if route.model is not None:
                found.setdefault(route.model, model_object(route.model, owned_by=self._owner(route)))
        for name in self.router.catalog.context_overrides | self.router.catalog.vision_overrides:
            if self.router.can_route(name):
                found.setdefault(name, model_object(name, owned_by=self._owner(self.router.route_for(name))))
        routes = [r for r in self.router.routes if self._enumerable(r)]
        lists = await asyncio.gather(*(self._upstream_models(r) for r in routes))
        for models in lists:
            for model in models or []:
                found[model["id"]] = model  # the upstream's created / owned_by are better than ours
        return [found[k] for k in sorted(found)]

    async def get(self, model_id: str) -> dict[str, Any] | None:
        """The model, or None when no route serves it (or its route's upstream list does not have it).

        A name served by a route whose models cannot be enumerated (an `upstream_model` route, upstream listing
        off, or the upstream unreachable) is returned as is: runs would be sent there, so it is not unknown."""
        for model in await self.list():
            if model["id"] == model_id:
                return model
        try:
            route = self.router.route_for(model_id)
        except ModelNotRoutable:
            return None
        if self._enumerable(route) and self._entry(route).models is not None:
            return None  # the upstream listed its models and this is not one of them
        return model_object(model_id, owned_by=self._owner(route))

    # -- upstream lists -------------------------------------------------------------------------------------------

    def _enumerable(self, route: Route) -> bool:
        return self.upstream and route.model is None and not route.upstream_model and route.instance is None

    @staticmethod
    def _owner(route: Route) -> str:
        return str(route.options.get("name") or route.provider)

    def _target(self, route: Route) -> tuple[str, str, str, tuple]:
        default = "https://api.anthropic.com" if route.provider == "anthropic" else "https://api.openai.com/v1"
        vendor = self.router.vendor_default(route.provider)
        base_url = route.base_url or vendor.base_url or default
        api_key = route.api_key or vendor.api_key or "not-needed"
        headers = tuple(sorted((k, v) for k, v in (route.options.get("headers") or {}).items() if v is not None))
        return route.provider, base_url, api_key, headers

    def _entry(self, route: Route) -> _Upstream:
        return self._cache.setdefault(self._target(route), _Upstream())

    async def _upstream_models(self, route: Route) -> list[dict[str, Any]] | None:
        entry = self._entry(route)
        async with entry.lock:
            if time.monotonic() >= entry.refresh_at:
                provider, base_url, api_key, headers = self._target(route)
                try:
                    entry.models = await self._fetch(provider, base_url, api_key, dict(headers))
                    entry.refresh_at = time.monotonic() + self.ttl_s
                except Exception as exc:  # noqa: BLE001 - any upstream trouble: leave it out, retry later
                    log.warning("cannot list the models of %s: %s", base_url, exc)
                    entry.models = None
                    entry.refresh_at = time.monotonic() + FAILURE_RETRY_S
            upstream = entry.models
        if upstream is None:
            return None
        out = []
        for model in upstream:
            name = self._client_name(route, model["id"])
            if name is not None and self.router.route_for(name) is route:
                out.append({**model, "id": name})
        return out

    @staticmethod
    def _client_name(route: Route, upstream_id: str) -> str | None:
        if route.prefix is not None:
            if route.strip_prefix:
                return route.prefix + upstream_id
            return upstream_id if upstream_id.startswith(route.prefix) else None
        if route.pattern is not None:
            return upstream_id if fnmatch.fnmatchcase(upstream_id, route.pattern) else None
        return upstream_id

    async def _fetch(self, provider: str, base_url: str, api_key: str, headers: dict[str, str]) -> list[dict]:
        base = httpx.URL(base_url)
        if provider == "anthropic":
            path = base.path.rstrip("/") + "/v1/models"
            auth = {"x-api-key": api_key, "anthropic-version": ANTHROPIC_VERSION}
            params = {"limit": "1000"}
        else:
            path = base.path.rstrip("/") + "/models"
            auth = {"authorization": f"Bearer {api_key}"}
            params = {}
        url = base.copy_with(path=path).copy_merge_params(params)
        async with httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=True) as client:
            response = await client.get(url, headers={**auth, "accept": "application/json", **headers})
            response.raise_for_status()
            body = response.json()
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise ValueError("the response has no 'data' list")
        out = []
        for item in data[:MAX_UPSTREAM_MODELS]:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
                continue
            created = item.get("created")
            if not isinstance(created, int) and isinstance(item.get("created_at"), str):  # Anthropic: RFC 3339
                try:
                    created = int(datetime.fromisoformat(item["created_at"].replace("Z", "+00:00")).timestamp())
                except ValueError:
                    created = 0
            owned_by = item.get("owned_by") if isinstance(item.get("owned_by"), str) else provider
            out.append(model_object(item["id"], created if isinstance(created, int) else 0, owned_by))
        return out
