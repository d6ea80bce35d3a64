"""Server memory and CPU spent on two hostile code_interpreter cells. Prints one line per scenario.

    .venv/bin/python bench/sandbox_memory.py [--scenario baseline|files|inputs|flood|all]

Each scenario starts a fresh server (SQLite, fake LLM on 127.0.0.1) and runs one thread whose model calls
code_interpreter once:
- ``baseline``: ``print(1)`` (what the first sandbox, its imports and one run cost anyway);
- ``files``: the cell writes 5 files of 95 MB each to /mnt/data (they become output Files);
- ``inputs``: 5 uploaded files of 95 MB each are the assistant's code_interpreter files (placed in /mnt/data);
- ``flood``: the cell writes 200 MB with no newline to every file descriptor it can reach under /proc/self/fd
  and /proc/<parent>/fd (the REPL's reply channel among them, if it is reachable).
Reported: the server's peak RSS (VmHWM) before and after the run, the server CPU seconds the run cost, the
run's status and what the step showed. The server is the one on PYTHONPATH (point it at an old checkout's src to
measure the old code).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO)]

from fakes import Reply, ToolCallSpec  # noqa: E402
from fakes.fake_openai import FakeOpenAI  # noqa: E402
from support.server import ServerFactory  # noqa: E402

FILES = (
    "import os\n"
    "block = os.urandom(1 << 20)\n"
    "for i in range(5):\n"
    "    with open(f'/mnt/data/big{i}.bin', 'wb') as f:\n"
    "        for _ in range(95):\n"
    "            f.write(block)\n"
    "print('written')\n"
)
FLOOD = (
    "import os\n"
    "fds = []\n"
    "for d in ('/proc/self/fd', f'/proc/{os.getppid()}/fd'):\n"
    "    try:\n"
    "        names = os.listdir(d)\n"
    "    except OSError:\n"
    "        continue\n"
    "    for n in names:\n"
    "        if int(n) <= 2:\n"
    "            continue\n"
    "        if d == '/proc/self/fd':\n"
    "            fds.append(int(n))\n"
    "            continue\n"
    "        try:\n"
    "            fds.append(os.open(f'{d}/{n}', os.O_WRONLY))\n"
    "        except OSError:\n"
    "            pass\n"
    "chunk = b'x' * (1 << 20)\n"
    "for _ in range(200):\n"
    "    for fd in fds:\n"
    "        try:\n"
    "            os.write(fd, chunk)\n"
    "        except OSError:\n"
    "            pass\n"
    "print('flooded', len(fds))\n"
)


def proc_status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0]) * 1024
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


INPUTS = "import os\nprint(sorted(os.path.getsize(f'/mnt/data/in{i}.bin') for i in range(5)))\n"


def scenario(factory: ServerFactory, fake: FakeOpenAI, name: str, code: str, inputs: int = 0) -> str:
    env = {
        "OPENAI_API_KEY": "k",
        "OPENAI_BASE_URL": fake.base_url,
        "THREADLINE_SANDBOX_TIMEOUT_S": "120",
        "THREADLINE_SANDBOX_WARM_POOL": "0",
    }
    server = factory.start(env=env, backend="sqlite")
    try:
        pid = server.process.pid
        h = {"OpenAI-Beta": "assistants=v2"}
        with httpx.Client(base_url=server.base_url, headers=h, timeout=300) as http:
            ids = []
            for i in range(inputs):
                files = {"file": (f"in{i}.bin", os.urandom(95 << 20))}
                ids.append(http.post("/files", data={"purpose": "assistants"}, files=files).json()["id"])
            a = http.post(
                "/assistants",
                json={
                    "model": "gpt-4o",
                    "tools": [{"type": "code_interpreter"}],
                    "tool_resources": {"code_interpreter": {"file_ids": ids}},
                },
            ).json()
            t = http.post("/threads", json={"messages": [{"role": "user", "content": "go"}]}).json()
            fake.reset()
            fake.script(
                Reply(tool_calls=[ToolCallSpec("code_interpreter", json.dumps({"code": code}))]),
                Reply(text="done"),
            )
            before, cpu0 = proc_status(pid), cpu_seconds(pid)
            run = http.post(f"/threads/{t['id']}/runs", json={"assistant_id": a["id"]}).json()
            while run["status"] in ("queued", "in_progress", "cancelling"):
                time.sleep(0.2)
                run = http.get(f"/threads/{t['id']}/runs/{run['id']}").json()
            after, cpu1 = proc_status(pid), cpu_seconds(pid)
            steps = http.get(f"/threads/{t['id']}/runs/{run['id']}/steps", params={"order": "asc"}).json()["data"]
        shown = ""
        if steps and steps[0]["step_details"]["type"] == "tool_calls":
            outs = steps[0]["step_details"]["tool_calls"][0]["code_interpreter"]["outputs"]
            shown = " | ".join(o.get("logs", o["type"]).strip().replace("\n", " / ")[:160] for o in outs)
        mib = 1 << 20
        return (
            f"{name}: peak RSS {before['VmHWM'] / mib:.0f} -> {after['VmHWM'] / mib:.0f} MiB "
            f"(+{(after['VmHWM'] - before['VmHWM']) / mib:.0f}), RSS after {after['VmRSS'] / mib:.0f} MiB, "
            f"server CPU {cpu1 - cpu0:.1f} s, run {run['status']}; shown: {shown}"
        )
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenario", choices=("baseline", "files", "inputs", "flood", "all"), default="all")
    args = parser.parse_args()
    fake = FakeOpenAI()
    fake.start()
    with tempfile.TemporaryDirectory() as tmp:
        factory = ServerFactory(Path(tmp))
        try:
            if args.scenario in ("baseline", "all"):
                print(scenario(factory, fake, "baseline print(1)", "print(1)"), flush=True)
            if args.scenario in ("files", "all"):
                print(scenario(factory, fake, "5 x 95 MB output files", FILES), flush=True)
            if args.scenario in ("inputs", "all"):
                print(scenario(factory, fake, "5 x 95 MB input files", INPUTS, inputs=5), flush=True)
            if args.scenario in ("flood", "all"):
                print(scenario(factory, fake, "reply-pipe flood", FLOOD), flush=True)
        finally:
            factory.close()
            fake.stop()


if __name__ == "__main__":
    main()
