"""What an oversized request costs the server: RSS growth for a big JSON body, temp disk for a big upload.

Two measurements against a real server (SQLite, its own data and temp directories):

- a 100 MB JSON body POSTed to /v1/threads, once with Content-Length and once chunked (no Content-Length):
  the server's peak RSS (VmHWM) before and after, and the status it answered;
- a 600 MB multipart upload to /v1/files, chunked: the peak disk use of the server's temp directory plus its
  blob directory (sampled every 20 ms), the bytes the server accepted before it answered, and the status.

    .venv/bin/python bench/bench_body_limits.py                # 100 MB JSON, 600 MB upload
    .venv/bin/python bench/bench_body_limits.py --json-mb 20 --upload-mb 50
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from common import HOST, PYTHON, Service, free_port, log, machine, machine_line, md_table, save_json

MB = 1024 * 1024
CHUNK = MB


def vm_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def disk_bytes(pid: int, roots: list[Path]) -> int:
    """Disk blocks of the files under `roots`, plus those the process holds open there (unlinked temp files and
    O_TMPFILE spools have no directory entry)."""
    seen: dict[tuple[int, int], int] = {}
    for root in roots:
        for dirpath, _, files in os.walk(root):
            for name in files:
                with contextlib.suppress(OSError):
                    st = os.lstat(os.path.join(dirpath, name))
                    seen[(st.st_dev, st.st_ino)] = st.st_blocks * 512
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if any(target.startswith(str(r)) for r in roots):
                    st = os.stat(f"/proc/{pid}/fd/{fd}")
                    seen[(st.st_dev, st.st_ino)] = st.st_blocks * 512
    return sum(seen.values())


class DiskPeak:
    """Samples the disk use of a server's temp and blob directories in a thread; .peak is the largest seen."""

    def __init__(self, pid: int, roots: list[Path]) -> None:
        self.pid = pid
        self.roots = roots
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, disk_bytes(self.pid, self.roots))
            time.sleep(0.02)

    def __enter__(self) -> DiskPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, disk_bytes(self.pid, self.roots))


def send(port: int, head: bytes, chunks: Any, chunked: bool) -> tuple[int, int, float]:
    """Send a request, body from `chunks`, until done or the server stops reading; return (status, sent, seconds)."""
    start = time.monotonic()
    sent = 0
    with socket.create_connection((HOST, port), timeout=120) as sock:
        sock.sendall(head)
        try:
            for chunk in chunks:
                frame = (b"%x\r\n" % len(chunk)) + chunk + b"\r\n" if chunked else chunk
                sock.sendall(frame)
                sent += len(chunk)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early and closed; its answer may still be readable
        data = b""
        with contextlib.suppress(OSError):
            while b"\r\n" not in data:
                piece = sock.recv(65536)
                if not piece:
                    break
                data += piece
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return status, sent, time.monotonic() - start


def json_body(total: int) -> tuple[int, Any]:
    """A valid JSON object of `total` bytes: one message whose content is a long string."""
    prefix = b'{"messages":[{"role":"user","content":"'
    suffix = b'"}]}'
    filler = total - len(prefix) - len(suffix)

    def chunks() -> Any:
        yield prefix
        left = filler
        block = b"x" * CHUNK
        while left > 0:
            n = min(CHUNK, left)
            yield block[:n]
            left -= n
        yield suffix

    return total, chunks()


def multipart_body(file_bytes: int, boundary: str) -> Any:
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    block = b"\0" * CHUNK
    left = file_bytes
    while left > 0:
        n = min(CHUNK, left)
        yield block[:n]
        left -= n
    yield f"\r\n--{boundary}--\r\n".encode()


def head(path: str, content_type: str, length: int | None) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {HOST}",
        "OpenAI-Beta: assistants=v2",
        f"Content-Type: {content_type}",
        f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked",
        "Connection: close",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json-mb", type=int, default=100)
    parser.add_argument("--upload-mb", type=int, default=600)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-body-limits-"))
    port = free_port()
    results: dict[str, Any] = {"machine": machine()}
    rows = []

    def server(name: str) -> Service:
        data = work / name
        (data / "tmp").mkdir(parents=True)
        env = {
            "THREADLINE_PORT": str(port),
            "THREADLINE_DATA_DIR": str(data),
            "THREADLINE_SANDBOX_WARM_POOL": "0",
            "TMPDIR": str(data / "tmp"),
        }
        return Service("threadline", [str(PYTHON), "-m", "threadline.cli", "serve"], port, "/health", env)

    try:
        for mode in ("content-length", "chunked"):
            with server(f"json-{mode}") as srv:  # a fresh server each time: VmHWM is a process-lifetime peak
                total, chunks = json_body(args.json_mb * MB)
                time.sleep(0.5)
                hwm0 = vm_kb(srv.pid, "VmHWM")
                length = total if mode == "content-length" else None
                status, sent, secs = send(
                    port, head("/v1/threads", "application/json", length), chunks, mode == "chunked"
                )
                time.sleep(0.5)
                growth = (vm_kb(srv.pid, "VmHWM") - hwm0) / 1024
                results[f"json_{mode}"] = {
                    "status": status,
                    "body_mb": args.json_mb,
                    "client_sent_mb": sent / MB,
                    "peak_rss_before_mb": hwm0 / 1024,
                    "peak_rss_growth_mb": growth,
                    "seconds": secs,
                }
                rows.append([f"{args.json_mb} MB JSON, {mode}", status, f"{sent / MB:.0f}", f"+{growth:.0f} MB RSS"])
                log(f"json {mode}: {results[f'json_{mode}']}")
        with server("upload") as srv:
            boundary = "benchboundary"
            data = work / "upload"
            with DiskPeak(srv.pid, [data / "tmp", data / "files"]) as disk:
                status, sent, secs = send(
                    port,
                    head("/v1/files", f"multipart/form-data; boundary={boundary}", None),
                    multipart_body(args.upload_mb * MB, boundary),
                    chunked=True,
                )
                time.sleep(0.5)
            results["upload_chunked"] = {
                "status": status,
                "file_mb": args.upload_mb,
                "client_sent_mb": sent / MB,
                "peak_temp_disk_mb": disk.peak / MB,
                "seconds": secs,
            }
            rows.append(
                [f"{args.upload_mb} MB upload, chunked", status, f"{sent / MB:.0f}", f"{disk.peak / MB:.0f} MB disk"]
            )
            log(f"upload: {results['upload_chunked']}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(machine_line(results["machine"]))
    print(md_table(["request", "status", "MB sent before answer", "server cost (peak)"], rows))
    save_json("body_limits", results)


if __name__ == "__main__":
    main()
