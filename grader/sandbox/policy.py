"""What the worker may read, and what it must not, computed by the trusted parent.

The policy names folders, never their parents: each entry of the worker interpreter's own
``sys.path`` (the standard library, ``lib-dynload``, every site-packages folder), the system library
folders the interpreter and numpy load from, the interpreter itself and a few device files. Inside
those folders some entries stay *hidden*: the blocked libraries (``torch``, ``sympy``, ... as the
rubric says), the grader's own packages (``grader``, and the assignment's reference and student
packages when installed normally, named by the assignment spec) and the Python installations of
other versions that a system library folder may hold.

Two layers enforce the same policy independently (see ``isolation.py`` and ``view.py``):

* the file-system view (as root): a private mount namespace whose root holds only the ``roots``,
  bound read-only at their usual paths, with every ``hidden`` entry covered by an empty folder;
* landlock: the ``roots`` expanded entry by entry around every hidden entry, so a rule never covers a
  hidden path.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from functools import lru_cache

#: The grader's own top-level package: never readable by student code, in any install mode.
GRADER_PACKAGES = ("grader",)


def grader_packages() -> tuple[str, ...]:
    """Every package student code must not read: the grader's own, and the reference and student
    packages of the assignment being graded and of the default one (``solutions``, ``assignment``
    of this repository, when installed), read from their specs."""
    from ..spec import current_spec, default_spec

    specs = (current_spec(), default_spec())
    names = [*GRADER_PACKAGES, *(n for s in specs for n in (s.reference_package, s.student_package))]
    return tuple(dict.fromkeys(n.lower() for n in names if n))


@dataclass(frozen=True)
class ReadPolicy:
    roots: tuple[str, ...]        #: folders and files readable (whole, minus ``hidden``)
    hidden: tuple[str, ...]       #: entries inside a root that stay unreadable
    links: tuple[tuple[str, str], ...]  #: symlinks on the way to a root (path, target), for the view
    private: bool                 #: a root cannot be reached by a user without privileges (e.g. /root 0700)

    def landlock_paths(self) -> list[str]:
        """The roots, opened up entry by entry wherever one contains a hidden entry."""
        return self._expand()[0]

    def listed_dirs(self) -> list[str]:
        """The folders that were opened up entry by entry: they may be listed (the import system
        lists every folder on ``sys.path``), their hidden entries' contents stay unreadable."""
        return self._expand()[1]

    def _expand(self) -> tuple[list[str], list[str]]:
        hidden = set(self.hidden)
        out: set[str] = set()
        listed: set[str] = set()

        def add(path: str) -> None:
            if path in hidden:
                return
            if not any(h.startswith(path.rstrip("/") + "/") for h in hidden) or not os.path.isdir(path):
                out.add(path)
                return
            try:
                entries = os.listdir(path)
            except OSError:
                return
            listed.add(path)
            for e in entries:
                add(os.path.join(path, e))

        for r in self.roots:
            add(r)
        return sorted(out), sorted(listed)


def _module_name(entry: str) -> str:
    """The import name an entry of a site folder provides (``torch-2.1.dist-info`` -> ``torch``)."""
    base = entry.split(".", 1)[0]
    return re.split(r"-", base, maxsplit=1)[0].lower()


