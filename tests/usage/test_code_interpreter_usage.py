"""Code-interpreter sessions: a thread's sandbox session counts once per hour of use, however many runs and calls
use it (OpenAI's billing unit); priced per session in the costs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from fakes import Reply, ToolCallSpec
from fakes.fake_openai import FakeOpenAI
from support.llm import llm_server
from support.sdk import make_client
from support.server import ServerFactory, ServerHandle

from .conftest import ADMIN_KEY, KEY_A, PRICES
from .test_usage_costs import get, totals


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory, backend: str, fake_llm: FakeOpenAI, price_file) -> Iterator[ServerHandle]:  # noqa: ANN001
    yield from llm_server(
        server_factory,
        backend,
        fake_llm,
        THREADLINE_ADMIN_KEYS=ADMIN_KEY,
        THREADLINE_API_KEYS=KEY_A,
        THREADLINE_PRICES_FILE=str(price_file),
        THREADLINE_SANDBOX_TIMEOUT_S="120",
        THREADLINE_SANDBOX_WARM_POOL="1",
    )


def code(source: str) -> list[Reply]:
    return [
        Reply(tool_calls=[ToolCallSpec("code_interpreter", json.dumps({"code": source}))]),
        Reply(text="Done.", chunks=1),
    ]


def test_sessions_per_thread(admin, server, fake_llm) -> None:  # noqa: ANN001
    client = make_client(server.base_url, api_key=KEY_A)
    start = int(time.time()) - 60
    analyst = client.beta.assistants.create(model="model-a", tools=[{"type": "code_interpreter"}])
    first = client.beta.threads.create(messages=[{"role": "user", "content": "Compute."}])
    second = client.beta.threads.create(messages=[{"role": "user", "content": "Compute too."}])
    for thread, source in ((first, "x = 21"), (first, "print(x * 2)"), (second, "print(1)")):
        fake_llm.script(*code(source))
        run = client.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=analyst.id, poll_interval_ms=50
        )
        assert run.status == "completed", run.last_error
    client.close()
    page = get(admin, "/organization/usage/code_interpreter_sessions", start_time=start)
    assert totals(page)[()]["num_sessions"] == 2  # the first thread's two runs share its session
    by_thread = get(admin, "/organization/usage/code_interpreter_sessions", start_time=start, group_by=["thread_id"])
    assert totals(by_thread, "thread_id") == {(first.id,): {"num_sessions": 1}, (second.id,): {"num_sessions": 1}}
    costs = get(admin, "/organization/costs", start_time=start, group_by=["line_item"])
    item = totals(costs, "line_item")[("code interpreter sessions",)]
    assert item["quantity"] == 2
    assert item["amount"] == pytest.approx(2 * PRICES["tools"]["code_interpreter_session"])


def test_response_sessions_per_container(admin, server, fake_llm) -> None:  # noqa: ANN001
    """A response's code_interpreter runs in a container: one session per container however many responses and
    calls use it; each response's usage view counts the session it opened."""
    client = make_client(server.base_url, api_key=KEY_A)
    start = int(time.time()) - 60

    def sessions() -> float:
        page = get(admin, "/organization/usage/code_interpreter_sessions", start_time=start)
        return totals(page).get((), {}).get("num_sessions", 0)

    def cost_quantity() -> float:
        costs = get(admin, "/organization/costs", start_time=start, group_by=["line_item"])
        return totals(costs, "line_item").get(("code interpreter sessions",), {}).get("quantity", 0)

    before, quantity_before = sessions(), cost_quantity()  # the module's other tests' sessions
    container = client.containers.create(name="work")
    tool = {"type": "code_interpreter", "container": container.id}
    responses = []
    for source in ("x = 21", "print(x * 2)"):
        fake_llm.script(*code(source))
        response = client.responses.create(model="model-a", input="Compute.", tools=[tool])
        assert response.status == "completed", response.error
        responses.append(response.id)
    fake_llm.script(*code("print(1)"))
    auto = client.responses.create(
        model="model-a", input="Compute too.", tools=[{"type": "code_interpreter", "container": {"type": "auto"}}]
    )
    assert auto.status == "completed", auto.error
    client.close()
    assert sessions() - before == 2  # the named container's two responses share its session
    first, second = (get(admin, f"/organization/usage/responses/{r}") for r in responses)
    assert first["tools"]["code_interpreter_sessions"] == 1 and second["tools"]["code_interpreter_sessions"] == 0
    assert first["cost"]["tools"]["code_interpreter_sessions"] == pytest.approx(
        PRICES["tools"]["code_interpreter_session"]
    )
    assert get(admin, f"/organization/usage/responses/{auto.id}")["tools"]["code_interpreter_sessions"] == 1
    assert cost_quantity() - quantity_before == 2
