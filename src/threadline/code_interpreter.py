"""code_interpreter: the server-side tool running model-written Python in the thread's sandboxed session.

The model calls the function `code_interpreter` with `{"code": "..."}`. Input files (the assistant's and the
thread's `tool_resources.code_interpreter.file_ids`, which message attachments add to) are placed in `/mnt/data`
under their original names; when two different files share a name, the later one (assistant files first, then
the thread's in the order they were added) is placed as `<stem>-<file id><suffix>`. Files the code creates or
changes in `/mnt/data` become Files with purpose `assistants_output`: images are shown as `image` outputs and
`image_file` parts of the reply; `sandbox:/mnt/data/<name>` links in the reply become `file_path` annotations.
Tracebacks and timeouts go back to the model as the tool's output, so it can fix its code.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson
import sqlalchemy as sa

from .engine.tools import StepDelta, ToolContext, ToolFatal, ToolOutcome
from .providers.base import ToolSpec
from .services import files as services_files
from .store import Store, files, schema

if TYPE_CHECKING:
    from .services.deps import Deps

if TYPE_CHECKING:
    from .sandbox import Sandbox

log = logging.getLogger("threadline.code_interpreter")

MAX_OUTPUT_CHARS = 20_000
MAX_DROPPED_NAMES = 10  # dropped output files named in the tool output; the rest are counted
SANDBOX_LINK = re.compile(r"sandbox:(/mnt/data/[^\s)\]\"'>]+)")
LINK_PREFIX = "sandbox:/mnt/data/"
MAX_LINK_CHARS = 1024  # a longer run of link characters is released as is


def _input_file_ids(conn: sa.Connection, run: dict[str, Any]) -> list[str]:
    ids: list[str] = []
    for table, key in ((schema.assistants, run["assistant_id"]), (schema.threads, run["thread_id"])):
        obj = Store.fetch(conn, table, key) or {}
        ids += ((obj.get("tool_resources") or {}).get("code_interpreter") or {}).get("file_ids") or []
    return list(dict.fromkeys(ids))


def placement_names(files: list[tuple[str, str]]) -> dict[str, str]:
    """file id -> name in /mnt/data, for (file id, filename) pairs in priority order."""
    taken: set[str] = set()
    out: dict[str, str] = {}
    for file_id, filename in files:
        name = PurePosixPath(filename).name or file_id
        if name in taken:
            path = PurePosixPath(name)
            name = f"{path.stem}-{file_id}{path.suffix}"
        taken.add(name)
        out[file_id] = name
    return out


def input_placement(conn: sa.Connection, run: dict[str, Any]) -> dict[str, str]:
    """file id -> name in /mnt/data for the run's input files (assistant's, then thread's code_interpreter files)."""
    ids = _input_file_ids(conn, run)
    by_id = files.filenames(conn, ids)
    return placement_names([(fid, by_id[fid]) for fid in ids if fid in by_id])


