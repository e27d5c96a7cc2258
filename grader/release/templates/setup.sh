#!/usr/bin/env bash
# Gradescope runs this once, as root, while it builds the autograder image.
set -euo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_BREAK_SYSTEM_PACKAGES=1

if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
    apt-get update
    apt-get install -y --no-install-recommends python3 python3-pip python3-venv
fi
python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "the grader needs Python 3.10 or newer")'

# The grader's dependencies from its pyproject.toml (less the notebook-only ones), quoted, filled in
# by `grader gradescope` when it writes the bundle.
python3 -m pip install --no-cache-dir __DEPS__
python3 -m pip install --no-cache-dir --no-deps "$ROOT/source"

# Student code runs as a private unprivileged uid: nothing of the grader, the reference or the
# secret may be readable by it, also where Landlock is not available.
chmod -R go-rwx "$ROOT/source"
python3 - __REFERENCE_PACKAGE__ <<'EOF'
import importlib, os, stat, sys
try:
    reference = importlib.import_module(sys.argv[1])
except ImportError:
    raise SystemExit(0)
for d in set(reference.__path__):
    for base, dirs, files in os.walk(d):
        for n in dirs + files:
            p = os.path.join(base, n)
            os.chmod(p, os.stat(p).st_mode & ~(stat.S_IRWXG | stat.S_IRWXO))
    os.chmod(d, 0o700)
EOF
python3 -c 'import grader; print("grader", grader.__version__, "installed")'
