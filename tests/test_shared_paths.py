"""The reference material (spec, SciFact) is found at ../shared next to the checkout, wherever it is cloned."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def _python(code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("THREADLINE_OPENAPI_SPEC", "SCIFACT_DIR")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "tests"), str(REPO / "bench"), str(REPO / "src")])
    env.update(extra)
    return env


def test_spec_path_is_relative_to_the_repository(tmp_path):
    # Run from an unrelated directory: the default must not depend on the cwd or on a fixed absolute path.
    got = _python("from support import schemas; print(schemas.SPEC_PATH)", _env(), tmp_path)
    assert got.returncode == 0, got.stderr
    assert Path(got.stdout.strip()) == SHARED / "openai-openapi" / "openapi.yaml"


def test_missing_spec_fails_with_a_clear_message(tmp_path):
    missing = tmp_path / "nowhere" / "openapi.yaml"
    got = _python(
        "from support import schemas; schemas.validate('OpenAIFile', {})",
        _env(THREADLINE_OPENAPI_SPEC=str(missing)),
        tmp_path,
    )
    assert got.returncode != 0
    assert "SpecMissing" in got.stderr and str(missing) in got.stderr
    assert "THREADLINE_OPENAPI_SPEC" in got.stderr and "shared" in got.stderr


def test_scifact_dir_is_relative_to_the_repository(tmp_path):
    got = _python("import common; print(common.SHARED_DIR)", _env(), tmp_path)
    assert got.returncode == 0, got.stderr
    assert Path(got.stdout.strip()) == SHARED


@pytest.mark.parametrize("script", ["bench_retrieval.py", "bench_scifact_api.py"])
def test_benchmarks_without_scifact_stop_with_a_clear_message(tmp_path, script):
    got = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), "--help"],
        env=_env(SCIFACT_DIR=str(tmp_path)),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert got.returncode == 1
    assert f"SciFact not found in {tmp_path}" in got.stderr
    assert "SCIFACT_DIR" in got.stderr and str(SHARED) in got.stderr
