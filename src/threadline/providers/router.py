"""Which provider serves which model name.

Routes come from an optional JSON or TOML file (``THREADLINE_PROVIDERS_FILE``), then from defaults built
from the environment:

* ``claude-*`` → Anthropic, when ``ANTHROPIC_API_KEY`` is set (``ANTHROPIC_BASE_URL`` honoured);
* any other model → the OpenAI-compatible provider, when ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` is set.

File format (JSON shown; TOML uses the same keys, with ``[[routes]]`` tables)::

    {
      "routes": [
        {"model": "gpt-4o", "provider": "openai"},
        {"prefix": "ollama/", "provider": "openai", "base_url": "http://127.0.0.1:11434/v1",
         "strip_prefix": true},
        {"pattern": "mistral-*", "provider": "openai", "base_url": "https://api.mistral.ai/v1",
         "api_key_env": "MISTRAL_API_KEY", "timeout_s": 120, "max_attempts": 5},
        {"prefix": "local-", "provider": "anthropic", "base_url": "http://127.0.0.1:9000",
         "upstream_model": "claude-sonnet-4-5", "default_max_tokens": 8192}
      ],
      "models": {"llama3.1:8b": {"context_window": 32768, "vision": false}},
      "default_context_window": 8192,
      "include_env_defaults": true
    }

A route matches by exact ``model``, by ``prefix``, or by an fnmatch ``pattern``. Exact routes are checked
first, then the others in file order, then the environment defaults. Route options: ``provider``
("openai" | "anthropic"), ``base_url``, ``api_key`` or ``api_key_env``, ``strip_prefix``,
``upstream_model``, ``timeout_s``, ``connect_timeout_s``, ``max_attempts``, ``headers``, ``vision``, and per
provider ``max_tokens_param`` (openai), ``default_max_tokens`` / ``send_strict`` (anthropic).

Settings for every provider (config.Settings): ``THREADLINE_PROVIDER_TIMEOUT_S`` (default 600),
``THREADLINE_PROVIDER_MAX_ATTEMPTS`` (default 3), ``THREADLINE_ANTHROPIC_MAX_TOKENS`` (default 4096). A route's
``api_key_env`` names a variable read at start-up through ``config.env_value``.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import ChatProvider, ProviderError, RetryPolicy
from .models import DEFAULT_CONTEXT_WINDOW, ModelCatalog

if TYPE_CHECKING:
    from ..config import Settings

PROVIDER_TYPES = ("openai", "anthropic")
EnvLookup = Callable[[str], str | None]  # a variable's value by name (None: unset)


class ModelNotRoutable(ProviderError):
    def __init__(self, model: str) -> None:
        super().__init__(
            "invalid_prompt",
            f"No provider configured for model '{model}'. Set OPENAI_API_KEY or OPENAI_BASE_URL "
            "(any OpenAI-compatible server), ANTHROPIC_API_KEY (claude-* models), or add a route to "
            "the THREADLINE_PROVIDERS_FILE.",
            retryable=False,
        )
        self.model = model


class ProviderConfigError(ValueError):
    """The routes file or environment is invalid."""


@dataclass(frozen=True)
class VendorDefault:
    """A vendor's key and base URL (OPENAI_* / ANTHROPIC_*), used by routes that set none, like the SDKs do."""

    api_key: str | None = None
    base_url: str | None = None


@dataclass
class Route:
    provider: str
    model: str | None = None
    prefix: str | None = None
    pattern: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    strip_prefix: bool = False
    upstream_model: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    instance: ChatProvider | None = None  # a provider object given in code (ProviderRouter.single), not built

    def matches(self, model: str) -> bool:
        if self.model is not None:
            return model == self.model
        if self.prefix is not None:
            return model.startswith(self.prefix)
        if self.pattern is not None:
            return fnmatch.fnmatchcase(model, self.pattern)
        return True  # catch-all

    def upstream(self, model: str) -> str:
        if self.upstream_model:
            return self.upstream_model
        if self.strip_prefix and self.prefix and model.startswith(self.prefix):
            return model[len(self.prefix) :]
        return model


_ROUTE_KEYS = {"provider", "model", "prefix", "pattern", "base_url", "api_key", "api_key_env", "strip_prefix"}
_OPTION_KEYS = {
    "upstream_model",
    "timeout_s",
    "connect_timeout_s",
    "max_attempts",
    "headers",
    "vision",
    "max_tokens_param",
    "default_max_tokens",
    "send_strict",
    "name",
}


