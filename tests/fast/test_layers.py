"""Layering: the layers below the routers never import them, and tools never import the executor.

Parsed from the source (no import side effects): every `import` / `from ... import` of a module, resolved to its
absolute name."""

from __future__ import annotations

import ast
from pathlib import Path

import threadline

SRC = Path(threadline.__file__).parent


def _imports(path: Path) -> set[str]:
    package = ".".join(("threadline", *path.relative_to(SRC).with_suffix("").parts[:-1]))
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _offenders(folders: list[str], forbidden: str, files: list[str] = ()) -> list[str]:  # type: ignore[assignment]
    paths = [p for folder in folders for p in (SRC / folder).rglob("*.py")] + [SRC / f for f in files]
    return [
        f"{p.relative_to(SRC)} imports {m}"
        for p in paths
        for m in sorted(_imports(p))
        if m == forbidden or m.startswith(forbidden + ".")
    ]


def test_nothing_below_the_routers_imports_the_api() -> None:
    below = ["services", "engine", "store", "retrieval", "sandbox", "providers"]
    modules = ["file_search.py", "code_interpreter.py", "vector_stores.py"]
    assert _offenders(below, "threadline.api", modules) == []


def test_tools_do_not_import_the_executor() -> None:
    tools = ["file_search.py", "code_interpreter.py"]
    assert _offenders([], "threadline.engine.executor", tools) == []
