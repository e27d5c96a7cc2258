"""Isolation layers the worker applies to itself before any student code runs.

Each layer is tried independently and reported as ``"active"`` or ``"unavailable: <why>"``; the
grader records the report in every run so an instructor can see what protected a given run.

* rlimits: CPU seconds, address space, file size, open files, processes, no core dumps.
* network: a new, empty network namespace (as root, or through an unprivileged user namespace).
* view: (as root) a private root file system holding only the read policy's folders, read-only
  (see ``view.py`` and ``policy.py``): the grader, the reference and the blocked libraries are absent.
* disk: (as root) the one writable folder becomes a small private tmpfs in a mount namespace of the
  worker's own, so many files each under the file-size limit cannot fill the grader's disk.
* landlock: the file system becomes read-only and limited to the same read policy (the Python
  runtime minus the blocked libraries and the grader's packages) and the scratch folder; TCP
  bind/connect are denied; signals and abstract sockets are scoped (ABI >= 6).
* seccomp: fork/exec, ptrace, sockets, mounts, namespaces, BPF, process_vm_* and similar calls fail
  with EPERM; threads are still allowed (x86_64 only).
* user: when started as root, the worker drops to an unprivileged uid of its own, used by no other
  process, so every process it might leave behind can be found and killed by uid.

Runs inside the sandbox: standard library only (ctypes), no numpy needed.
"""
from __future__ import annotations

import ctypes
import os
import platform
import resource
import struct

_libc = ctypes.CDLL(None, use_errno=True)
try:
    _libc.syscall.restype = ctypes.c_long
    _libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
except AttributeError:  # not Linux: every layer but rlimits reports itself unavailable
    pass

PR_SET_NO_NEW_PRIVS = 38
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
CLONE_NEWUSER = 0x10000000
CLONE_NEWNS = 0x00020000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x8, 0x4000, 0x40000
CLONE_NEWNET = 0x40000000
CLONE_THREAD = 0x00010000

SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446


def _err(what: str) -> str:
    e = ctypes.get_errno()
    return f"unavailable: {what} failed ({os.strerror(e) if e else 'unknown error'})"


def apply_rlimits(limits: dict[str, int]) -> str:
    names = {
        "cpu": resource.RLIMIT_CPU, "as": resource.RLIMIT_AS, "fsize": resource.RLIMIT_FSIZE,
        "nofile": resource.RLIMIT_NOFILE, "nproc": resource.RLIMIT_NPROC, "core": resource.RLIMIT_CORE,
    }
    done = []
    for key, value in limits.items():
        try:
            hard = value if key != "cpu" else value + 2  # SIGXCPU first, then SIGKILL
            resource.setrlimit(names[key], (value, hard))
            done.append(key)
        except (ValueError, OSError) as exc:
            return f"unavailable: setrlimit({key}) failed ({exc})"
    return "active"


def unshare_network() -> str:
    if _libc.unshare(CLONE_NEWNET) == 0:
        return "active"
    if _libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0:
        return "active (via an unprivileged user namespace)"
    return _err("unshare(CLONE_NEWNET)")


