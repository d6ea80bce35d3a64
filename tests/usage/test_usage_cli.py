"""`threadline usage` through the real command on the server's database: spend and tokens by project, assistant
and model for a period, from runs and a response with scripted token counts and the test price file; the amounts
are exact and equal /v1/organization/costs; CSV to stdout and to a file holds the same rows."""

from __future__ import annotations

import csv
import datetime
import io
import os
import subprocess
import time
from pathlib import Path

import pytest

from fakes import Reply
from support.sdk import make_client
from support.server import server_python

from .conftest import KEY_A, KEY_B, PRICES, usd
from .test_usage_costs import get, totals

A, B = PRICES["models"]["model-a"], PRICES["models"]["model-b"]


@pytest.fixture(scope="module")
def traffic(server, fake_llm):  # noqa: ANN001, ANN201
    a = make_client(server.base_url, api_key=KEY_A)
    b = make_client(server.base_url, api_key=KEY_B)
    started = int(time.time()) - 60
    writer = a.beta.assistants.create(model="model-a", instructions="Write.")
    checker = b.beta.assistants.create(model="model-b", instructions="Check.")
    for client, assistant, tokens in ((a, writer, (100, 10)), (a, writer, (200, 20)), (b, checker, (300, 30))):
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "Go"}])
        fake_llm.script(Reply(text="Done", prompt_tokens=tokens[0], completion_tokens=tokens[1]))
        run = client.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20
        )
        assert run.status == "completed"
    fake_llm.script(Reply(text="Direct", prompt_tokens=400, completion_tokens=40))
    assert b.responses.create(model="model-a", input="Hi").status == "completed"
    a.close()
    b.close()
    return {"start": started, "writer": writer.id, "checker": checker.id}


def threadline(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    script = Path(server_python()).parent / "threadline"
    cmd = [str(script)] if script.exists() else [server_python(), "-m", "threadline.cli"]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLINE_")}
    full_env.update(env or {})
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=full_env, timeout=120)


def run_usage(server, price_file: Path, *args: str) -> str:  # noqa: ANN001
    proc = threadline(
        "usage",
        "--data-dir",
        str(server.data_dir),
        "--database-url",
        server.database_url,
        *args,
        env={"THREADLINE_PRICES_FILE": str(price_file)},
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def since(ts: int) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def test_by_assistant_and_model_csv(server, price_file, traffic, tmp_path) -> None:  # noqa: ANN001
    table = run_usage(server, price_file, "--by", "assistant", "--by", "model", "--since", since(traffic["start"]))
    assert table.startswith("Usage from ") and "TOTAL" in table  # a table by default
    assert table.splitlines()[2].split()[:3] == ["assistant", "model", "requests"]
    text = run_usage(
        server, price_file, "--by", "assistant", "--by", "model", "--since", since(traffic["start"]), "--format", "csv"
    )
    rows = {(r["assistant_id"], r["model"]): r for r in csv.DictReader(io.StringIO(text))}
    assert set(rows) == {(traffic["writer"], "model-a"), (traffic["checker"], "model-b"), ("", "model-a")}
    writer = rows[(traffic["writer"], "model-a")]
    assert (writer["model_requests"], writer["input_tokens"], writer["output_tokens"]) == ("2", "300", "30")
    assert float(writer["total_usd"]) == pytest.approx(usd(A, 300, 30), abs=1e-12)
    checker = rows[(traffic["checker"], "model-b")]
    assert float(checker["total_usd"]) == pytest.approx(usd(B, 300, 30), abs=1e-12)
    response = rows[("", "model-a")]  # the response has no assistant
    assert response["input_tokens"] == "400" and float(response["tokens_usd"]) == pytest.approx(usd(A, 400, 40))
    # most expensive first: $0.00102, $0.00048, $0.00036
    assert list(rows) == [(traffic["checker"], "model-b"), ("", "model-a"), (traffic["writer"], "model-a")]
    # --csv FILE writes the same rows
    path = tmp_path / "usage.csv"
    table = run_usage(
        server, price_file, "--by", "assistant", "--by", "model", "--since", since(traffic["start"]), "--csv", str(path)
    )
    assert path.read_text() == text and "3 rows written to" in table


def test_by_project_matches_costs(admin, server, price_file, traffic) -> None:  # noqa: ANN001
    expected = usd(A, 300, 30) + usd(B, 300, 30) + usd(A, 400, 40)
    text = run_usage(server, price_file, "--since", since(traffic["start"]), "--format", "csv")
    [row] = list(csv.DictReader(io.StringIO(text)))
    assert row["project_id"] == "proj_default" and row["model_requests"] == "4"
    assert row["input_tokens"] == "1000" and row["output_tokens"] == "100"
    assert float(row["total_usd"]) == pytest.approx(expected, abs=1e-12)
    costs = totals(get(admin, "/organization/costs", start_time=traffic["start"]))[()]["amount"]
    assert float(row["total_usd"]) == pytest.approx(costs, abs=1e-12)
    table = run_usage(server, price_file, "--since", since(traffic["start"]), "--by", "project")
    total_line = next(line for line in table.splitlines() if line.startswith("TOTAL"))
    assert total_line.split()[-1] == f"{expected:.6f}" and "1,000" in total_line


def test_period_and_errors(server, price_file, traffic) -> None:  # noqa: ANN001
    day = datetime.datetime.fromtimestamp(traffic["start"], datetime.UTC).date()
    yesterday = (day - datetime.timedelta(days=1)).isoformat()
    text = run_usage(server, price_file, "--since", "2020-01-01", "--until", yesterday, "--format", "csv")
    assert text.splitlines()[1:] == []  # nothing before the traffic's day
    text = run_usage(server, price_file, "--since", day.isoformat(), "--until", day.isoformat(), "--format", "csv")
    if datetime.datetime.now(datetime.UTC).date() == day:  # (the test did not cross midnight)
        assert len(text.splitlines()) == 2
    text = run_usage(server, price_file, "--days", "2", "--by", "model", "--format", "csv")
    assert {r["model"] for r in csv.DictReader(io.StringIO(text))} == {"model-a", "model-b"}
    for bad in (
        ["--days", "0"],
        ["--since", "yesterday"],
        ["--days", "2", "--since", "2020-01-01"],
        ["--until", "2020-01-01"],
    ):
        proc = threadline("usage", "--data-dir", str(server.data_dir), "--database-url", server.database_url, *bad)
        assert proc.returncode == 2 and proc.stderr.startswith("error: "), (bad, proc.stderr)
