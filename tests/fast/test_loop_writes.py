"""With SQLite, a run's writes (create, claim, end) and POST messages run on the event loop when no other thread
writes (Store.run_write); a write that must read a blob (an image for the model) gives way to a thread."""

from __future__ import annotations

import pytest

from .scripted import Turn

pytestmark = pytest.mark.anyio

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


async def test_plain_run_and_message_write_on_the_loop(client, runtime, llm):  # noqa: ANN001
    assistant = await client.beta.assistants.create(model="gpt-4o")
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    store = runtime.store
    loop0, off0 = store.loop_writes, store.offloaded_writes
    llm.script(Turn(text="Hello"))
    run = await client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=10
    )
    assert run.status == "completed"
    # create, claim, reply + completion: three writes, none in a thread
    assert (store.loop_writes - loop0, store.offloaded_writes - off0) == (3, 0)

    llm.script(Turn(text="Streamed"))
    async with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        await stream.until_done()
    assert (store.loop_writes - loop0, store.offloaded_writes - off0) == (6, 0)

    await client.beta.threads.messages.create(thread.id, role="user", content="more")
    assert (store.loop_writes - loop0, store.offloaded_writes - off0) == (7, 0)
    texts = [m.content[0].text.value for m in (await client.beta.threads.messages.list(thread.id)).data]
    assert texts == ["more", "Streamed", "Hello", "hi"]


async def test_run_reading_an_image_claims_in_a_thread(client, runtime, llm):  # noqa: ANN001
    image = await client.files.create(file=("dot.png", PNG), purpose="vision")
    assistant = await client.beta.assistants.create(model="gpt-4o")
    content = [{"type": "text", "text": "what?"}, {"type": "image_file", "image_file": {"file_id": image.id}}]
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": content}])
    store = runtime.store
    off0 = store.offloaded_writes
    llm.script(Turn(text="A dot."))
    run = await client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=10
    )
    assert run.status == "completed"
    assert store.offloaded_writes - off0 == 1  # the claim, which reads the image for the first prompt
    parts = llm.requests[-1].messages[-1].content
    assert [p for p in parts if p["type"] == "image"] == [{"type": "image", "data": PNG, "mime_type": "image/png"}]
