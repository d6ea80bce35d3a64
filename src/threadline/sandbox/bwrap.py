"""How one sandbox process is launched: bubblewrap argv, seccomp filter, uid drop, rlimits, cgroup v1 limits.

Layers, outermost first:
- a per-session unprivileged uid when the server runs as root (never root inside: bwrap run as root would let
  the code read root-only host files such as /etc/shadow, and RLIMIT_NPROC does not apply to uid 0);
- cgroup v1 ``memory`` and ``pids`` limits for the whole session (processes and tmpfs pages together), when the
  host lets us create cgroups; otherwise a warning is logged and only the per-process rlimits apply;
- rlimits AS, CPU, NPROC, FSIZE, NOFILE, CORE=0;
- bubblewrap: new user/pid/net/ipc/uts/mount namespaces (``--unshare-all``; the network namespace has only
  loopback), ``--disable-userns``, read-only /usr and venv, ``--remount-ro /``, tmpfs /tmp and /dev/shm;
- a seccomp filter: only AF_UNIX sockets, no ptrace, mount, namespaces, bpf, keyrings, io_uring, kernel modules...

/mnt/data is a size-limited tmpfs inside the sandbox (``--size N --tmpfs /mnt/data``), not a host directory.
The supervisor copies input files in and output files out through ``/proc/<sandbox pid>/root/mnt/data`` (see
files.py, which never follows links the sandbox could plant). Chosen over a host directory plus a ``du`` check
after each execution because the kernel enforces the cap *while* the code runs (with a du check one execution
could fill the host disk before anyone looks), the data disappears with the sandbox, and pages written by the
code are charged to the session's memory cgroup.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import resource
import shutil
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("threadline.sandbox")

SANDBOX_DATA_DIR = "/mnt/data"
REPL_PATH_IN_SANDBOX = "/run/threadline/repl.py"
CGROUP_ROOT = Path("/sys/fs/cgroup")
MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 1024  # cgroup memory limit for the whole session
    address_space_mb: int = 0  # RLIMIT_AS per process; 0 means memory_mb + 512
    nproc: int = 64  # RLIMIT_NPROC and pids.max
    nofile: int = 256
    file_mb: int = 100  # RLIMIT_FSIZE: largest single file
    data_mb: int = 512  # size of the /mnt/data tmpfs
    tmp_mb: int = 256  # size of /tmp
    shm_mb: int = 64  # size of /dev/shm
    cpu_cores: float = 1.0  # cgroup CPU quota per session (cores), when the cpu controller is available
    # RLIMIT_CPU hard limit per process. The REPL lowers its soft limit to "used + budget" before each cell;
    # lowering the hard limit per cell would need CAP_SYS_RESOURCE to raise it again, which containers lack.
    cpu_hard_s: int = 4 * 3600

    @property
    def address_space_bytes(self) -> int:
        return (self.address_space_mb or self.memory_mb + 512) * MiB


@dataclass
class CgroupV1:
    """Per-session child cgroups under this process's own v1 memory and pids cgroups."""

    memory_parent: Path
    pids_parent: Path
    cpu_parent: Path | None = None
    prefix: str = field(default_factory=lambda: f"threadline-{os.getpid()}")

    @classmethod
    def probe(cls) -> tuple[CgroupV1 | None, str]:
        """Return a usable controller pair, or None and the reason it cannot be used."""
        own: dict[str, str] = {}
        try:
            for line in Path("/proc/self/cgroup").read_text().splitlines():
                _, controllers, path = line.split(":", 2)
                for c in controllers.split(","):
                    own[c] = path
        except OSError as exc:
            return None, f"cannot read /proc/self/cgroup: {exc}"
        if "memory" not in own or "pids" not in own:
            return None, "no cgroup v1 memory/pids hierarchy (cgroup v2 only or not mounted)"
        mem = CGROUP_ROOT / "memory" / own["memory"].lstrip("/")
        pids = CGROUP_ROOT / "pids" / own["pids"].lstrip("/")
        if not (mem / "memory.limit_in_bytes").exists() or not (pids / "cgroup.procs").exists():
            return None, f"cgroup v1 controllers not mounted at {mem} / {pids}"
        cpu = CGROUP_ROOT / "cpu" / own.get("cpu", "/").lstrip("/")
        cg = cls(mem, pids, cpu if "cpu" in own and (cpu / "cpu.cfs_quota_us").exists() else None)
        cg.cleanup_stale()
        test = f"{cg.prefix}-probe"
        try:
            cg.create(test, 64 * MiB, 8, 0.5)
        except OSError as exc:
            if cg.cpu_parent is None:
                return None, f"cannot create cgroups under {mem} and {pids}: {exc}"
            cg.remove(test)
            cg.cpu_parent = None  # memory + pids are what matter; try without the cpu controller
            try:
                cg.create(test, 64 * MiB, 8, 0.5)
            except OSError as exc2:
                return None, f"cannot create cgroups under {mem} and {pids}: {exc2}"
        finally:
            cg.remove(test)
        return cg, "ok"

    def paths(self, name: str) -> list[Path]:
        out = [self.memory_parent / name, self.pids_parent / name]
        if self.cpu_parent is not None:
            out.append(self.cpu_parent / name)
        return out

    def create(self, name: str, memory_bytes: int, pids_max: int, cpu_cores: float) -> list[str]:
        """Create the cgroups; return the cgroup.procs files a new process must write itself into."""
        dirs = self.paths(name)
        for d in dirs:
            d.mkdir(exist_ok=True)
        (dirs[0] / "memory.limit_in_bytes").write_text(str(memory_bytes))
        (dirs[1] / "pids.max").write_text(str(pids_max))
        if len(dirs) > 2:
            period = int((dirs[2] / "cpu.cfs_period_us").read_text())
            (dirs[2] / "cpu.cfs_quota_us").write_text(str(max(1000, int(period * cpu_cores))))
        return [str(d / "cgroup.procs") for d in dirs]

    def oom_kills(self, name: str) -> int:
        try:
            for line in (self.paths(name)[0] / "memory.oom_control").read_text().splitlines():
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
        except (OSError, ValueError):
            pass
        return 0

    def remove(self, name: str) -> bool:
        ok = True
        for d in self.paths(name):
            try:
                d.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                ok = False
        return ok

    def cleanup_stale(self) -> None:
        """Remove empty cgroups left behind by earlier server processes that died."""
        for parent in (self.memory_parent, self.pids_parent, self.cpu_parent):
            if parent is None:
                continue
            try:
                entries = list(parent.iterdir())
            except OSError:
                continue
            for d in entries:
                parts = d.name.split("-")
                if len(parts) < 3 or parts[0] != "threadline" or not parts[1].isdigit():
                    continue
                if int(parts[1]) != os.getpid() and not Path(f"/proc/{parts[1]}").exists():
                    with contextlib.suppress(OSError):
                        d.rmdir()


