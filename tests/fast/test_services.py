"""The service layer called directly (as the run engine calls it), and the layering rule that nothing below the
routers imports from api/."""

from __future__ import annotations

import asyncio
import io

import pytest

from threadline.services import files, messages, threads
from threadline.services.errors import Invalid, NotFound, ThreadLocked
from threadline.services.messages import Attachment, NewMessage
from threadline.services.threads import NewThread

from .helpers import wait_for, wait_status
from .scripted import Turn

pytestmark = pytest.mark.anyio


async def test_thread_with_attachments_through_the_services(runtime):
    def scenario() -> None:
        f = files.create(runtime, io.BytesIO(b"hello"), filename="notes.txt", purpose="assistants")
        both = Attachment(f["id"], ["code_interpreter", "file_search"])
        thread = threads.create(runtime, NewThread(messages=[NewMessage("user", "hi", attachments=[both])]))
        resources = thread["tool_resources"]
        assert resources["code_interpreter"] == {"file_ids": [f["id"]]}
        assert len(resources["file_search"]["vector_store_ids"]) == 1  # the thread's own store, created on demand

        added = messages.create(runtime, thread["id"], NewMessage("user", [{"type": "text", "text": "more"}]))
        assert added["content"] == [{"type": "text", "text": {"value": "more", "annotations": []}}]
        page = messages.list_messages(runtime.store, thread["id"], messages.ListParams(order="asc"))
        assert page.ids[-1] == added["id"] and len(page.ids) == 2

        with pytest.raises(Invalid) as bad:
            messages.create(runtime, thread["id"], NewMessage("user", "x", attachments=[Attachment("nope")]))
        assert (bad.value.param, bad.value.message) == (
            "attachments[0].file_id",
            "Invalid 'attachments[0].file_id': 'nope'. Expected an ID that begins with 'file'.",
        )
        missing = "thread_" + "x" * 24
        with pytest.raises(NotFound) as gone:
            messages.create(runtime, missing, NewMessage("user", "x"))
        assert gone.value.message == f"No thread found with id '{missing}'."

    await asyncio.to_thread(scenario)


async def test_adding_to_a_thread_with_an_active_run_is_refused(client, runtime, llm):
    llm.script(Turn(text="word " * 20, hold=2))
    assistant = await client.beta.assistants.create(model="gpt-4o")
    thread = await client.beta.threads.create()
    run = await client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    await wait_for(llm.holding)
    with pytest.raises(ThreadLocked) as locked:
        await asyncio.to_thread(messages.create, runtime, thread.id, NewMessage("user", "x"))
    assert locked.value.message == f"Can't add messages to {thread.id} while a run {run.id} is active."
    llm.release()
    assert (await wait_status(client, thread.id, run.id, {"completed"})).status == "completed"
