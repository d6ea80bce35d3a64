"""SandboxManager: one stateful sandboxed Python session per key (the run engine uses the thread id).

- Sessions live until idle for ``idle_timeout_s`` (default one hour), until evicted (least recently used first)
  to keep at most ``max_sessions`` alive, or until they die (limit hit, timeout kill). The next execution for
  the key then starts a fresh interpreter and says so in ``ExecutionResult.session_restarted`` / ``notice``.
- A warm pool (default 1) keeps sandboxes started with numpy, pandas and matplotlib already imported, so the
  first execution of a new session does not pay ~1 s of imports. The modules are imported in a throwaway
  namespace: a pooled session's variables look exactly like a cold one's.
- Executions for one key are serialized; different keys run in parallel on worker threads, so the event loop
  is never blocked by sandbox I/O.
- Root server: each live sandbox runs as its own uid from ``uid_base`` up (see uids.py: host-wide locks, so
  several managers can share a host); a uid is reused only after every process of it is gone. Non-root
  server: sandboxes run as the server's uid (still in bwrap).
- No sandbox, no code: when bwrap or the venv is missing, ``execute`` raises SandboxUnavailable. The only
  exception is the explicit opt-in ``THREADLINE_CODE_INTERPRETER_UNSANDBOXED_UNSAFE=1``, which runs the same REPL
  as a plain subprocess (own uid and rlimits when root, but no namespaces, no seccomp, full network and
  filesystem view). It is logged as an error at startup and on every new session; it exists for development
  machines without bubblewrap and must never be used with untrusted input.

Cancellation: if the task awaiting ``execute`` is cancelled, the running cell gets a KeyboardInterrupt (variables
kept); if it has not stopped within ``cancel_grace_s`` the session is killed and forgotten (the next execution for
the key starts fresh and says so). Either way CancelledError reaches the caller within about ``cancel_grace_s``
plus the kill, and the session is never left with a reply in flight. Files changed by a cancelled cell stay in
/mnt/data but are not handed out.

Output files: at most ``max_output_files`` new or changed files per execution (oldest change first) are handed out,
each streamed in chunks to the ``sink`` given to ``execute`` (default: read into memory); the result lists the
names of the rest in ``files_dropped``.

Input files: ``execute(..., input_files={name: bytes or opener})`` writes each file at ``/mnt/data/<name>`` before
the code runs (an opener's stream is copied in chunks). With ``input_ids={name: identity}`` (the engine passes File
ids) a file whose (name, identity) was already placed in the key's live session is not written again, so code that
changed or deleted it is not undone; the record belongs to the session (a new session gets every file again) and
is made only when the execution returns (a cancelled one may or may not have placed its files: they are placed
again next time). Names must be plain file names (no "/"); the caller
resolves collisions before calling (the engine's rule: a later file whose name is taken becomes
``stem (file-id suffix).ext``). An existing file of the same name in the session is replaced.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .bwrap import CgroupV1, Limits, find_bwrap, path_is_world_traversable, seccomp_filter_bpf
from .process import Session, SessionDead, SpawnConfig
from .result import ExecutionResult, InputData, OutputSink, SandboxUnavailable
from .uids import DEFAULT_LOCK_DIR, UidPool

log = logging.getLogger("threadline.sandbox")

UNSAFE_ENV = "THREADLINE_CODE_INTERPRETER_UNSANDBOXED_UNSAFE"  # Settings.code_interpreter_unsandboxed_unsafe
# Runs in a throwaway namespace of each pooled sandbox: imports and first-use work of a typical pandas plot.
WARM_PRELUDE = (
    "import io, numpy, pandas, matplotlib, matplotlib.pyplot as _plt\n"
    "pandas.DataFrame({'x': [0, 1], 'y': [1, 0]}).plot(x='x', y='y')\n"
    "_plt.savefig(io.BytesIO(), format='png'); _plt.close('all')\n"
)
SETUP_HINT = "run scripts/setup-sandbox.sh"


@dataclass
class _Live:
    session: Session
    last_used: float = field(default_factory=time.monotonic)
    busy: bool = False
    placed: set[tuple[str, str]] = field(default_factory=set)  # (name, identity) of input files in /mnt/data
    executions: int = 0  # cells sent to this session


class SandboxManager:
    def __init__(
        self,
        *,
        root_dir: Path,
        venv: Path | None = None,
        max_sessions: int = 16,
        idle_timeout_s: float = 3600,
        wall_clock_s: float = 60,
        memory_mb: int = 1024,
        warm_pool: int = 1,
        data_mb: int = 512,
        nproc: int = 64,
        uid_base: int = 20000,
        interrupt_grace_s: float = 3.0,
        max_log_bytes: int = 100_000,
        warm_prelude: str = WARM_PRELUDE,
        max_output_files: int = 20,
        cancel_grace_s: float = 1.0,
        unsafe: bool | None = None,
    ) -> None:
        """`venv` (the sandbox's Python) and `unsafe` (run code without a sandbox) default to the environment's
        settings, THREADLINE_SANDBOX_VENV and THREADLINE_CODE_INTERPRETER_UNSANDBOXED_UNSAFE."""
        if venv is None or unsafe is None:
            from ..config import Settings

            settings = Settings.load()
            venv = settings.sandbox_venv if venv is None else venv
            unsafe = settings.code_interpreter_unsandboxed_unsafe if unsafe is None else unsafe
        self.root_dir = Path(root_dir)
        self.venv = Path(venv)
        self.max_sessions = max_sessions
        self.idle_timeout_s = idle_timeout_s
        self.wall_clock_s = wall_clock_s
        self.warm_pool = warm_pool
        self.uid_base = uid_base
        self.warm_prelude = warm_prelude
        self.limits = Limits(
            memory_mb=memory_mb, data_mb=data_mb, nproc=nproc, file_mb=min(data_mb, max(100, data_mb // 2))
        )
        self._interrupt_grace_s = interrupt_grace_s
        self._max_log_bytes = max_log_bytes
        self.max_output_files = max_output_files
        self.cancel_grace_s = cancel_grace_s
        self._unsafe = unsafe
        self._root = os.geteuid() == 0
        self._cfg: SpawnConfig | None = None
        self._status: tuple[bool, str] | None = None
        self._status_at = 0.0
        self._sessions: OrderedDict[str, _Live] = OrderedDict()
        self._key_locks: dict[str, asyncio.Lock] = {}
        self._admit = asyncio.Lock()
        self._probe_lock = asyncio.Lock()
        self._pool: list[Session] = []
        self._pool_starting = 0
        self._restarted: OrderedDict[str, str] = OrderedDict()  # key -> why its last session ended
        self._max_slots = max_sessions * 2 + warm_pool + 4
        self._slots_used = 0
        self._slot_lock = threading.Lock()
        lock_dir = DEFAULT_LOCK_DIR if os.access("/run", os.W_OK) else self.root_dir / "uid-locks"
        self._uids = UidPool(uid_base, lock_dir=lock_dir)
        self._seq = 0
        self._tasks: set[asyncio.Task] = set()
        self._reaper: asyncio.Task | None = None
        self._closed = False
        n_io = max_sessions + warm_pool + 4
        self._io = ThreadPoolExecutor(max_workers=n_io, thread_name_prefix="sandbox-io")
        # bwrap --die-with-parent ties a sandbox to the *thread* that spawned it, so spawning happens on one
        # thread that lives as long as the manager.
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-spawn")

    # ----------------------------------------------------------------- availability
    @property
    def last_status(self) -> tuple[bool, str] | None:
        """(available, reason) from the last probe; None before the first. Never starts a sandbox."""
        return self._status

    def available(self) -> tuple[bool, str]:
        """(ok, reason). The first call starts a probe sandbox (about 50 ms, blocking). Success is cached for
        the manager's lifetime, failure for 30 s (so installing the sandbox later needs no restart)."""
        if self._needs_probe():
            self._set_status(self._probe())
        assert self._status is not None
        return self._status

    def _needs_probe(self) -> bool:
        return self._status is None or (not self._status[0] and time.monotonic() - self._status_at > 30)

    def _set_status(self, status: tuple[bool, str]) -> None:
        self._status, self._status_at = status, time.monotonic()
        if not status[0]:
            log.warning("%s", status[1])

    def _probe(self) -> tuple[bool, str]:
        python = self.venv / "bin" / "python"
        if self._unsafe:
            log.error(
                "%s=1: code_interpreter code runs WITHOUT a sandbox (no namespaces, no seccomp, network "
                "and host filesystem reachable). Never use this with untrusted input.",
                UNSAFE_ENV,
            )
            self._cfg = self._make_config(bwrap=None, seccomp=None)
        else:
            bwrap = find_bwrap()
            if bwrap is None:
                return False, f"code interpreter unavailable: bubblewrap (bwrap) is not installed ({SETUP_HINT})"
            if not python.exists():
                return False, f"code interpreter unavailable: sandbox venv {self.venv} is missing ({SETUP_HINT})"
            if self._root and not path_is_world_traversable(python.parent):
                return False, f"code interpreter unavailable: {self.venv} is not readable by unprivileged users"
            try:
                seccomp = seccomp_filter_bpf()
            except Exception as exc:  # noqa: BLE001 - libseccomp missing or broken
                return False, f"code interpreter unavailable: cannot build the seccomp filter: {exc}"
            self._cfg = self._make_config(bwrap=bwrap, seccomp=seccomp)
        session = None
        uid = self._take_slot()
        try:
            session = Session(self._cfg, uid=uid, name=f"probe{uid or ''}")
            session.start()
            result = session.execute("print(6 * 7)", None, 30)
            if result.logs.strip() != "42":
                return False, f"code interpreter unavailable: sandbox self-test failed: {result.error or result.logs}"
        except SandboxUnavailable as exc:
            return False, str(exc)
        except Exception as exc:  # noqa: BLE001
            log.exception("sandbox self-test failed")
            return False, f"code interpreter unavailable: sandbox self-test failed: {exc}"
        finally:
            if session is not None:
                session.kill()
            self._release_slot(uid)
        return True, "ok (unsandboxed: unsafe opt-in)" if self._unsafe else "ok"

    def _make_config(self, *, bwrap: str | None, seccomp: bytes | None) -> SpawnConfig:
        cgroups = None
        if self._root:
            cgroups, why = CgroupV1.probe()
            if cgroups is None:
                log.warning("sandbox: no cgroup memory/pids limits (%s); only per-process rlimits apply", why)
        else:
            log.warning("sandbox: server is not root, so sandboxes share its uid and have no cgroup limits")
        return SpawnConfig(
            venv=self.venv,
            limits=self.limits,
            bwrap=bwrap,
            seccomp=seccomp,
            cgroups=cgroups,
            max_log_bytes=self._max_log_bytes,
            max_output_files=self.max_output_files,
            max_output_file_bytes=self.limits.data_mb * 1024 * 1024,
            interrupt_grace_s=self._interrupt_grace_s,
        )

    @property
    def cgroups_enabled(self) -> bool:
        return self._cfg is not None and self._cfg.cgroups is not None

    # ----------------------------------------------------------------- slots / spawning
    def _take_slot(self) -> int | None:
        """Reserve room for one more sandbox; return its dedicated uid (root server) or None."""
        with self._slot_lock:
            if self._slots_used >= self._max_slots:
                raise SandboxUnavailable("code interpreter busy: too many sandboxes starting or stopping, try later")
            self._slots_used += 1
        try:
            return self._uids.acquire() if self._root else None
        except BaseException:
            self._release_slot(None)
            raise

    def _release_slot(self, uid: int | None) -> None:
        with self._slot_lock:
            self._slots_used -= 1
        if uid is not None:
            self._uids.release(uid)

    async def _new_session(self, *, warm: bool) -> Session:
        uid = self._take_slot()
        self._seq += 1
        session = Session(self._cfg, uid=uid, name=f"s{self._seq}")
        session.counted = True
        try:
            if self._unsafe:
                log.error("starting an UNSANDBOXED code interpreter session (%s=1)", UNSAFE_ENV)
            await self._blocking(self._spawner, session.spawn)
            await self._blocking(self._io, session.wait_ready)
            if warm:
                await self._blocking(self._io, session.prelude, self.warm_prelude, 120)
        except BaseException:
            await self._dispose(session)
            raise
        return session

    @staticmethod
    async def _blocking(executor: ThreadPoolExecutor, fn, *args):
        """Run ``fn`` on a worker thread. If cancelled, still wait for it: its effects (a spawned sandbox)
        must exist before they can be undone."""
        fut = asyncio.get_running_loop().run_in_executor(executor, fn, *args)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            await asyncio.wait([fut])
            if not fut.cancelled():
                fut.exception()  # retrieved: no "never retrieved" warning
            raise

    async def _dispose(self, session: Session) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._io, session.kill)
        finally:
            if session.counted:  # kill() has swept the uid: only now may another sandbox get it
                session.counted = False
                self._release_slot(session.uid)

    def _spawn_background(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refill_pool(self) -> None:
        while not self._closed and len(self._pool) + self._pool_starting < self.warm_pool:
            self._pool_starting += 1
            try:
                session = await self._new_session(warm=True)
            except Exception as exc:  # noqa: BLE001
                log.warning("sandbox warm pool: could not start a sandbox: %s", exc)
                return
            finally:
                self._pool_starting -= 1
            if self._closed:
                await self._dispose(session)
                return
            self._pool.append(session)

    async def _ensure_status(self) -> tuple[bool, str]:
        async with self._probe_lock:
            if self._needs_probe():
                self._set_status(await asyncio.get_running_loop().run_in_executor(self._io, self._probe))
        assert self._status is not None
        return self._status

    def _ensure_background(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.get_running_loop().create_task(self._reap_idle())
        if self.warm_pool > 0 and len(self._pool) + self._pool_starting < self.warm_pool:
            self._spawn_background(self._refill_pool())

    async def start(self) -> tuple[bool, str]:
        """Optional: probe the sandbox and fill the warm pool now instead of at the first execution."""
        status = await self._ensure_status()
        if status[0]:
            self._ensure_background()
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        return status

    # ----------------------------------------------------------------- sessions
    async def _reap_idle(self) -> None:
        interval = max(0.05, min(60.0, self.idle_timeout_s / 4))
        while not self._closed:
            await asyncio.sleep(interval)
            try:
                await self._reap_once()
            except Exception:  # noqa: BLE001 - keep reaping
                log.exception("sandbox idle reaper")

    async def _reap_once(self) -> None:
        now = time.monotonic()
        for key, live in list(self._sessions.items()):
            if live.busy or self._locked(key) or self._sessions.get(key) is not live:
                continue
            if now - live.last_used > self.idle_timeout_s or not live.session.alive():
                why = "expired after being idle" if live.session.alive() else "ended"
                await self._drop(key, why)
        for session in [s for s in self._pool if not s.alive()]:
            self._pool.remove(session)
            await self._dispose(session)

    def _locked(self, key: str) -> bool:
        lock = self._key_locks.get(key)
        return lock is not None and lock.locked()

    async def _drop(self, key: str, why: str | None) -> None:
        live = self._sessions.pop(key, None)
        if live is None:
            return
        if why:
            self._restarted[key] = why
            while len(self._restarted) > 4096:
                self._restarted.popitem(last=False)
        lock = self._key_locks.get(key)
        if lock is not None and not lock.locked():
            del self._key_locks[key]
        await self._dispose(live.session)

    async def _acquire(self, key: str) -> _Live:
        async with self._admit:
            while len(self._sessions) >= self.max_sessions:
                victim = next((k for k, v in self._sessions.items() if not v.busy and not self._locked(k)), None)
                if victim is None:
                    raise SandboxUnavailable(
                        f"code interpreter busy: all {self.max_sessions} sessions are executing, try again later"
                    )
                log.info("sandbox: evicting least recently used session %s", victim)
                await self._drop(victim, "was closed to make room for other sessions")
            session = None
            while self._pool:
                candidate = self._pool.pop()
                if candidate.alive():
                    session = candidate
                    break
                await self._dispose(candidate)
            if session is None:
                session = await self._new_session(warm=False)
            live = _Live(session)
            self._sessions[key] = live
        if self.warm_pool > 0:
            self._spawn_background(self._refill_pool())
        return live

    async def execute(
        self,
        session_key: str,
        code: str,
        *,
        input_files: dict[str, InputData] | None = None,
        timeout_s: float | None = None,
        sink: OutputSink | None = None,
        input_ids: dict[str, str] | None = None,
    ) -> ExecutionResult:
        """Run ``code`` in the session for ``session_key`` (created on first use).

        ``sink(name, stream)`` receives each output file (see OutputSink); without one, OutputFile.data holds the
        bytes. Cancelling the awaiting task interrupts the cell (see the module docstring).
        """
        if self._closed:
            raise SandboxUnavailable("code interpreter is shutting down")
        loop = asyncio.get_running_loop()
        ok, reason = await self._ensure_status()
        if not ok:
            raise SandboxUnavailable(reason)
        self._ensure_background()
        timeout = self.wall_clock_s if timeout_s is None else timeout_s
        lock = self._key_locks.setdefault(session_key, asyncio.Lock())
        async with lock:
            for attempt in range(2):
                live = await self._live_session(session_key)
                why = self._restarted.pop(session_key, None)
                live.busy = True
                first = live.executions == 0
                cancel = threading.Event()
                files = _unplaced(input_files, input_ids, live.placed)
                try:
                    fut = loop.run_in_executor(self._io, live.session.execute, code, files, timeout, sink, cancel)
                    try:
                        result = await asyncio.shield(fut)
                    except asyncio.CancelledError:
                        await _finish_uncancelled(self._stop_cancelled(session_key, live, fut, cancel))
                        raise
                except SessionDead:
                    # The sandbox was already gone before the code was sent: retry once in a fresh one.
                    await self._drop(session_key, why or "ended")
                    if attempt == 1:
                        raise SandboxUnavailable("code interpreter session could not be started, try again") from None
                    continue
                finally:
                    live.busy = False
                    live.last_used = time.monotonic()
                    live.executions += 1
                break
            result.new_session = first
            if result.inputs_placed and input_ids and files:
                names = {name for name in files if name in input_ids}
                live.placed = {entry for entry in live.placed if entry[0] not in names}  # a name holds one file
                live.placed.update((name, input_ids[name]) for name in names)
            if why:
                result.session_restarted = True
                result.notice = (
                    f"The previous Python session {why}; this code ran in a new session "
                    "(variables and files were reset)."
                )
            if not live.session.alive():
                await self._drop(session_key, "ended (it was terminated after the previous error)")
            return result

    async def _stop_cancelled(self, key: str, live: _Live, fut: asyncio.Future, cancel: threading.Event) -> None:
        """The caller was cancelled mid-execution: interrupt the cell; kill the session if it does not stop in time.

        On return no thread is using the session any more, or the session is dead and dropped, so the next
        execution for the key cannot receive this cell's reply.
        """
        cancel.set()  # the worker thread interrupts the cell (see Session._read_message) or stops copying outputs
        fut.add_done_callback(_retrieve)
        done, _ = await asyncio.wait([fut], timeout=self.cancel_grace_s)
        if not done:
            log.info("sandbox: session %s did not stop when its execution was cancelled; killing it", key)
            await asyncio.get_running_loop().run_in_executor(self._io, live.session.kill)
        if not live.session.alive() and self._sessions.get(key) is live:
            await self._drop(key, "was terminated when an execution in it was cancelled")

    async def _live_session(self, key: str) -> _Live:
        live = self._sessions.get(key)
        if live is not None and not live.session.alive():
            await self._drop(key, "ended")
            live = None
        elif live is not None and time.monotonic() - live.last_used > self.idle_timeout_s:
            await self._drop(key, "expired after being idle")
            live = None
        if live is None:
            live = await self._acquire(key)
        self._sessions.move_to_end(key)
        return live

    async def close_session(self, session_key: str) -> None:
        """Kill the session for the key and forget it (its files in /mnt/data are gone)."""
        lock = self._key_locks.get(session_key)
        if lock is not None:
            async with lock:
                await self._drop(session_key, None)
        else:
            await self._drop(session_key, None)
        self._restarted.pop(session_key, None)
        self._key_locks.pop(session_key, None)

    def has_session(self, session_key: str) -> bool:
        """True if the key's session is alive and not expired, i.e. the next execute() will reuse it (and the
        files placed in its /mnt/data are still there). Any other case starts a fresh, empty session."""
        live = self._sessions.get(session_key)
        return live is not None and live.session.alive() and time.monotonic() - live.last_used <= self.idle_timeout_s

    def session_keys(self) -> list[str]:
        """Keys with a live session, least recently used first."""
        return list(self._sessions)

    def stats(self) -> dict[str, int]:
        """Live sessions, warm sandboxes, whether cgroups limits apply (0/1), and the sessions' memory (bytes)."""
        return {
            "sessions": len(self._sessions),
            "warm_pool": len(self._pool),
            "cgroups": self.cgroups_enabled,
            "rss_bytes": sum(v.session.rss_bytes() for v in self._sessions.values()),
        }

    async def aclose(self) -> None:
        """Tear everything down: every session, the pool, background tasks and worker threads."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*([self._reaper] if self._reaper else []), *self._tasks, return_exceptions=True)
        sessions = [live.session for live in self._sessions.values()] + self._pool
        self._sessions.clear()
        self._pool.clear()
        await asyncio.gather(*(self._dispose(s) for s in sessions), return_exceptions=True)
        self._io.shutdown(wait=False)
        self._spawner.shutdown(wait=False)


def _unplaced(
    files: dict[str, InputData] | None, ids: dict[str, str] | None, placed: set[tuple[str, str]]
) -> dict[str, InputData] | None:
    """The input files not yet in the session: those without an identity, or whose (name, identity) is new."""
    if not files or not ids:
        return files
    return {name: data for name, data in files.items() if name not in ids or (name, ids[name]) not in placed}


def _retrieve(fut: asyncio.Future) -> None:
    if not fut.cancelled():
        fut.exception()  # retrieved: no "exception was never retrieved" warning


async def _finish_uncancelled(coro) -> None:  # noqa: ANN001
    """Run cleanup to its end even if the awaiting task is cancelled again meanwhile (the caller re-raises)."""
    task = asyncio.ensure_future(coro)
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            continue
    if task.exception() is not None:
        log.error("sandbox: cleanup after a cancelled execution failed", exc_info=task.exception())
