"""code_interpreter through the SDK: files in and out, images, annotations, state, errors, streaming order."""

from __future__ import annotations

import hashlib

import pytest
from openai import AssistantEventHandler

from fakes import Reply
from runs.sse import collapse, names, post_stream
from support.llm import llm_env
from support.sdk import make_client
from support.streams import stream_run, text_view

from .conftest import run_code

CSV = b"month,amount\njan,10\nfeb,20\nmar,35\n"
PLOT_CODE = (
    "import pandas as pd\n"
    "import matplotlib.pyplot as plt\n"
    "df = pd.read_csv('/mnt/data/sales.csv')\n"
    "print(df.amount.sum())\n"
    "df.plot(x='month', y='amount')\n"
    "df.assign(double=df.amount * 2).to_csv('/mnt/data/doubled.csv', index=False)\n"
    "total = int(df.amount.sum())\n"
)


@pytest.fixture
def analyst(client):  # noqa: ANN001, ANN201
    f = client.files.create(file=("sales.csv", CSV), purpose="assistants")
    return client.beta.assistants.create(
        model="gpt-4o", tools=[{"type": "code_interpreter"}], tool_resources={"code_interpreter": {"file_ids": [f.id]}}
    )


def test_csv_in_plot_and_csv_out(client, analyst, fake_llm):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Sum and plot the sales."}])
    fake_llm.script(*run_code(PLOT_CODE, "The total is 65. Get [the table](sandbox:/mnt/data/doubled.csv)."))
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=analyst.id, poll_interval_ms=50)
    assert run.status == "completed", run.last_error
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id, order="asc").data
    call = steps[0].step_details.tool_calls[0]
    assert call.type == "code_interpreter" and call.code_interpreter.input == PLOT_CODE
    outputs = call.code_interpreter.outputs
    assert outputs[0].type == "logs" and outputs[0].logs.strip() == "65"
    images = [o for o in outputs if o.type == "image"]
    assert len(images) == 1
    png = client.files.content(images[0].image.file_id).read()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    assert client.files.retrieve(images[0].image.file_id).purpose == "assistants_output"
    message = client.beta.threads.messages.list(thread_id=thread.id).data[0]
    assert [p.type for p in message.content] == ["image_file", "text"]
    assert message.content[0].image_file.file_id == images[0].image.file_id
    text = message.content[1].text
    annotation = text.annotations[0]
    assert annotation.type == "file_path" and annotation.text == "sandbox:/mnt/data/doubled.csv"
    assert text.value[annotation.start_index : annotation.end_index] == annotation.text
    csv = client.files.content(annotation.file_path.file_id).read().decode()
    assert csv.splitlines() == ["month,amount,double", "jan,10,20", "feb,20,40", "mar,35,70"]
    tool_result = fake_llm.requests[1]["messages"][-1]
    assert tool_result["role"] == "tool" and "65" in tool_result["content"]


def test_state_persists_across_runs_and_errors_go_back_to_the_model(client, analyst, fake_llm):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "x"}])
    fake_llm.script(*run_code("secret = 41", "ok"))
    client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=analyst.id, poll_interval_ms=50)
    client.beta.threads.messages.create(thread_id=thread.id, role="user", content="again")
    fake_llm.script(*run_code("print(secret + 1)\n1/0", "fixed"))
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=analyst.id, poll_interval_ms=50)
    assert run.status == "completed"
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id, order="asc").data
    logs = steps[0].step_details.tool_calls[0].code_interpreter.outputs[0].logs
    assert logs.startswith("42\n") and "ZeroDivisionError" in logs
    assert "ZeroDivisionError" in fake_llm.requests[-1]["messages"][-1]["content"]


def test_timeout_is_reported_as_output(server_factory, backend, fake_llm, validator):
    handle = server_factory.start(
        env=llm_env(fake_llm, THREADLINE_SANDBOX_TIMEOUT_S="2", THREADLINE_SANDBOX_WARM_POOL="1"), backend=backend
    )
    try:
        client = make_client(handle.base_url, validator=validator)
        a = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter"}])
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "x"}])
        fake_llm.script(*run_code("import time\nkept = 7\ntime.sleep(600)", "it was slow"))
        run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=a.id, poll_interval_ms=50)
        assert run.status == "completed"
        steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id, order="asc").data
        assert "timed out" in steps[0].step_details.tool_calls[0].code_interpreter.outputs[0].logs
        client.beta.threads.messages.create(thread_id=thread.id, role="user", content="still there?")
        fake_llm.script(*run_code("print(kept)", "yes"))
        run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=a.id, poll_interval_ms=50)
        steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id, order="asc").data
        assert steps[0].step_details.tool_calls[0].code_interpreter.outputs[0].logs.strip().endswith("7")
    finally:
        handle.stop()