class CodeInterpreterTool:
    type = "code_interpreter"
    function_name = "code_interpreter"

    def __init__(self, runtime: Deps, manager: Sandbox) -> None:
        self.rt = runtime
        self.manager = manager

    def spec(self, tool_config: dict[str, Any]) -> ToolSpec:
        return ToolSpec(
            name=self.function_name,
            description=(
                "Run Python 3 code in a stateful, sandboxed session (variables persist between calls; no internet). "
                "The working directory is /mnt/data, which holds the user's files; save files you create there. "
                "numpy, pandas, scipy, matplotlib, openpyxl and pillow are installed. Print what you need to see."
            ),
            parameters={
                "type": "object",
                "properties": {"code": {"type": "string", "description": "The Python code to execute."}},
                "required": ["code"],
            },
        )

    def instructions(self, tool_config: dict[str, Any]) -> str:
        return (
            "You can run Python with the code_interpreter tool. Files the user gave you are in /mnt/data. To give "
            "the user a file, save it in /mnt/data and link it as sandbox:/mnt/data/<name>. Plots you create are "
            "shown to the user automatically."
        )

    def first_delta(self, call_id: str) -> dict[str, Any]:
        return {"id": call_id, "type": "code_interpreter", "code_interpreter": {"input": "", "outputs": []}}

    @staticmethod
    def code_of(arguments: str) -> str:
        try:
            args = orjson.loads(arguments or "{}")
        except orjson.JSONDecodeError:
            return arguments  # some models send the code itself instead of JSON
        if isinstance(args, dict):
            code = args.get("code") or args.get("input") or ""
            return code if isinstance(code, str) else ""
        return args if isinstance(args, str) else ""

    def _inputs(self, run: dict[str, Any]) -> tuple[dict[str, Callable[[], BinaryIO]], dict[str, str]]:
        """The run's input files for /mnt/data: {name: opener of the blob} (copied in chunks by the sandbox) and
        {name: file id}, by which the session skips the files it already holds."""
        with self.rt.store.read() as conn:
            ids = _input_file_ids(conn, run)
            stored = files.with_blob_keys(conn, ids)
        by_id = {fid: (obj["filename"], key) for fid, (obj, key) in stored.items()}
        ordered = [(fid, by_id[fid][0]) for fid in ids if fid in by_id]
        names = placement_names(ordered)
        out = {names[fid]: functools.partial(self.rt.blobs.open, by_id[fid][1]) for fid, _ in ordered}
        return out, {names[fid]: fid for fid, _ in ordered}

    def _ran_code_before(self, run: dict[str, Any]) -> bool:
        """True if an earlier run of the thread executed code (so it had a session whose state is now gone)."""
        runs, steps = schema.runs, schema.run_steps
        query = (
            sa.select(steps.c.id)
            .join(runs, runs.c.id == steps.c.run_id)
            .where(runs.c.thread_id == run["thread_id"], runs.c.id != run["id"])
            .where(steps.c.data.like('%"code_interpreter"%'))
            .limit(1)
        )
        with self.rt.store.read() as conn:
            return conn.execute(query).first() is not None

    def _save_output(self, name: str, stream: BinaryIO) -> dict[str, Any]:
        """OutputSink: stream one file from /mnt/data into a new File (purpose assistants_output)."""
        return services_files.create(
            self.rt, stream, filename=PurePosixPath(name).name, purpose="assistants_output", check_size=False
        )

    async def execute(self, ctx: ToolContext, call_id: str, arguments: str, delta: StepDelta) -> ToolOutcome:
        from .sandbox import SandboxUnavailable

        code = self.code_of(arguments)
        await delta({"type": "code_interpreter", "code_interpreter": {"input": code}})
        key = ctx.run["thread_id"]
        inputs, input_ids = await asyncio.to_thread(self._inputs, ctx.run)
        try:
            result = await self.manager.execute(
                key, code, input_files=inputs or None, sink=self._save_output, input_ids=input_ids or None
            )
        except SandboxUnavailable as exc:
            raise ToolFatal(f"code_interpreter is unavailable: {exc}") from exc
        if result.new_session and not result.notice and await asyncio.to_thread(self._ran_code_before, ctx.run):
            # Another machine's sandbox service held the thread's session, or this machine's was restarted.
            result.notice = (
                "The Python session of this thread's earlier code is not available here (it ran on another server, "
                "or the sandbox was restarted); this code ran in a new session: variables and files the earlier code "
                "created are gone; the thread's input files were placed in /mnt/data again."
            )
        outputs: list[dict[str, Any]] = []
        parts: list[dict[str, Any]] = []
        links: dict[str, str] = {}
        logs = result.logs or ""
        if result.error:
            logs = f"{logs}{result.error}" if logs.endswith("\n") or not logs else f"{logs}\n{result.error}"
        if result.timed_out:
            logs += "\n[execution timed out and was interrupted]"
        if result.notice:
            logs = f"[{result.notice}]\n{logs}"
        notes = list(result.file_notes)
        if result.files_dropped:
            shown = ", ".join(f"/mnt/data/{n}" for n in result.files_dropped[:MAX_DROPPED_NAMES])
            more = len(result.files_dropped) - MAX_DROPPED_NAMES
            notes.append(
                f"{len(result.files) + len(result.files_dropped)} files were written; only the first "
                f"{self.manager.max_output_files} per execution are kept, so {len(result.files_dropped)} were "
                f"dropped: {shown}{f' and {more} more' if more > 0 else ''}. To hand out more, combine them into "
                "one file (e.g. a zip archive)."
            )
        note_text = "\n".join(f"[{n}]" for n in notes)
        logs = logs[: max(0, MAX_OUTPUT_CHARS - len(note_text) - 1)] if note_text else logs[:MAX_OUTPUT_CHARS]
        if note_text:
            logs += ("\n" if logs and not logs.endswith("\n") else "") + note_text
        if logs:
            outputs.append({"type": "logs", "logs": logs})
        saved = []
        for out in result.files:
            obj = out.ref
            links[f"/mnt/data/{out.name}"] = obj["id"]
            saved.append(f"/mnt/data/{out.name}")
            if out.is_image:
                outputs.append({"type": "image", "image": {"file_id": obj["id"]}})
                parts.append({"type": "image_file", "image_file": {"file_id": obj["id"], "detail": "auto"}})
        for i, output in enumerate(outputs):
            await delta({"type": "code_interpreter", "code_interpreter": {"outputs": [{"index": i, **output}]}})
        model_view = logs or "(no output)"
        if saved:
            model_view += "\n[files written: " + ", ".join(saved) + "]"
        call = {"id": call_id, "type": "code_interpreter", "code_interpreter": {"input": code, "outputs": outputs}}
        return ToolOutcome(output=model_view, call=call, message_parts=parts, references={"files": links})

    def text_processor(self, references: list[dict[str, Any]]) -> SandboxLinks | None:
        files: dict[str, str] = {}
        for ref in references:
            files.update(ref.get("files", {}))
        return SandboxLinks(files) if files else None


class SandboxLinks:
    """Turns `sandbox:/mnt/data/<name>` links to files the code wrote into `file_path` annotations. A link still
    being streamed (or the start of one) is held back until it ends, so each link arrives whole in one piece."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files
        self.buffer = ""

    def _held_from(self, text: str) -> int:
        for m in SANDBOX_LINK.finditer(text):
            if m.end() == len(text):
                return m.start()  # the link may go on in the next piece
        for k in range(min(len(LINK_PREFIX), len(text)), 0, -1):
            if LINK_PREFIX.startswith(text[-k:]):
                return len(text) - k
        return len(text)

    def feed(self, text: str) -> str:
        self.buffer += text
        cut = self._held_from(self.buffer)
        if len(self.buffer) - cut > MAX_LINK_CHARS:
            cut = len(self.buffer)
        out, self.buffer = self.buffer[:cut], self.buffer[cut:]
        return out

    def flush(self, full_text: str) -> str:
        out, self.buffer = self.buffer, ""
        return out

    def annotations(self, text: str) -> list[dict[str, Any]]:
        out = []
        for m in SANDBOX_LINK.finditer(text):
            path = m.group(1).rstrip(".,;:")
            file_id = self.files.get(path)
            if file_id is None:
                continue
            end = m.start() + len("sandbox:") + len(path)
            out.append(
                {
                    "type": "file_path",
                    "text": text[m.start() : end],
                    "start_index": m.start(),
                    "end_index": end,
                    "file_path": {"file_id": file_id},
                }
            )
        return out