def limit_work_dir(path: str, size: int, uid: int | None) -> str:
    """Mount a tmpfs of ``size`` bytes over ``path`` (the only folder the worker may write).

    RLIMIT_FSIZE caps each file, not their number: without this a submission can write 15 MB files
    until the grader's disk is full (and the reports of every other submission fail to be written).
    The mount lives in a new mount namespace, made private first so that it never propagates to the
    grader's; it disappears with the worker.
    """
    if os.geteuid() != 0:
        return "unavailable: needs root (the worker may write at most the file-size limit per file)"
    _libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    if _libc.unshare(CLONE_NEWNS) != 0:
        return _err("unshare(CLONE_NEWNS)")
    if _libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        return _err("mount(/, MS_PRIVATE)")
    opts = f"size={int(size)},nr_inodes=4096,mode=0700" + (f",uid={uid},gid={uid}" if uid is not None else "")
    if _libc.mount(b"tmpfs", path.encode(), b"tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts.encode()) != 0:
        return _err("mount(tmpfs)")
    return f"active (the writable folder is a private tmpfs of {int(size) >> 20} MB)"


# --- landlock -------------------------------------------------------------------------------------
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_ALL_V1 = (1 << 13) - 1
FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1


def landlock_abi() -> int:
    abi = _libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return int(abi) if abi > 0 else 0


def apply_landlock(read_paths: list[str], write_paths: list[str], list_paths: list[str] = ()) -> str:
    """Only ``read_paths`` (whole), ``write_paths`` and the listing of ``list_paths`` stay accessible."""
    abi = landlock_abi()
    if abi < 1:
        return _err("landlock_create_ruleset")
    fs = FS_ALL_V1
    if abi >= 2:
        fs |= FS_REFER
    if abi >= 3:
        fs |= FS_TRUNCATE
    if abi >= 5:
        fs |= FS_IOCTL_DEV
    net = (NET_BIND_TCP | NET_CONNECT_TCP) if abi >= 4 else 0
    scoped = (SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL) if abi >= 6 else 0
    attr = struct.pack("<QQQ", fs, net, scoped)
    size = 8 if abi < 4 else (16 if abi < 6 else 24)
    buf = ctypes.create_string_buffer(attr[:size], size)
    ruleset = _libc.syscall(SYS_LANDLOCK_CREATE_RULESET, buf, ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        return _err("landlock_create_ruleset")
    read_dir = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
    read_file = FS_EXECUTE | FS_READ_FILE
    write = FS_WRITE_FILE | FS_READ_FILE | FS_READ_DIR | (1 << 5) | (1 << 8) | (1 << 4) | (1 << 7)
    if abi >= 3:
        write |= FS_TRUNCATE
    try:
        for paths, access in ((read_paths, read_dir), (write_paths, write), (list_paths, FS_READ_DIR)):
            for path in paths:
                try:
                    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    continue
                try:
                    is_dir = os.path.isdir(path)
                    mask = access if is_dir else access & (read_file | FS_WRITE_FILE | (FS_TRUNCATE if abi >= 3 else 0))
                    rule = ctypes.create_string_buffer(struct.pack("<Qi", mask, fd), 12)
                    if _libc.syscall(SYS_LANDLOCK_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(1), rule, ctypes.c_uint32(0)) != 0:
                        return _err(f"landlock_add_rule({path})")
                finally:
                    os.close(fd)
        if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return _err("prctl(NO_NEW_PRIVS)")
        if _libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            return _err("landlock_restrict_self")
    finally:
        os.close(ruleset)
    return f"active (ABI {abi}{', TCP denied' if net else ''}{', signals scoped' if scoped else ''})"


# --- seccomp --------------------------------------------------------------------------------------
AUDIT_ARCH_X86_64 = 0xC000003E
# x86_64 numbers of the system calls student code never needs.
DENIED_X86_64 = {
    "socket": 41, "connect": 42, "accept": 43, "bind": 49, "listen": 50, "accept4": 288,
    "fork": 57, "vfork": 58, "execve": 59, "execveat": 322, "ptrace": 101, "chroot": 161,
    "mount": 165, "umount2": 166, "pivot_root": 155, "reboot": 169, "init_module": 175,
    "delete_module": 176, "finit_module": 313, "kexec_load": 246, "add_key": 248,
    "request_key": 249, "keyctl": 250, "unshare": 272, "setns": 308, "process_vm_readv": 310,
    "process_vm_writev": 311, "perf_event_open": 298, "bpf": 321, "userfaultfd": 323,
    "io_uring_setup": 425, "open_by_handle_at": 304, "name_to_handle_at": 303,
    "setuid": 105, "setgid": 106, "setreuid": 113, "setregid": 114, "setresuid": 117, "setresgid": 119,
}
NR_CLONE, NR_CLONE3 = 56, 435


def _bpf(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k & 0xFFFFFFFF)


def apply_seccomp() -> str:
    if platform.machine() != "x86_64":
        return f"unavailable: filter written for x86_64, this machine is {platform.machine()}"
    LD_W_ABS, JEQ_K, JSET_K, RET_K, JGE_K = 0x20, 0x15, 0x45, 0x06, 0x35
    ALLOW, KILL = 0x7FFF0000, 0x80000000
    EPERM = 0x00050000 | 1
    ENOSYS = 0x00050000 | 38
    prog = [_bpf(LD_W_ABS, 0, 0, 4), _bpf(JEQ_K, 1, 0, AUDIT_ARCH_X86_64), _bpf(RET_K, 0, 0, KILL),
            _bpf(LD_W_ABS, 0, 0, 0), _bpf(JGE_K, 0, 1, 0x40000000), _bpf(RET_K, 0, 0, EPERM)]
    for nr in sorted(set(DENIED_X86_64.values())):
        prog += [_bpf(JEQ_K, 0, 1, nr), _bpf(RET_K, 0, 0, EPERM)]
    prog += [_bpf(JEQ_K, 0, 1, NR_CLONE3), _bpf(RET_K, 0, 0, ENOSYS)]
    # clone(): allowed only for threads (CLONE_THREAD in the low word of the first argument).
    prog += [_bpf(JEQ_K, 0, 4, NR_CLONE), _bpf(LD_W_ABS, 0, 0, 16), _bpf(JSET_K, 1, 0, CLONE_THREAD),
             _bpf(RET_K, 0, 0, EPERM), _bpf(RET_K, 0, 0, ALLOW)]
    prog += [_bpf(RET_K, 0, 0, ALLOW)]
    raw = b"".join(prog)
    filt = ctypes.create_string_buffer(raw, len(raw))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(prog), ctypes.cast(filt, ctypes.c_void_p))
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return _err("prctl(NO_NEW_PRIVS)")
    if _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0) != 0:
        return _err("prctl(SECCOMP)")
    return f"active ({len(DENIED_X86_64) + 2} system calls denied, fork/exec included)"