def test_output_files_are_streamed_capped_and_the_model_is_told(client, analyst, fake_llm):
    code = (
        "import hashlib, os\n"
        "data = os.urandom(3 << 20)\n"
        "open('/mnt/data/big.bin', 'wb').write(data)\n"
        "print(hashlib.sha256(data).hexdigest())\n"
        "for i in range(10):\n"
        "    open(f'/mnt/data/f{i}.txt', 'w').write(str(i))\n"
    )
    before = {f.id for f in client.files.list(purpose="assistants_output")}
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "files"}])
    fake_llm.script(*run_code(code, "Here: [big](sandbox:/mnt/data/big.bin)."))
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=analyst.id, poll_interval_ms=50)
    assert run.status == "completed", run.last_error
    created = {f.id for f in client.files.list(purpose="assistants_output")} - before
    assert len(created) == 3  # the cap (THREADLINE_SANDBOX_MAX_OUTPUT_FILES=3), not 11
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id, order="asc").data
    logs = steps[0].step_details.tool_calls[0].code_interpreter.outputs[0].logs
    digest = logs.splitlines()[0]
    note = "11 files were written; only the first 3 per execution are kept, so 8 were dropped: /mnt/data/f2.txt"
    assert note in logs and "zip" in logs
    tool_result = fake_llm.requests[1]["messages"][-1]["content"]
    assert note in tool_result
    assert "[files written: /mnt/data/big.bin, /mnt/data/f0.txt, /mnt/data/f1.txt]" in tool_result
    text = client.beta.threads.messages.list(thread_id=thread.id).data[0].content[-1].text
    file_id = text.annotations[0].file_path.file_id
    content = client.files.content(file_id).read()
    assert len(content) == 3 << 20 and hashlib.sha256(content).hexdigest() == digest
    assert client.files.retrieve(file_id).bytes == 3 << 20


def test_streaming_order_and_handler_callbacks(client, analyst, fake_llm, server):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "plot"}])
    fake_llm.script(*run_code(PLOT_CODE, "See [csv](sandbox:/mnt/data/doubled.csv)."))
    events = post_stream(server.base_url, f"/threads/{thread.id}/runs", {"assistant_id": analyst.id})
    seq = collapse(names(events))
    assert seq[:7] == [
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.run.step.delta",
        "thread.run.step.completed",
    ]
    deltas = [d["delta"]["step_details"]["tool_calls"][0] for n, d in events if n == "thread.run.step.delta"]
    assert deltas[0]["code_interpreter"] == {"input": "", "outputs": []} and deltas[0]["id"].startswith("call_")
    assert deltas[1]["code_interpreter"] == {"input": PLOT_CODE}
    outs = [
        d["code_interpreter"]["outputs"][0]
        for d in deltas
        if "outputs" in d["code_interpreter"] and d["code_interpreter"]["outputs"]
    ]
    assert [o["index"] for o in outs] == list(range(len(outs))) and outs[0]["type"] == "logs"
    message_deltas = [d["delta"]["content"][0] for n, d in events if n == "thread.message.delta"]
    assert message_deltas[0]["type"] == "image_file" and message_deltas[0]["index"] == 0
    assert message_deltas[1]["type"] == "text" and message_deltas[1]["index"] == 1
    assert seq[-2:] == ["thread.run.completed", "done"]

    calls, images, texts = [], [], []

    class Handler(AssistantEventHandler):
        def on_tool_call_done(self, tool_call) -> None:  # noqa: ANN001
            calls.append(tool_call)

        def on_image_file_done(self, image_file) -> None:  # noqa: ANN001
            images.append(image_file)

        def on_text_done(self, text) -> None:  # noqa: ANN001
            texts.append(text)

    client.beta.threads.messages.create(thread_id=thread.id, role="user", content="again")
    fake_llm.script(*run_code(PLOT_CODE, "See [csv](sandbox:/mnt/data/doubled.csv)."))
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=analyst.id, event_handler=Handler()) as s:
        s.until_done()
    assert calls and calls[-1].type == "code_interpreter"
    assert images and texts and texts[-1].annotations[0].type == "file_path"


def test_no_sandbox_fails_the_run_clearly(server_factory, backend, fake_llm, validator):
    env = {"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": fake_llm.base_url, "THREADLINE_SANDBOX_VENV": "/nonexistent/venv"}
    env["THREADLINE_SANDBOX_WARM_POOL"] = "1"
    handle = server_factory.start(env=env, backend=backend)
    try:
        client = make_client(handle.base_url, validator=validator)
        a = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter"}])
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "x"}])
        fake_llm.script(*run_code("print(1)", "never"))
        run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=a.id, poll_interval_ms=50)
        assert run.status == "failed"
        assert run.last_error.code == "server_error" and "code_interpreter is unavailable" in run.last_error.message
        client.beta.threads.messages.create(thread_id=thread.id, role="user", content="thread not locked")
    finally:
        handle.stop()


def test_a_saved_figure_is_not_handed_out_twice(client, analyst, fake_llm):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "plot"}])
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.savefig('/mnt/data/chart.png')"
    fake_llm.script(*run_code(code, "Here is [the chart](sandbox:/mnt/data/chart.png)."))
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=analyst.id, poll_interval_ms=50)
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id, order="asc").data
    images = [o for o in steps[0].step_details.tool_calls[0].code_interpreter.outputs if o.type == "image"]
    assert len(images) == 1
    text = client.beta.threads.messages.list(thread_id=thread.id).data[0].content[-1].text
    assert text.annotations[0].file_path.file_id == images[0].image.file_id


def test_streamed_file_path_rides_on_its_link_delta(client, analyst, fake_llm):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Sum and plot the sales."}])
    answer = "The total is 65. Get [the table](sandbox:/mnt/data/doubled.csv) or sandbox:/mnt/data/doubled.csv."
    fake_llm.script(run_code(PLOT_CODE, "")[0], Reply(text=answer, chunks=len(answer)))  # every link is split
    stored, handler = stream_run(client, thread.id, analyst.id)
    view = text_view(stored)
    assert [p[0] for p in view] == ["image_file", answer]
    annotations = view[1][1]
    assert [(a[0], a[1]) for a in annotations] == [("file_path", "sandbox:/mnt/data/doubled.csv")] * 2
    assert handler.annotated_deltas == 2 and handler.misplaced == []