@lru_cache(maxsize=4)
def _worker_sys_path(executable: str) -> tuple[str, ...]:
    """``sys.path`` as the worker sees it (``-I``: no PYTHONPATH, no user site, no current folder)."""
    try:
        out = subprocess.run([executable, "-I", "-S", "-c", "import sys, site, json; site.main(); print(json.dumps(sys.path))"],
                             capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"}, check=True)
        paths = json.loads(out.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        paths = [p for p in sys.path if p]
    return tuple(os.path.abspath(p) for p in paths if p and os.path.exists(p))


def _loaded_libraries() -> list[str]:
    """Shared libraries loaded in this process (it imported numpy): their folders are needed too."""
    libs = []
    try:
        with open("/proc/self/maps") as fh:
            for line in fh:
                p = line.split()[-1]
                if p.startswith("/") and (p.endswith(".so") or ".so." in p):
                    libs.append(p)
    except OSError:
        pass
    return sorted(set(libs))


def _system_library_dirs() -> list[str]:
    arch = sysconfig.get_config_var("MULTIARCH") or ""
    cands = [f"/lib/{arch}", f"/usr/lib/{arch}"] if arch else []
    cands += ["/lib64", "/usr/lib64"]
    return [d for d in cands if os.path.isdir(d)]


def _links_to(path: str) -> list[tuple[str, str]]:
    """Every symlink met on the way to ``path`` (e.g. ``/lib -> usr/lib``), as (path, target)."""
    links, cur = [], "/"
    for part in path.strip("/").split("/"):
        nxt = os.path.join(cur, part)
        if os.path.islink(nxt):
            links.append((nxt, os.readlink(nxt)))
            nxt = os.path.realpath(nxt)
        cur = nxt
    return links


def _reachable_without_privileges(path: str) -> bool:
    """True if every folder on the way to ``path`` can be searched by "others"."""
    cur = os.path.dirname(os.path.realpath(path))
    while True:
        try:
            if not os.stat(cur).st_mode & 0o001:
                return False
        except OSError:
            return False
        if cur == "/":
            return True
        cur = os.path.dirname(cur)


def read_policy(blocked: tuple[str, ...], executable: str = sys.executable) -> ReadPolicy:
    """The read policy for a worker started with ``executable`` and the given blocked packages (and
    the current assignment's own packages, :func:`grader_packages`, always hidden)."""
    return _read_policy(blocked, executable, grader_packages())


@lru_cache(maxsize=8)
def _read_policy(blocked: tuple[str, ...], executable: str, own: tuple[str, ...]) -> ReadPolicy:
    sys_path = _worker_sys_path(executable)
    code_dirs = {os.path.realpath(p) for p in sys_path}
    roots: set[str] = set(code_dirs)
    hidden: set[str] = set()
    never = {b.lower() for b in blocked} | set(own)
    for d in code_dirs:
        if not os.path.isdir(d):
            continue
        for e in os.listdir(d):
            if _module_name(e) in never or e.lower().startswith(("backprop_grader", "__editable__")):
                hidden.add(os.path.join(d, e))
    for lib_dir in _system_library_dirs():
        real = os.path.realpath(lib_dir)
        roots.add(real)
        for e in os.listdir(real):
            if re.match(r"python\d", e) and os.path.join(real, e) not in code_dirs:
                hidden.add(os.path.join(real, e))  # another Python's packages
    for lib in _loaded_libraries():
        real_dir = os.path.dirname(os.path.realpath(lib))
        if any(real_dir == c or real_dir.startswith(c + "/") for c in roots):
            continue
        if any(c.startswith(real_dir + "/") for c in code_dirs):
            # e.g. <prefix>/lib holds libpython and the stdlib (conda: every shared library too): its
            # shared libraries one by one, never the folder
            roots.update(os.path.join(real_dir, e) for e in os.listdir(real_dir)
                         if ".so" in e and os.path.isfile(os.path.join(real_dir, e)))
        else:
            roots.add(real_dir)
    exe = os.path.realpath(executable)
    roots.update({exe, "/etc/ld.so.cache"})
    roots = {r for r in roots if os.path.exists(r)}
    # a root inside another root adds nothing, unless it re-opens a hidden entry
    roots = {r for r in roots if not any(r.startswith(o + "/") for o in roots if o != r)
             or any(h == r or r.startswith(h + "/") for h in hidden)}
    links: list[tuple[str, str]] = []
    for p in sorted(set(sys_path) | {executable} | set(_system_library_dirs())):
        links += [lk for lk in _links_to(p) if lk not in links]
    private = not all(_reachable_without_privileges(r) for r in roots)
    return ReadPolicy(tuple(sorted(roots)), tuple(sorted(hidden)), tuple(links), private)