def _route_from_dict(raw: Mapping[str, Any], lookup: EnvLookup) -> Route:
    unknown = set(raw) - _ROUTE_KEYS - _OPTION_KEYS
    if unknown:
        raise ProviderConfigError(f"Unknown route keys {sorted(unknown)} in {dict(raw)}")
    provider = raw.get("provider", "openai")
    if provider not in PROVIDER_TYPES:
        raise ProviderConfigError(f"Route provider must be one of {PROVIDER_TYPES}, got {provider!r}")
    if sum(k in raw for k in ("model", "prefix", "pattern")) > 1:
        raise ProviderConfigError(f"A route takes only one of model, prefix, pattern: {dict(raw)}")
    api_key = raw.get("api_key")
    if api_key is None and raw.get("api_key_env"):
        api_key = lookup(raw["api_key_env"])
        if not api_key:
            raise ProviderConfigError(f"Environment variable {raw['api_key_env']} (api_key_env) is not set")
    options = {k: raw[k] for k in _OPTION_KEYS if k in raw and k != "upstream_model"}
    return Route(
        provider=provider,
        model=raw.get("model"),
        prefix=raw.get("prefix"),
        pattern=raw.get("pattern"),
        base_url=raw.get("base_url"),
        api_key=api_key,
        strip_prefix=bool(raw.get("strip_prefix", False)),
        upstream_model=raw.get("upstream_model"),
        options=options,
    )