# Socket families other than AF_UNIX fail with EAFNOSUPPORT; the syscalls below fail with EPERM.
# fmt: off
_DENIED_SYSCALLS = (
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
    "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount",
    "fspick", "mount_setattr", "unshare", "setns",
    "bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "open_by_handle_at", "name_to_handle_at", "fanotify_init", "quotactl", "acct", "swapon", "swapoff",
    "reboot", "syslog", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "vhangup",
    "lookup_dcookie", "personality",
)
# fmt: on
# clone() with any namespace flag: CLONE_NEWUSER, NEWPID, NEWNET, NEWUTS, NEWIPC, NEWNS, NEWCGROUP.
_CLONE_NS_FLAGS = (0x10000000, 0x20000000, 0x40000000, 0x04000000, 0x08000000, 0x00020000, 0x02000000)


def seccomp_filter_bpf() -> bytes:
    """Build the seccomp filter (BPF program) that bwrap installs before exec'ing the REPL."""
    import pyseccomp as sc

    f = sc.SyscallFilter(sc.ALLOW)
    for name in _DENIED_SYSCALLS:
        try:
            f.add_rule(sc.ERRNO(errno.EPERM), name)
        except Exception:  # noqa: BLE001 - syscall unknown on this architecture
            log.debug("seccomp: syscall %s not known here", name)
    f.add_rule(sc.ERRNO(errno.EAFNOSUPPORT), "socket", sc.Arg(0, sc.NE, 1))  # 1 = AF_UNIX
    f.add_rule(sc.ERRNO(errno.EAFNOSUPPORT), "socketpair", sc.Arg(0, sc.NE, 1))
    for flag in _CLONE_NS_FLAGS:
        f.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    # clone3 passes its flags in memory, which seccomp cannot inspect: ENOSYS makes libc fall back to clone.
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    fd = os.memfd_create("seccomp-probe", 0)
    try:
        with os.fdopen(os.dup(fd), "wb") as fh:
            f.export_bpf(fh)
        return os.pread(fd, 1 << 20, 0)
    finally:
        os.close(fd)


