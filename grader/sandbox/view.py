"""The file-system view: a private root holding only what the read policy names (root only).

In a mount namespace of the worker's own, a small tmpfs becomes the new root. Every folder of the
policy is bound into it read-only at its usual path (so ``sys.path``, ``__file__`` and the data files
of matplotlib resolve unchanged), every hidden entry inside is covered by an empty read-only
folder, the scratch folder gets a private tmpfs (the only writable place), and the worker
``chroot``s into it. The project, the grader's install, the output folder, other submissions and
the blocked libraries are then simply not there, whatever ``sys.meta_path`` says and whether or
not landlock exists. The folders created on the way (``/root`` for a pyenv under a home of mode
0700) are traversable, so the private uid can read the interpreter without any capability.

Runs inside the sandbox: standard library only.
"""
from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 0x20, 0x1000, 0x4000, 0x40000
DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random")


class ViewError(OSError):
    pass


def _mount(src, target: str, fstype, flags: int, data) -> None:
    _libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    enc = (lambda s: s.encode() if isinstance(s, str) else s)
    if _libc.mount(enc(src), target.encode(), enc(fstype), flags, enc(data)) != 0:
        e = ctypes.get_errno()
        raise ViewError(e, f"mount({target}): {os.strerror(e)}")


def _place(new_root: str, path: str, is_dir: bool) -> str:
    target = new_root + path
    if is_dir:
        os.makedirs(target, mode=0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        if not os.path.lexists(target):
            with open(target, "wb"):
                pass
    return target


def _bind_ro(new_root: str, path: str, *, devices: bool = False) -> None:
    target = _place(new_root, path, os.path.isdir(path))
    _mount(path, target, None, MS_BIND | MS_REC, None)
    flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | (0 if devices else MS_NODEV)
    _mount(None, target, None, flags, None)


def build_view(new_root: str, policy: dict, work_dir: str, work_bytes: int, uid: int | None,
               package_dir: str) -> str:
    """Enter the view; ``new_root`` is an empty root-owned folder. Returns the layer's report."""
    if os.geteuid() != 0:
        return "unavailable: needs root (a mount namespace of the worker's own)"
    if _libc.unshare(CLONE_NEWNS) != 0:
        e = ctypes.get_errno()
        return f"unavailable: unshare(CLONE_NEWNS) failed ({os.strerror(e)})"
    try:
        _mount("none", "/", None, MS_REC | MS_PRIVATE, None)
        _mount("tmpfs", new_root, "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,nr_inodes=65536,mode=0755")
        for link, target in policy.get("links", []):
            os.makedirs(os.path.dirname(new_root + link), mode=0o755, exist_ok=True)
            if not os.path.lexists(new_root + link):
                os.symlink(target, new_root + link)
        # the roots expanded around every hidden entry: a hidden entry is simply not there
        # (an empty folder in its place would still import, as an empty namespace package)
        paths = sorted(policy["paths"], key=lambda p: (p.count("/"), p))
        for p in paths:
            _bind_ro(new_root, p)
        _bind_ro(new_root, package_dir)
        for dev in DEVICES:
            if os.path.exists(dev):
                _bind_ro(new_root, dev, devices=True)
        wd = _place(new_root, work_dir, True)
        opts = f"size={int(work_bytes)},nr_inodes=4096,mode=0700" + (f",uid={uid},gid={uid}" if uid is not None else "")
        _mount("tmpfs", wd, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts)
        os.makedirs(new_root + "/tmp", mode=0o755, exist_ok=True)
        proc = _place(new_root, "/proc", True)
        try:  # own processes only: the grader's command line stays invisible
            _mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2")
        except ViewError:
            pass
        _mount(None, new_root, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4m,mode=0755")
        os.chdir(new_root)
        os.chroot(".")
        os.chdir("/")
    except (OSError, ValueError) as exc:
        # half-built: the worker must not go on with a view it believes in
        raise ViewError(getattr(exc, "errno", 0) or 0, f"the file-system view could not be built: {exc}") from None
    return (f"active ({len(policy.get('roots', []))} read-only folders of the Python runtime bound as {len(paths)} "
            f"entries, {len(policy.get('hidden', []))} hidden, a private {int(work_bytes) >> 20} MB tmpfs to write)")
