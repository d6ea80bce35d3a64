"""Settings: one typed object read from the environment at start-up, documented in one generated table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from threadline.app import create_app
from threadline.config import Settings, SettingsError, env_name, settings_table

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src" / "threadline"

# Modules that may touch os.environ, and why. Everything else gets its settings from config.Settings.
ENV_READERS = {
    "config.py": "the settings object itself",
    "sandbox/repl.py": "a separate program run inside the sandbox: its environment is the server's channel to it",
    "tokens.py": "points tiktoken at the vocabularies it unpacks through tiktoken's own TIKTOKEN_CACHE_DIR",
}
ENV_READ = re.compile(r"\bos\.environ\b|\bgetenv\b|\bfrom os import\b[^\n]*\benviron\b|\bos\.environb\b")

# THREADLINE_* names that are not server settings: build scripts and the test suite read them.
NOT_SETTINGS = {
    "THREADLINE_BUILD_VENV",
    "THREADLINE_EMBEDDINGS_QUANT",
    "THREADLINE_EMBEDDINGS_FUSE",
    "THREADLINE_SANDBOX_FORCE",
    "THREADLINE_TEST_BACKENDS",
    "THREADLINE_TEST_PYTHON",
    "THREADLINE_TEST_PG_USER",
    "THREADLINE_OPENAPI_SPEC",
    "THREADLINE_CHROMIUM",
    "THREADLINE_CONSOLE_SHOTS",
}


def test_no_module_but_config_reads_the_environment() -> None:
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel in ENV_READERS:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if ENV_READ.search(line):
                offenders.append(f"{rel}:{number}: {line.strip()}")
    assert not offenders, "read settings through threadline.config.Settings:\n" + "\n".join(offenders)


def test_the_grep_finds_an_environment_read() -> None:
    for line in ('x = os.environ.get("X")', 'os.getenv("X")', "from os import environ, path", "os.environ['X']"):
        assert ENV_READ.search(line), line


def test_deployment_doc_holds_the_generated_table() -> None:
    doc = (REPO / "docs" / "deployment.md").read_text()
    match = re.search(r"<!-- settings-table:start -->\n(.*?)\n<!-- settings-table:end -->", doc, re.S)
    assert match, "docs/deployment.md lost its settings table markers"
    assert match.group(1) == settings_table(), "regenerate the table: python -m threadline.config"


def test_every_setting_is_described_and_every_threadline_name_is_known() -> None:
    names = {env_name(name) for name in Settings.model_fields}
    assert len(names) == len(Settings.model_fields)
    for name, info in Settings.model_fields.items():
        assert info.description, name
    mentioned: dict[str, set[str]] = {}
    files = [*SRC.rglob("*.py"), *(REPO / "tests").rglob("*.py"), *(REPO / "bench").rglob("*.py")]
    files += [REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "scripts").glob("*.sh")]
    files += [REPO / name for name in ("Dockerfile", "compose.yaml", "Makefile")]
    for path in files:
        for var in re.findall(r"\bTHREADLINE_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()):
            mentioned.setdefault(var, set()).add(path.relative_to(REPO).as_posix())
    unknown = {var: sorted(where) for var, where in mentioned.items() if var not in names | NOT_SETTINGS}
    assert not unknown, f"variables that are neither settings nor build/test variables: {unknown}"


def test_values_are_parsed_and_aliases_kept() -> None:
    s = Settings.from_mapping(
        {
            "THREADLINE_API_KEYS": " a, b,,",
            "THREADLINE_RUN_EXPIRES_AFTER": "5",
            "THREADLINE_UPLOAD_EXPIRES_AFTER": "7",
            "THREADLINE_METRICS": "OFF",
            "THREADLINE_TRACING": "",  # empty: unset
            "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
            "THREADLINE_EMBEDDINGS": "OpenAI",
        }
    )
    assert s.api_keys == ["a", "b"] and s.run_expires_after_s == 5 and s.upload_expires_after_s == 7
    assert s.metrics is False and s.tracing is False and s.embeddings == "openai"
    assert s.openai_base_url == "http://127.0.0.1:9/v1"
    assert Settings.from_mapping({}).run_expires_after_s == 600


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("THREADLINE_RUN_WORKERS", "many"),
        ("THREADLINE_RUN_EXPIRES_AFTER", "0"),
        ("THREADLINE_METRICS", "maybe"),
        ("THREADLINE_SEARCH_MODE", "fuzzy"),
        ("THREADLINE_MAX_BODY_BYTES", "8MB"),
        ("THREADLINE_SPEND_ALERT_WEBHOOK_URL", "hooks.example.com/alerts"),
        ("THREADLINE_SPEND_ALERT_WEBHOOK_TIMEOUT_S", "0"),
    ],
)
def test_create_app_refuses_an_invalid_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, value: str
) -> None:
    monkeypatch.setenv("THREADLINE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=f"^invalid setting {variable}='{value}': "):
        create_app()
    assert not (tmp_path / "threadline.db").exists()  # nothing was started


def test_secrets_are_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_mapping({"THREADLINE_API_KEYS": "sk-secret", "THREADLINE_PORT": "x"})
    assert "THREADLINE_PORT='x'" in str(info.value) and "sk-secret" not in str(info.value)
    assert "sk-secret" not in repr(Settings.from_mapping({"THREADLINE_API_KEYS": "sk-secret"}))
