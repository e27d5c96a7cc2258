#!/usr/bin/env bash
# Gradescope runs this for every submission, as root. Whatever happens, it leaves a valid
# $AUTOGRADER_ROOT/results/results.json: the grader's own, or one with score 0 and the reason.
set -uo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
SRC="$ROOT/source"
SUB="$ROOT/submission"
RESULTS="$ROOT/results"
PY="${AUTOGRADER_PYTHON:-python3}"
mkdir -p "$RESULTS"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gs-out.XXXXXX")"
chmod 700 "$WORK"
OUT="$WORK/out"
LOG="$WORK/grader.log"
chmod -R go-rwx "$SRC" 2>/dev/null || true
trap 'rm -rf "$WORK"' EXIT
# An assignment other than the grader's own comes with its spec (the fallback reads it too).
SPEC="$SRC/"__SPEC_FILE__
if [ -f "$SPEC" ]; then
    GRADER_ASSIGNMENT="$SPEC"
    export GRADER_ASSIGNMENT
fi

fallback() {  # $1 status (error|rejected), $2 reason
    echo "autograder: $2" >&2
    if ! "$PY" - "$RESULTS/results.json" "$1" "$2" "$SRC" <<'PYEOF'
import json, os, sys
out, status, reason, src = sys.argv[1:5]
doc = None
try:  # every planned test, with score 0 and the reason, as for any other failed submission
    sys.path.insert(0, src)
    from grader.pipeline import plan, zero_test
    from grader.scoring import SubmissionResult, load_rubric
    rubric = os.path.join(src, "rubric.toml")
    planned = plan(load_rubric(rubric if os.path.isfile(rubric) else None), public_only=False, mnist=True)
    doc = SubmissionResult("submission", status, reason,
                           [zero_test(p, "Not graded: " + reason) for p in planned]).to_gradescope()
except Exception as exc:
    reason += f" (the list of tests could not be built either: {exc!r})"
if doc is None:
    doc = {"score": 0.0, "execution_time": 0.0, "output": "Score 0. Not graded: " + reason, "tests": [],
           "extra_data": {"student": "submission", "status": status, "reason": reason}}
tmp = out + ".tmp"
with open(tmp, "w", encoding="utf-8") as fh:
    json.dump(doc, fh, indent=2)
os.replace(tmp, out)
PYEOF
    then
        printf '%s\n' '{"score": 0.0, "execution_time": 0.0, "output": "The autograder failed before it could grade this submission; please tell your instructor.", "tests": [], "extra_data": {"status": "error"}}' > "$RESULTS/results.json"
    fi
}

# The assignment's student files and their package (filled in from its spec by `grader gradescope`).
STUDENT_FILES=(__STUDENT_FILES__)
STUDENT_PACKAGE=__STUDENT_PACKAGE__
NAME_TESTS=()
for f in "${STUDENT_FILES[@]}"; do
    [ "${#NAME_TESTS[@]}" -eq 0 ] || NAME_TESTS+=(-o)
    NAME_TESTS+=(-name "$f")
done

has_student_files() {
    local f
    for f in "${STUDENT_FILES[@]}"; do
        if [ -e "$1/$f" ] || [ -e "$1/$STUDENT_PACKAGE/$f" ]; then
            return 0
        fi
    done
    return 1
}

# Find the submission: the upload itself, else the folder holding the student files (an uploaded
# folder or archive one level down), else a single notebook.
target=""
if [ -d "$SUB" ] && has_student_files "$SUB"; then
    target="$SUB"
elif [ -d "$SUB" ]; then
    found="$(find "$SUB" -maxdepth 4 -name __MACOSX -prune -o -type f \
             \( "${NAME_TESTS[@]}" \) -print 2>/dev/null | sort | head -n 1)"
    if [ -n "$found" ]; then
        target="$(dirname "$found")"
    else
        notebooks="$(find "$SUB" -maxdepth 2 -name __MACOSX -prune -o -type f -name '*.ipynb' -print 2>/dev/null | sort)"
        if [ -n "$notebooks" ] && [ "$(printf '%s\n' "$notebooks" | wc -l)" -eq 1 ]; then
            target="$notebooks"
        fi
    fi
fi
if [ -z "$target" ]; then
    fallback rejected __NOTHING_FOUND__
    exit 0
fi

export MNIST_DIR="$SRC/data/mnist"
if [ -z "${GRADER_SECRET:-}" ] && [ -f "$SRC/grader-secret.txt" ]; then
    GRADER_SECRET="$(cat "$SRC/grader-secret.txt")"
    export GRADER_SECRET
fi
RUBRIC=()
[ -f "$SRC/rubric.toml" ] && RUBRIC=(--rubric "$SRC/rubric.toml")

# Gradescope's containers usually offer neither Landlock nor mount namespaces. Each submission has
# a container of its own there, and the worker still runs under a private uid that cannot read the
# root-only source/ folder, with seccomp and resource limits; so the weaker sandbox is accepted here
# (the instructor can set GRADER_SANDBOX_ALLOW_WEAK=0 in the assignment's environment to refuse it).
export GRADER_SANDBOX_ALLOW_WEAK="${GRADER_SANDBOX_ALLOW_WEAK:-1}"
chmod 0700 "$SRC" 2>/dev/null || true

# Hidden cases per student and submission (issue 21): the assignment's secret combined with the
# students' Gradescope ids and the submission id, so that a probe submission learns nothing about
# anyone else's hidden cases, and a regrade of the same submission draws the same ones.
ATTEMPT="$("$PY" - "$ROOT/submission_metadata.json" <<'PYEOF' 2>/dev/null
import json, sys
try:
    with open(sys.argv[1], encoding="utf-8") as fh:
        meta = json.load(fh)
except (OSError, ValueError):
    meta = {}
meta = meta if isinstance(meta, dict) else {}
users = meta.get("users") if isinstance(meta.get("users"), list) else []
ids = sorted(str(u.get("id", u.get("email", ""))) for u in users if isinstance(u, dict))
print(f"users={','.join(ids)};submission={meta.get('id', '')}"[:500])
PYEOF
)"
[ -n "$ATTEMPT" ] || ATTEMPT="users=;submission="

# From inside source/, `python -m grader.cli` runs the bundled grader (with the reference beside it).
(cd "$SRC" && "$PY" -m grader.cli grade "$target" --out "$OUT" --jobs 1 ${RUBRIC[@]+"${RUBRIC[@]}"} \
    --per-student-secret --attempt "$ATTEMPT" --quiet) >"$LOG" 2>&1
rc=$?
if [ "$rc" -ne 0 ]; then
    fallback error "the grader stopped with exit status $rc: $(tail -n 5 "$LOG" | tr '\n' ' ' | cut -c1-1500)"
    exit 0
fi
mapfile -t graded < <(find "$OUT" -mindepth 2 -maxdepth 2 -type f -name results.json | sort)
if [ "${#graded[@]}" -ne 1 ]; then
    fallback error "expected the results of one submission, found ${#graded[@]}"
    exit 0
fi
if ! "$PY" -c 'import json, sys; d = json.load(open(sys.argv[1])); assert isinstance(d.get("tests"), list)' "${graded[0]}"; then
    fallback error "the grader wrote an unreadable results.json"
    exit 0
fi
cp "${graded[0]}" "$RESULTS/results.json.tmp" && mv "$RESULTS/results.json.tmp" "$RESULTS/results.json"
"$PY" -c 'import json, sys; d = json.load(open(sys.argv[1])); print("graded:", d["score"], "points;", d.get("extra_data", {}).get("status"))' "$RESULTS/results.json"
exit 0
