"""A thread's code_interpreter session is the machine's, not a process's: two server processes on one data dir and
database share it through the sandbox service (variables, files the code wrote, input files as the code left
them), and a cancel sent to either process stops a cell running for the other."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from openai import OpenAI

from fakes.fake_openai import FakeOpenAI
from support.llm import llm_env
from support.sdk import make_client
from support.server import ServerFactory, ServerHandle

from .conftest import run_code

CSV = b"n\n1\n2\n"


@pytest.fixture(scope="module")
def servers(server_factory: ServerFactory, backend: str, fake_llm: FakeOpenAI) -> Iterator[list[ServerHandle]]:
    env = llm_env(fake_llm, THREADLINE_SANDBOX_TIMEOUT_S="120", THREADLINE_SANDBOX_WARM_POOL="1")
    first = server_factory.prepare(env, backend)
    second = server_factory.prepare(env, backend)
    second.data_dir, second.database_url = first.data_dir, first.database_url  # one deployment, two processes
    handles = [first.start(), second.start()]
    yield handles
    for handle in handles:
        handle.stop()


@pytest.fixture
def clients(servers: list[ServerHandle], validator) -> list[OpenAI]:  # noqa: ANN001
    return [make_client(s.base_url, validator=validator) for s in servers]


def _logs(client: OpenAI, thread_id: str, run_id: str) -> str:
    steps = client.beta.threads.runs.steps.list(run_id=run_id, thread_id=thread_id, order="asc").data
    return steps[0].step_details.tool_calls[0].code_interpreter.outputs[0].logs


def _run(client: OpenAI, thread_id: str, assistant_id: str):  # noqa: ANN202
    run = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant_id, poll_interval_ms=50)
    assert run.status == "completed", run.last_error
    return run


def _run_here(client: OpenAI, thread_id: str, assistant_id: str):  # noqa: ANN202
    """A run executed by the process `client` talks to: a streamed run is executed by the process holding its stream
    (a background run may be claimed by any process sharing the database)."""
    with client.beta.threads.runs.stream(thread_id=thread_id, assistant_id=assistant_id) as stream:
        stream.until_done()
        run = stream.get_final_run()
    assert run.status == "completed", run.last_error
    return run


def test_state_survives_across_processes(servers: list[ServerHandle], clients: list[OpenAI], fake_llm) -> None:  # noqa: ANN001
    a, b = clients
    assert servers[0].process.pid != servers[1].process.pid
    f = a.files.create(file=("data.csv", CSV), purpose="assistants")
    assistant = a.beta.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter"}])
    thread = a.beta.threads.create(
        messages=[{"role": "user", "content": "go"}], tool_resources={"code_interpreter": {"file_ids": [f.id]}}
    )
    code = (
        "import os\nsecret = 41\npid_a = os.getpid()\n"
        "open('/mnt/data/made.txt', 'w').write('written in run 1')\n"
        "open('/mnt/data/data.csv', 'a').write('3\\n')\nprint('ok')"
    )
    fake_llm.script(*run_code(code, "done"))
    run = _run(a, thread.id, assistant.id)  # executed by process A
    assert _logs(a, thread.id, run.id).strip() == "ok"

    b.beta.threads.messages.create(thread_id=thread.id, role="user", content="again")
    code = (
        "import os\nprint(secret + 1, os.getpid() == pid_a)\n"
        "print(open('/mnt/data/made.txt').read())\nprint(open('/mnt/data/data.csv').read().split())"
    )
    fake_llm.script(*run_code(code, "done"))
    run = _run(b, thread.id, assistant.id)  # executed by process B
    logs = _logs(b, thread.id, run.id)
    # The same interpreter: the variable, the file the code wrote, and the input file as the code changed it (it is
    # not placed again by the other process).
    assert logs.splitlines() == ["42 True", "written in run 1", "['n', '1', '2', '3']"]


def test_cancel_through_one_process_stops_a_cell_run_by_the_other(clients: list[OpenAI], fake_llm) -> None:  # noqa: ANN001
    a, b = clients
    assistant = a.beta.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter"}])
    thread = a.beta.threads.create(messages=[{"role": "user", "content": "go"}])
    fake_llm.script(*run_code("x = 5", "done"))
    _run(a, thread.id, assistant.id)

    b.beta.threads.messages.create(thread_id=thread.id, role="user", content="sleep")
    fake_llm.script(*run_code("import time\ntime.sleep(60)\nslept = True", "never said"))
    run = b.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)  # executed by process B
    deadline = time.monotonic() + 30
    while not b.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id).data:
        assert time.monotonic() < deadline, "the code_interpreter call never started"
        time.sleep(0.05)
    time.sleep(1.0)  # the cell is sleeping in the sandbox service
    started = time.monotonic()
    a.beta.threads.runs.cancel(run_id=run.id, thread_id=thread.id)  # sent to process A
    while (run := a.beta.threads.runs.retrieve(run_id=run.id, thread_id=thread.id)).status != "cancelled":
        assert time.monotonic() - started < 10, f"still {run.status}"
        time.sleep(0.05)

    # The cell was interrupted, not waited for, and the session (run 1's, by process A) kept its variables.
    b.beta.threads.messages.create(thread_id=thread.id, role="user", content="check")
    fake_llm.reset()
    fake_llm.script(*run_code("print(x, 'slept' in globals())", "done"))
    started = time.monotonic()
    run = _run(b, thread.id, assistant.id)
    assert _logs(b, thread.id, run.id).strip() == "5 False"
    assert time.monotonic() - started < 30  # not after the 60 s sleep


def test_another_machine_recreates_the_session_with_the_input_files(
    server_factory: ServerFactory,
    servers: list[ServerHandle],
    clients: list[OpenAI],
    fake_llm,  # noqa: ANN001
    validator,  # noqa: ANN001
) -> None:
    # A server with its own data dir (so its own sandbox service: another machine), on the same database and bytes.
    env = llm_env(fake_llm, THREADLINE_BLOB_URL=str(servers[0].data_dir / "files"))
    other = server_factory.prepare(env, servers[0].backend)
    other.database_url = servers[0].database_url
    other.start()
    try:
        a, c = clients[0], make_client(other.base_url, validator=validator)
        f = a.files.create(file=("data.csv", CSV), purpose="assistants")
        assistant = a.beta.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter"}])
        thread = a.beta.threads.create(
            messages=[{"role": "user", "content": "go"}], tool_resources={"code_interpreter": {"file_ids": [f.id]}}
        )
        code = "secret = 1\nopen('/mnt/data/made.txt', 'w').write('x')\nopen('/mnt/data/data.csv', 'a').write('3\\n')"
        fake_llm.script(*run_code(code, "done"))
        _run_here(a, thread.id, assistant.id)

        c.beta.threads.messages.create(thread_id=thread.id, role="user", content="again")
        code = (
            "import os\nprint('secret' in globals(), sorted(os.listdir('/mnt/data')), open('data.csv').read().split())"
        )
        fake_llm.script(*run_code(code, "done"))
        run = _run_here(c, thread.id, assistant.id)
        notice, logs = _logs(c, thread.id, run.id).split("\n", 1)
        # A new session: variables and the files the code made are gone, the input file is there as uploaded, and
        # the model is told so.
        assert logs.strip() == "False ['data.csv'] ['n', '1', '2']"
        assert "not available here" in notice and "variables and files the earlier code created are gone" in notice
        assert "not available here" in fake_llm.requests[-1]["messages"][-1]["content"]
    finally:
        other.stop()