def data_fd(data: bytes, name: str) -> int:
    """An fd whose content is ``data``, for bwrap's --ro-bind-data / --seccomp (read once, at setup)."""
    fd = os.memfd_create(name, 0)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def find_bwrap() -> str | None:
    return shutil.which("bwrap") or (os.path.exists("/usr/bin/bwrap") and "/usr/bin/bwrap") or None


def path_is_world_traversable(path: Path) -> bool:
    """True when an unprivileged uid can reach ``path`` (every ancestor has o+x)."""
    p = path.resolve()
    for d in [p, *p.parents]:
        try:
            if not os.stat(d).st_mode & 0o001:
                return False
        except OSError:
            return False
    return True


def bwrap_argv(
    *,
    bwrap: str,
    venv: Path,
    limits: Limits,
    fds: dict[str, int],
    env: dict[str, str],
) -> list[str]:
    """The bwrap command line. ``fds``: repl, passwd, group, seccomp, info (all inherited by bwrap)."""
    venv_s = str(venv)
    # fmt: off
    argv = [
        bwrap,
        "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
        "--hostname", "sandbox",
        "--ro-bind", "/usr", "/usr",
        "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
        "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
        "--dir", "/etc",
        "--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache",
        "--ro-bind-try", "/etc/fonts", "/etc/fonts",
        "--ro-bind-try", "/etc/localtime", "/etc/localtime",
        "--ro-bind-try", "/etc/mime.types", "/etc/mime.types",
        "--ro-bind-data", str(fds["passwd"]), "/etc/passwd",
        "--ro-bind-data", str(fds["group"]), "/etc/group",
        "--ro-bind", venv_s, venv_s,  # same path inside, so the prebuilt font cache paths stay valid
        "--ro-bind-data", str(fds["repl"]), REPL_PATH_IN_SANDBOX,
        "--proc", "/proc",
        "--dev", "/dev",
        "--size", str(limits.shm_mb * MiB), "--tmpfs", "/dev/shm",
        "--size", str(limits.tmp_mb * MiB), "--tmpfs", "/tmp",
        "--dir", "/mnt",
        "--perms", "0700", "--size", str(limits.data_mb * MiB), "--tmpfs", SANDBOX_DATA_DIR,
        "--remount-ro", "/",
        "--chdir", SANDBOX_DATA_DIR,
        "--clearenv",
    ]
    # fmt: on
    for k, v in env.items():
        argv += ["--setenv", k, v]
    argv += ["--seccomp", str(fds["seccomp"]), "--info-fd", str(fds["info"])]
    argv += [f"{venv_s}/bin/python", "-I", "-B", REPL_PATH_IN_SANDBOX]
    return argv


def sandbox_env(venv: Path, rfd: int, wfd: int, max_log: int) -> dict[str, str]:
    return {
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "USER": "sandbox",
        "LANG": "C.UTF-8",
        "PATH": f"{venv}/bin:/usr/local/bin:/usr/bin:/bin",
        "MPLCONFIGDIR": "/tmp/matplotlib",
        "MPLBACKEND": "module://threadline_mpl_backend",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "REPL_MPL_CACHE": f"{venv}/share/threadline/mplconfig",
        "REPL_RFD": str(rfd),
        "REPL_WFD": str(wfd),
        "REPL_MAX_LOG": str(max_log),
        "REPL_DATA_DIR": SANDBOX_DATA_DIR,
    }


def make_preexec(*, uid: int | None, limits: Limits, cgroup_procs: list[str]):
    """The function run in the forked child before exec: join cgroups, drop to ``uid``, set rlimits.

    It only makes plain system calls (no imports, no locks), which keeps it safe to run after fork() in a
    threaded server. Limits are only ever lowered, which needs no privilege.
    """
    procs = [p.encode() for p in cgroup_procs]
    set_rlimit = resource.setrlimit
    get_rlimit = resource.getrlimit
    infinity = resource.RLIM_INFINITY
    ulimits = [
        (resource.RLIMIT_AS, limits.address_space_bytes),
        (resource.RLIMIT_CPU, limits.cpu_hard_s),
        (resource.RLIMIT_FSIZE, limits.file_mb * MiB),
        (resource.RLIMIT_NOFILE, limits.nofile),
        (resource.RLIMIT_CORE, 0),
    ]
    if uid is not None:
        # Only with a dedicated uid: otherwise NPROC would count the server's own threads.
        ulimits.append((resource.RLIMIT_NPROC, limits.nproc))

    def preexec() -> None:
        pid = str(os.getpid()).encode()
        for path in procs:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)
        if uid is not None:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        for which, value in ulimits:
            hard = get_rlimit(which)[1]
            value = value if hard == infinity else min(value, hard)
            set_rlimit(which, (value, value))

    return preexec
