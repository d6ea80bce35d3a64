"""What we know about model families: context window sizes and image input support.

Lookup is by the longest matching name prefix, case-insensitive, after dropping any ``vendor/`` routing
prefixes (``ollama/llama3.1:8b`` → ``llama3.1:8b``). The routes file can override both per model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_CONTEXT_WINDOW = 8192

# prefix → context window in tokens
CONTEXT_WINDOWS: dict[str, int] = {
    "gpt-5": 400_000,
    "gpt-4.1": 1_047_576,
    "gpt-4.5": 128_000,
    "gpt-4o": 128_000,
    "chatgpt-4o": 128_000,
    "gpt-4-turbo": 128_000,
    "gpt-4-1106": 128_000,
    "gpt-4-0125": 128_000,
    "gpt-4-vision": 128_000,
    "gpt-4-32k": 32_768,
    "gpt-4": 8_192,
    "gpt-3.5-turbo-instruct": 4_096,
    "gpt-3.5": 16_385,
    "o1-mini": 128_000,
    "o1": 200_000,
    "o3": 200_000,
    "o4": 200_000,
    "claude-2": 100_000,
    "claude": 200_000,
    "llama2": 4_096,
    "llama-2": 4_096,
    "llama3.1": 131_072,
    "llama3.2": 131_072,
    "llama3.3": 131_072,
    "llama-3.1": 131_072,
    "llama-3.2": 131_072,
    "llama-3.3": 131_072,
    "meta-llama/llama-3.1": 131_072,
    "llama3": 8_192,
    "llama-3": 8_192,
    "llama4": 1_048_576,
    "mistral-large": 131_072,
    "mistral-small": 32_768,
    "mistral-nemo": 131_072,
    "mistral": 32_768,
    "mixtral": 32_768,
    "qwen2.5": 32_768,
    "qwen3": 40_960,
    "qwen2": 32_768,
    "gemma3": 131_072,
    "gemma-3": 131_072,
    "gemma2": 8_192,
    "gemma": 8_192,
    "phi3": 4_096,
    "phi4": 16_384,
    "deepseek-r1": 131_072,
    "deepseek-v3": 131_072,
    "deepseek-chat": 65_536,
    "command-r": 131_072,
    "gemini": 1_048_576,
}

# prefixes of model names that accept image input
VISION_PREFIXES: tuple[str, ...] = (
    "gpt-5",
    "gpt-4.1",
    "gpt-4.5",
    "gpt-4o",
    "chatgpt-4o",
    "gpt-4-turbo",
    "gpt-4-vision",
    "o1-2",  # o1 (not o1-mini / o1-preview)
    "o3",
    "o4",
    "claude-3",
    "claude-opus-4",
    "claude-sonnet-4",
    "claude-haiku-4",
    "claude-opus",
    "claude-sonnet",
    "claude-haiku",
    "llava",
    "bakllava",
    "llama3.2-vision",
    "llama-3.2-11b-vision",
    "llama-3.2-90b-vision",
    "llama4",
    "gemma3",
    "gemma-3",
    "qwen2-vl",
    "qwen2.5-vl",
    "qwen2.5vl",
    "qwen-vl",
    "pixtral",
    "minicpm-v",
    "moondream",
    "gemini",
)
VISION_EXACT: frozenset[str] = frozenset({"o1"})
NON_VISION_PREFIXES: tuple[str, ...] = ("o3-mini", "o1-mini", "o1-preview", "gpt-4o-audio", "gpt-4o-realtime")


def base_name(model: str) -> str:
    """Lower-cased model name without routing prefixes: ``openrouter/openai/gpt-4o`` → ``gpt-4o``."""
    name = model.strip().lower()
    return name.rsplit("/", 1)[-1] if "/" in name else name


def _longest_prefix(name: str, table: dict[str, int]) -> int | None:
    best: str | None = None
    for prefix in table:
        if name.startswith(prefix) and (best is None or len(prefix) > len(best)):
            best = prefix
    return table[best] if best is not None else None


@dataclass
class ModelCatalog:
    """Context windows and vision support, with per-model overrides from configuration."""

    context_overrides: dict[str, int] = field(default_factory=dict)
    vision_overrides: dict[str, bool] = field(default_factory=dict)
    default_context_window: int = DEFAULT_CONTEXT_WINDOW

    def _override(self, table: Mapping[str, Any], model: str) -> Any:
        for key in (model, model.lower(), base_name(model)):
            if key in table:
                return table[key]
        return None

    def context_window(self, model: str) -> int:
        found = self._override(self.context_overrides, model)
        if found is not None:
            return int(found)
        name = model.strip().lower()
        found = _longest_prefix(name, CONTEXT_WINDOWS)
        if found is None:
            found = _longest_prefix(base_name(model), CONTEXT_WINDOWS)
        return found if found is not None else self.default_context_window

    def supports_images(self, model: str) -> bool:
        found = self._override(self.vision_overrides, model)
        if found is not None:
            return bool(found)
        name = base_name(model)
        if name.startswith(NON_VISION_PREFIXES):
            return False
        return name in VISION_EXACT or "vision" in name or name.startswith(VISION_PREFIXES)


DEFAULT_CATALOG = ModelCatalog()


def context_window(model: str) -> int:
    return DEFAULT_CATALOG.context_window(model)


def supports_images(model: str) -> bool:
    return DEFAULT_CATALOG.supports_images(model)
