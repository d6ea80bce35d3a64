"""ProviderRouter: environment defaults, routes files, model-name resolution, context windows."""

from __future__ import annotations

import asyncio
import json

import pytest

from fakes import Reply
from threadline.config import Settings
from threadline.providers.anthropic import AnthropicProvider
from threadline.providers.base import ChatMessage, ChatRequest, ProviderError, TextDelta
from threadline.providers.models import context_window, supports_images
from threadline.providers.openai_compat import OpenAICompatProvider
from threadline.providers.router import ModelNotRoutable, ProviderConfigError, ProviderRouter, from_settings


def from_env(env: dict[str, str]) -> ProviderRouter:
    """The router a process with exactly the environment `env` builds."""
    return from_settings(Settings.from_mapping(env), lookup=env.get)


def test_no_configuration_means_not_routable():
    router = from_env({})
    with pytest.raises(ModelNotRoutable) as info:
        router.resolve("gpt-4o")
    err = info.value
    assert isinstance(err, ProviderError)
    assert err.code == "invalid_prompt"
    assert err.message.startswith("No provider configured for model 'gpt-4o'")
    assert not err.retryable


def test_env_defaults():
    router = from_env({"OPENAI_BASE_URL": "http://127.0.0.1:11434/v1", "ANTHROPIC_API_KEY": "sk-ant"})
    provider, upstream = router.resolve("llama3.1:8b")
    assert isinstance(provider, OpenAICompatProvider)
    assert provider.base_url == "http://127.0.0.1:11434/v1" and upstream == "llama3.1:8b"
    provider, upstream = router.resolve("claude-sonnet-4-6")
    assert isinstance(provider, AnthropicProvider) and upstream == "claude-sonnet-4-6"
    assert provider.base_url == "https://api.anthropic.com"
    # one provider instance (and connection pool) per route
    assert router.resolve("gpt-4o")[0] is router.resolve("qwen3:4b")[0]


def test_anthropic_only():
    router = from_env({"ANTHROPIC_API_KEY": "sk-ant", "ANTHROPIC_BASE_URL": "http://127.0.0.1:9100"})
    provider, _ = router.resolve("claude-opus-4-7")
    assert provider.base_url == "http://127.0.0.1:9100"
    with pytest.raises(ModelNotRoutable, match="No provider configured for model 'gpt-4o'"):
        router.resolve("gpt-4o")


def test_routes_file_json(tmp_path):
    config = {
        "routes": [
            {"prefix": "ollama/", "provider": "openai", "base_url": "http://127.0.0.1:11434/v1", "strip_prefix": True},
            {"pattern": "mistral-*", "provider": "openai", "base_url": "https://mistral.test/v1", "api_key": "m"},
            {"model": "ollama/special", "provider": "anthropic", "base_url": "http://127.0.0.1:9200"},
            {"prefix": "big-", "provider": "anthropic", "upstream_model": "claude-opus-4-7", "timeout_s": 30},
        ],
        "models": {"llama3.1:8b": {"context_window": 32768, "vision": True}},
        "default_context_window": 4096,
    }
    path = tmp_path / "providers.json"
    path.write_text(json.dumps(config))
    router = from_env({"THREADLINE_PROVIDERS_FILE": str(path), "ANTHROPIC_API_KEY": "sk-ant"})

    provider, upstream = router.resolve("ollama/llama3.1:8b")
    assert isinstance(provider, OpenAICompatProvider)
    assert (provider.base_url, upstream) == ("http://127.0.0.1:11434/v1", "llama3.1:8b")
    provider, upstream = router.resolve("ollama/special")  # exact routes win over prefixes
    assert isinstance(provider, AnthropicProvider) and upstream == "ollama/special"
    provider, upstream = router.resolve("mistral-large-latest")
    assert provider.base_url == "https://mistral.test/v1" and upstream == "mistral-large-latest"
    provider, upstream = router.resolve("big-brain")
    assert isinstance(provider, AnthropicProvider) and upstream == "claude-opus-4-7"
    assert isinstance(router.resolve("claude-haiku-4-5")[0], AnthropicProvider)  # env default still there
    with pytest.raises(ModelNotRoutable):
        router.resolve("gpt-4o")

    assert router.context_window("ollama/llama3.1:8b") == 32768  # override, by upstream name
    assert router.context_window("unknown-model") == 4096
    assert router.context_window("mistral-large-latest") == 131_072
    assert router.supports_images("ollama/llama3.1:8b") is True


def test_routes_file_toml(tmp_path):
    path = tmp_path / "providers.toml"
    path.write_text(
        """
include_env_defaults = false

[[routes]]
prefix = "lmstudio/"
provider = "openai"
base_url = "http://127.0.0.1:1234/v1"
strip_prefix = true
api_key_env = "LMSTUDIO_KEY"
max_attempts = 5
"""
    )
    router = from_env({"THREADLINE_PROVIDERS_FILE": str(path), "LMSTUDIO_KEY": "k", "OPENAI_API_KEY": "sk"})
    provider, upstream = router.resolve("lmstudio/phi4")
    assert upstream == "phi4" and provider.retry.max_attempts == 5
    with pytest.raises(ModelNotRoutable):  # env defaults switched off
        router.resolve("gpt-4o")


@pytest.mark.parametrize(
    "route",
    [
        {"prefix": "x/", "provider": "gemini"},
        {"prefix": "x/", "model": "y"},
        {"prefix": "x/", "colour": "blue"},
        {"prefix": "x/", "api_key_env": "NOT_SET_ANYWHERE"},
    ],
)
def test_invalid_routes_rejected(tmp_path, route):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"routes": [route]}))
    with pytest.raises(ProviderConfigError):
        from_env({"THREADLINE_PROVIDERS_FILE": str(path)})


def test_context_windows():
    assert context_window("gpt-4o") == 128_000
    assert context_window("gpt-4o-mini-2024-07-18") == 128_000
    assert context_window("gpt-4.1-mini") == 1_047_576
    assert context_window("gpt-3.5-turbo") == 16_385
    assert context_window("gpt-4") == 8_192
    assert context_window("claude-sonnet-4-6") == 200_000
    assert context_window("llama3") == 8_192
    assert context_window("llama3:8b-instruct") == 8_192
    assert context_window("llama3.1:70b") == 131_072
    assert context_window("meta-llama/Llama-3.1-8B-Instruct") == 131_072
    assert context_window("ollama/llama3.2") == 131_072
    assert context_window("totally-unknown") == 8_192
    assert supports_images("gpt-4o") and not supports_images("o3-mini") and supports_images("o1")


def test_routed_stream_end_to_end(fake_openai, tmp_path):
    path = tmp_path / "p.json"
    path.write_text(
        json.dumps({"routes": [{"prefix": "fake/", "base_url": fake_openai.base_url, "strip_prefix": True}]})
    )
    fake_openai.script(Reply(text="routed reply"))

    async def go():
        router = from_env({"THREADLINE_PROVIDERS_FILE": str(path)})
        provider, upstream = router.resolve("fake/tiny-model")
        req = ChatRequest(model=upstream, messages=[ChatMessage("user", "hello")])
        events = [e async for e in provider.stream(req)]
        await router.aclose()
        return events

    events = asyncio.run(go())
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "routed reply"
    assert fake_openai.requests[0]["model"] == "tiny-model"
    assert fake_openai.request_headers[0]["authorization"] == "Bearer not-needed"
