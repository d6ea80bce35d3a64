"""OpenAI SDK clients for the tests, working with openai 3.x (httpx2) and openai 1.55.x (httpx)."""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType
from typing import Any

import openai

from .schemas import ResponseValidator

SDK_VERSION = tuple(int(p) for p in openai.__version__.split(".")[:2])


def http_module() -> ModuleType:
    """The HTTP package this SDK is built on: httpx2 (openai 3.x) or httpx (openai 1.x)."""
    client_cls = next(c for c in openai.DefaultHttpxClient.__mro__ if c.__name__ == "Client")
    return importlib.import_module(client_cls.__module__.split(".")[0])


def silence_beta_warnings() -> None:
    """The SDK marks every Assistants method deprecated; the tests call them on purpose."""
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"openai(\..*)?$")
    warnings.filterwarnings("ignore", message=r".*Assistants API is deprecated.*", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=r"deprecated$", category=DeprecationWarning)


def make_client(
    base_url: str,
    api_key: str = "test",
    validator: ResponseValidator | None = None,
    **kwargs: Any,
) -> openai.OpenAI:
    """An SDK client for `base_url`; with a validator, every JSON response is checked against the spec.

    openai.DefaultHttpxClient is an httpx2.Client in openai 3.x and an httpx.Client in 1.x; both take event_hooks.
    """
    hooks = {"response": [validator]} if validator is not None else {}
    http_client = openai.DefaultHttpxClient(event_hooks=hooks)
    kwargs.setdefault("max_retries", 0)
    return openai.OpenAI(base_url=base_url, api_key=api_key, http_client=http_client, **kwargs)


def vector_stores(client: openai.OpenAI) -> Any:
    """`client.vector_stores` (openai >= 1.66) or `client.beta.vector_stores` (older SDKs)."""
    resource = getattr(client, "vector_stores", None)
    return resource if resource is not None else client.beta.vector_stores


def raw_http_client(
    base_url: str, api_key: str | None = "test", validator: ResponseValidator | None = None, **kwargs: Any
) -> Any:
    """A plain httpx.Client with auth and the assistants=v2 beta header (for requests the SDK cannot make)."""
    import httpx

    if validator is not None:
        kwargs["event_hooks"] = {"response": [validator]}
    headers = {"OpenAI-Beta": "assistants=v2"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    headers.update(kwargs.pop("headers", {}))
    return httpx.Client(base_url=base_url, headers=headers, timeout=kwargs.pop("timeout", 30.0), **kwargs)