CAP_DAC_READ_SEARCH = 2
PR_SET_KEEPCAPS = 8
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def _keep_only_read_search() -> None:
    """After setresuid with PR_SET_KEEPCAPS: keep CAP_DAC_READ_SEARCH alone (effective, permitted)."""
    header = struct.pack("<Ii", _LINUX_CAPABILITY_VERSION_3, 0)
    bit = 1 << CAP_DAC_READ_SEARCH
    data = struct.pack("<IIIIII", bit, bit, 0, 0, 0, 0)
    hbuf, dbuf = ctypes.create_string_buffer(header, 8), ctypes.create_string_buffer(data, 24)
    if _libc.capset(hbuf, dbuf) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


def drop_privileges(uid: int | None, keep_read_search: bool = False) -> str:
    """Become the private ``uid``. ``keep_read_search``: the Python runtime lies under a folder the
    uid cannot traverse (a pyenv under /root, mode 0700) and no file-system view re-exposes it; the
    uid then keeps the one capability that lets it search and read folders, which is only given when
    landlock already confines every read to the read policy."""
    if os.geteuid() != 0:
        return "unavailable: not started as root, the worker keeps the grader's user"
    if uid is None:
        return "unavailable: no sandbox uid was assigned"
    try:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        if keep_read_search:
            _libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0)
        os.setresuid(uid, uid, uid)
        if keep_read_search:
            _keep_only_read_search()
            _libc.prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0)
    except OSError as exc:
        return f"unavailable: setuid({uid}) failed ({exc})"
    if keep_read_search:
        return ("active (a private unprivileged uid, no groups; it keeps CAP_DAC_READ_SEARCH only, because "
                "the Python runtime lies under a folder it cannot traverse and there is no file-system view; "
                "landlock limits its reads to the read policy)")
    return "active (a private unprivileged uid, no groups)"


def _on(report: dict, name: str) -> bool:
    return str(report.get(name, "")).startswith("active")


def refusal(report: dict, cfg: dict) -> str | None:
    """Why this worker must not run student code with the layers it got, or None.

    Without the file-system view and without landlock nothing hides the grader, the reference or the
    blocked libraries; a worker still running as root could undo every other layer. Both are refused
    unless the instructor explicitly accepted a weaker sandbox (``allow_weak``).
    """
    if cfg.get("allow_weak"):
        return None
    if not (_on(report, "view") or _on(report, "landlock")):
        return ("neither the file-system view nor landlock is available (view: " + str(report.get("view")) +
                "; landlock: " + str(report.get("landlock")) + "), so nothing would hide the reference and the "
                "grader from student code. Grading is refused; to grade anyway with the weaker sandbox, set "
                "GRADER_SANDBOX_ALLOW_WEAK=1 (or SandboxConfig(allow_weak=True)).")
    if os.geteuid() == 0 or os.getuid() == 0:
        return ("the worker would run student code as root (user: " + str(report.get("user")) + "). Grading is "
                "refused; to grade anyway, set GRADER_SANDBOX_ALLOW_WEAK=1 (or SandboxConfig(allow_weak=True)).")
    return None


def apply_all(cfg: dict) -> dict[str, str]:
    """Apply every layer in a safe order; returns the report. Called by the worker at start-up."""
    report = {}

    def attempt(name, enabled, fn, *args):
        if not enabled:
            report[name] = "unavailable: disabled by the configuration"
            return
        try:
            report[name] = fn(*args)
        except Exception as exc:  # e.g. not Linux: the layer is reported missing, the others still apply
            report[name] = f"unavailable: {type(exc).__name__}: {exc}"[:300]

    attempt("rlimits", True, apply_rlimits, cfg.get("rlimits", {}))
    attempt("network", cfg.get("network", True), unshare_network)
    import view

    attempt("view", cfg.get("view", True) and bool(cfg.get("view_root")), view.build_view, cfg.get("view_root", ""),
            cfg.get("policy", {}), cfg.get("work_dir", ""), cfg.get("work_dir_bytes", 0), cfg.get("uid"),
            cfg.get("package_dir", ""))
    if _on(report, "view"):
        report["disk"] = "active (the writable folder is the view's private tmpfs)"
    else:
        attempt("disk", bool(cfg.get("work_dir_bytes")) and bool(cfg.get("work_dir")), limit_work_dir,
                cfg.get("work_dir", ""), cfg.get("work_dir_bytes", 0), cfg.get("uid"))
    attempt("landlock", cfg.get("landlock", True), apply_landlock, cfg.get("read_paths", []), cfg.get("write_paths", []),
            cfg.get("list_paths", []))
    keep = bool(cfg.get("runtime_private")) and not _on(report, "view") and _on(report, "landlock")
    uid = cfg.get("uid") if cfg.get("private_uid", True) else None
    if uid is not None and cfg.get("runtime_private") and not _on(report, "view") and not keep:
        report["user"] = ("unavailable: the Python runtime lies under a folder the private uid cannot traverse, "
                          "and neither the file-system view nor landlock is there to re-expose it safely")
    else:
        attempt("user", True, drop_privileges, uid, keep)
    try:  # after the uid change: a credential change resets the parent-death signal
        _libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)
        _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except Exception:
        pass
    attempt("seccomp", cfg.get("seccomp", True), apply_seccomp)
    return report
