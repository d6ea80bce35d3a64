"""Prices: USD per million tokens per model, and per unit of tool use.

Token prices come from the `genai-prices` package (its bundled snapshot: no network; upgrade the package for
current prices), overridden by the operator's price file (THREADLINE_PRICES_FILE, JSON or TOML):

    {"models": {"<model>": {"input_per_mtok": 1.0, "cached_input_per_mtok": 0.5, "output_per_mtok": 2.0}},
     "tools": {"code_interpreter_session": 0.03, "vector_store_gb_day": 0.10, "file_search_call": 0.0025}}

A model found in neither is priced 0 and reported as unpriced (docs/projects-and-costs.md).
"""

from __future__ import annotations

import functools
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import SettingsError

# What OpenAI charged for the same work: per code-interpreter session, per GB of vector storage per day, per
# file_search call (USD).
DEFAULT_TOOL_PRICES = {"code_interpreter_session": 0.03, "vector_store_gb_day": 0.10, "file_search_call": 0.0025}
_MODEL_FIELDS = ("input_per_mtok", "cached_input_per_mtok", "output_per_mtok")


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens; `source` is "file", "genai-prices" or None (unknown model: every price 0)."""

    input_per_mtok: float
    cached_input_per_mtok: float
    output_per_mtok: float
    source: str | None


class Prices:
    """The operator's price file on top of genai-prices' snapshot."""

    def __init__(self, models: dict[str, ModelPrice] | None = None, tools: dict[str, float] | None = None) -> None:
        self.models = models or {}
        self.tools = {**DEFAULT_TOOL_PRICES, **(tools or {})}

    @classmethod
    def load(cls, path: Path | None) -> Prices:
        """Read the price file at `path` (None: no file). Raises SettingsError naming THREADLINE_PRICES_FILE when
        it cannot be read or has the wrong shape."""
        if path is None:
            return cls()
        where = f"THREADLINE_PRICES_FILE ({path})"
        try:
            raw = path.read_bytes()
            data = tomllib.loads(raw.decode()) if path.suffix.lower() == ".toml" else json.loads(raw)
        except (OSError, ValueError) as exc:
            raise SettingsError(f"{where}: cannot be read: {exc}") from None
        if not isinstance(data, dict) or set(data) - {"models", "tools"}:
            raise SettingsError(f'{where}: expected an object with "models" and/or "tools"')
        models: dict[str, ModelPrice] = {}
        for name, entry in (data.get("models") or {}).items():
            if not isinstance(entry, dict) or set(entry) - set(_MODEL_FIELDS) or not _prices_ok(entry.values()):
                raise SettingsError(f"{where}: model {name!r} needs non-negative numbers among {_MODEL_FIELDS}")
            inp = float(entry.get("input_per_mtok", 0))
            models[name] = ModelPrice(
                inp, float(entry.get("cached_input_per_mtok", inp)), float(entry.get("output_per_mtok", 0)), "file"
            )
        tools = data.get("tools") or {}
        if not isinstance(tools, dict) or set(tools) - set(DEFAULT_TOOL_PRICES) or not _prices_ok(tools.values()):
            raise SettingsError(f"{where}: tools are non-negative numbers among {tuple(DEFAULT_TOOL_PRICES)}")
        return cls(models, {k: float(v) for k, v in tools.items()})

    def model(self, name: str | None) -> ModelPrice:
        """The price of `name`: the file's, else genai-prices', else 0 with source None."""
        if name is None:
            return _UNKNOWN
        return self.models.get(name) or _package_price(name)

    def tool(self, name: str) -> float:
        """USD per unit of `name` (code_interpreter_session, vector_store_gb_day, file_search_call)."""
        return self.tools[name]


def _prices_ok(values: Any) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in values)


_UNKNOWN = ModelPrice(0.0, 0.0, 0.0, None)


@functools.lru_cache(maxsize=1024)
def _package_price(name: str) -> ModelPrice:
    """genai-prices' price of `name` (also tried without a router prefix such as `ollama/`)."""
    from genai_prices import Usage, calc_price  # noqa: PLC0415 - loads its price snapshot on first use

    for ref in dict.fromkeys((name, name.rsplit("/", 1)[-1])):
        try:
            mtok = 1_000_000
            inp = calc_price(Usage(input_tokens=mtok), model_ref=ref)
            cached = calc_price(Usage(input_tokens=mtok, cache_read_tokens=mtok), model_ref=ref)
            out = calc_price(Usage(output_tokens=mtok), model_ref=ref)
        except LookupError:
            continue
        return ModelPrice(float(inp.total_price), float(cached.total_price), float(out.total_price), "genai-prices")
    return _UNKNOWN