def load_routes_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    text = path.read_text()
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProviderConfigError(f"Cannot parse {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ProviderConfigError(f"{path} must hold an object with a 'routes' list")
    return data


class ProviderRouter:
    """Resolves a client-facing model name to (provider, upstream model name)."""

    def __init__(
        self,
        routes: list[Route],
        *,
        catalog: ModelCatalog | None = None,
        timeout_s: float = 600.0,
        max_attempts: int = 3,
        anthropic_max_tokens: int = 4096,
        vendor_defaults: Mapping[str, VendorDefault] | None = None,
    ) -> None:
        self.routes = [r for r in routes if r.model is not None] + [r for r in routes if r.model is None]
        self.catalog = catalog or ModelCatalog()
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.anthropic_max_tokens = anthropic_max_tokens
        self.vendor_defaults = dict(vendor_defaults or {})  # by provider type
        self._providers: dict[tuple, ChatProvider] = {}

    @classmethod
    def from_config(
        cls, data: Mapping[str, Any], settings: Settings, lookup: EnvLookup | None = None
    ) -> ProviderRouter:
        """The router for a parsed routes file `data`, with `settings`' provider defaults; `lookup` reads the
        variables routes name in `api_key_env` (default: the process environment, config.env_value)."""
        if lookup is None:
            from ..config import env_value

            lookup = env_value
        routes = [_route_from_dict(r, lookup) for r in data.get("routes", [])]
        if data.get("include_env_defaults", True):
            routes += env_default_routes(settings)
        context: dict[str, int] = {}
        vision: dict[str, bool] = {}
        for name, info in (data.get("models") or {}).items():
            if "context_window" in info:
                context[name] = int(info["context_window"])
            if "vision" in info:
                vision[name] = bool(info["vision"])
        catalog = ModelCatalog(context, vision, int(data.get("default_context_window", DEFAULT_CONTEXT_WINDOW)))
        return cls(
            routes,
            catalog=catalog,
            timeout_s=settings.provider_timeout_s,
            max_attempts=settings.provider_max_attempts,
            anthropic_max_tokens=settings.anthropic_max_tokens,
            vendor_defaults=vendor_defaults(settings),
        )

    @classmethod
    def single(cls, provider: ChatProvider, *, catalog: ModelCatalog | None = None) -> ProviderRouter:
        """A router that sends every model to one given provider object (an in-memory provider in tests, or
        threadline embedded in another program). No settings are read."""
        return cls([Route(provider="instance", instance=provider)], catalog=catalog)

    def vendor_default(self, provider: str) -> VendorDefault:
        """The key and base URL a route of `provider` ("openai" | "anthropic") without its own uses."""
        return self.vendor_defaults.get(provider, VendorDefault())

    def route_for(self, model: str) -> Route:
        for route in self.routes:
            if route.matches(model):
                return route
        raise ModelNotRoutable(model)

    def resolve(self, model: str) -> tuple[ChatProvider, str]:
        route = self.route_for(model)
        return self._provider(route), route.upstream(model)

    def can_route(self, model: str) -> bool:
        return any(r.matches(model) for r in self.routes)

    def context_window(self, model: str) -> int:
        window = self.catalog.context_window(model)
        if window == self.catalog.default_context_window and self.can_route(model):
            # try the upstream name too ("ollama/llama3.1" → "llama3.1")
            window = self.catalog.context_window(self.route_for(model).upstream(model))
        return window

    def supports_images(self, model: str) -> bool:
        if model in self.catalog.vision_overrides:
            return self.catalog.vision_overrides[model]
        if not self.can_route(model):
            return self.catalog.supports_images(model)
        provider, upstream = self.resolve(model)
        return provider.supports_images(upstream)

    async def aclose(self) -> None:
        """Close the providers' HTTP clients (call from the loop that used them)."""
        for provider in self._providers.values():
            close = getattr(provider, "aclose", None)
            if close is not None:
                await close()
        self._providers.clear()

    def _provider(self, route: Route) -> ChatProvider:
        if route.instance is not None:
            return route.instance
        opts = route.options
        try:  # SDK clients hold connection pools bound to one event loop
            loop_id = id(asyncio.get_running_loop())
        except RuntimeError:
            loop_id = None
        key = (route.provider, route.base_url, route.api_key, json.dumps(opts, sort_keys=True, default=str), loop_id)
        provider = self._providers.get(key)
        if provider is not None:
            return provider
        # like the SDKs: unset key / base URL come from the vendor's environment variables
        default = self.vendor_default(route.provider)
        common: dict[str, Any] = {
            "api_key": route.api_key or default.api_key or "not-needed",
            "base_url": route.base_url or default.base_url or None,
            "timeout_s": float(opts.get("timeout_s", self.timeout_s)),
            "connect_timeout_s": float(opts.get("connect_timeout_s", 10.0)),
            "retry": RetryPolicy(max_attempts=int(opts.get("max_attempts", self.max_attempts))),
            "catalog": self.catalog,
            "vision": opts.get("vision"),
            "default_headers": opts.get("headers"),
        }
        if "name" in opts:
            common["name"] = opts["name"]
        if route.provider == "anthropic":
            from .anthropic import AnthropicProvider

            provider = AnthropicProvider(
                **common,
                default_max_tokens=int(opts.get("default_max_tokens", self.anthropic_max_tokens)),
                send_strict=bool(opts.get("send_strict", False)),
            )
        else:
            from .openai_compat import OpenAICompatProvider

            provider = OpenAICompatProvider(**common, max_tokens_param=opts.get("max_tokens_param"))
        self._providers[key] = provider
        return provider


def vendor_defaults(settings: Settings) -> dict[str, VendorDefault]:
    """OPENAI_API_KEY / OPENAI_BASE_URL and ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL, by provider type."""
    return {
        "openai": VendorDefault(settings.openai_api_key, settings.openai_base_url),
        "anthropic": VendorDefault(settings.anthropic_api_key, settings.anthropic_base_url),
    }


def env_default_routes(settings: Settings) -> list[Route]:
    """The routes the provider variables imply: `claude-*` to Anthropic, everything else to OpenAI's."""
    routes: list[Route] = []
    if settings.anthropic_api_key:
        routes.append(
            Route(
                provider="anthropic",
                pattern="claude-*",
                base_url=settings.anthropic_base_url,
                api_key=settings.anthropic_api_key,
            )
        )
    if settings.openai_api_key or settings.openai_base_url:
        routes.append(
            Route(
                provider="openai",
                base_url=settings.openai_base_url,
                api_key=settings.openai_api_key or "not-needed",
            )
        )
    return routes


def from_settings(settings: Settings, lookup: EnvLookup | None = None) -> ProviderRouter:
    """The router for this process: the routes file (THREADLINE_PROVIDERS_FILE, if set), then the defaults of
    the provider variables. Raises ProviderConfigError for an invalid file."""
    data = load_routes_file(settings.providers_file) if settings.providers_file else {}
    return ProviderRouter.from_config(data, settings, lookup)
