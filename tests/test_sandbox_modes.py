"""Defence in depth: the hostile suite with one isolation layer switched off at a time.

Each mode below is what a machine without that layer gets (older kernels have no landlock, some
container runtimes filter seccomp or mount namespaces, a grader that is not root has no private
uid). For each, a representative subset of the attacks of ``tests/fixtures/hostile`` must still
get nothing: no points on what it attacked, no sentinel file, no reference text, no blocked
import, no change to the project (the sandbox's own code included). The modes and their outcomes
are the table in README.md ("Sandbox modes"); modes that would leave nothing hiding the grader are
refused with a message unless the instructor opts in.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import shutil
from pathlib import Path

import pytest

from grader.batch import grade_batch
from grader.intake import Submission, prepare
from grader.pipeline import GradeOptions
from grader.sandbox.client import SandboxConfig, SandboxImpl, SandboxRefused
from grader.sandbox.isolation import landlock_abi

from test_hostile import (GENERATED, HOSTILE, ROOT, SECRET, Batch, check_submission, load_expectations,
                          project_digest)

ATTACKS = ["read_reference_at_import", "import_block_bypass", "network_access", "writes_files_at_import",
           "rewrites_runtime", "spawns_processes"]
IS_ROOT = os.geteuid() == 0
HAS_LANDLOCK = landlock_abi() >= 6
HAS_SECCOMP = platform.machine() == "x86_64"

#: mode -> (config, attacks run, expectation overrides, layers that must be off, requirements)
MODES = {
    "no_landlock": (dict(landlock=False), ATTACKS, {}, ["landlock"], IS_ROOT),
    "no_seccomp": (dict(seccomp=False), [a for a in ATTACKS if a != "spawns_processes"],
                   {"network_access": {"reason_contains": []}}, ["seccomp"], IS_ROOT or HAS_LANDLOCK),
    "no_network_namespace": (dict(network=False), ATTACKS, {}, ["network"], IS_ROOT or HAS_LANDLOCK),
    "no_view": (dict(view=False), ATTACKS, {}, ["view"], HAS_LANDLOCK),
    # what a grader that is not root gets: no private uid, no view; landlock and seccomp alone
    "no_private_uid": (dict(private_uid=False, view=False, allow_weak=True), ATTACKS, {}, ["view"],
                       HAS_LANDLOCK and HAS_SECCOMP),
}


def _subset(folder: Path, attacks: list[str]) -> None:
    folder.mkdir(parents=True)
    for name in attacks:
        shutil.copytree(HOSTILE / name, folder / name, symlinks=True)
    good = folder / "honest_correct"
    good.mkdir()
    for name in ("layers.py", "logistic_regression.py"):
        shutil.copyfile(ROOT / "solutions" / name, good / name)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_attacks_fail_with_one_layer_off(tmp_path: Path, mode: str) -> None:
    overrides, attacks, changes, off, possible = MODES[mode]
    if not possible:
        pytest.skip(f"{mode}: this machine lacks the layers that must hold in this mode")
    expectations = {**load_expectations(HOSTILE), "honest_correct": GENERATED["honest_correct"]}
    for name, change in changes.items():
        expectations[name] = {**expectations[name], **change}
    for f in {f for a in attacks for f in expectations[a].get("absent_files", [])}:
        if os.path.lexists(f):
            os.unlink(f)
    _subset(tmp_path / "subs", attacks)
    before = project_digest()
    config = SandboxConfig(call_timeout=3.0, **overrides)
    outcome = grade_batch(tmp_path / "subs", tmp_path / "out", GradeOptions(secret=SECRET, mnist=False,
                                                                              sandbox_config=config), jobs=2)
    results = {r.student: r for r in outcome.results}
    batch = Batch(results, expectations, tmp_path / "out", tmp_path / "subs", outcome.warnings, 0.0)
    for name in attacks + ["honest_correct"]:
        check_submission(batch, name)
        iso = results[name].isolation
        for layer in off:
            assert iso[layer].startswith("unavailable: disabled"), (mode, layer, iso)
    assert project_digest() == before, "the project (the sandbox's own code included) changed"
    planted = [f for a in attacks for f in expectations[a].get("absent_files", []) if os.path.lexists(f)]
    assert not planted, planted


def _start(tmp_path: Path, config: SandboxConfig) -> SandboxImpl:
    good = tmp_path / "good"
    good.mkdir()
    for name in ("layers.py", "logistic_regression.py"):
        shutil.copyfile(ROOT / "solutions" / name, good / name)
    prepared = prepare(Submission("good", good, "dir"), tmp_path / "scratch")
    impl = SandboxImpl(prepared.package_dir, config)
    impl.start()
    return impl


def test_no_view_and_no_landlock_is_refused(tmp_path: Path) -> None:
    """Nothing would hide the reference: refused with a message saying how to opt in."""
    with pytest.raises(SandboxRefused, match="GRADER_SANDBOX_ALLOW_WEAK"):
        _start(tmp_path, SandboxConfig(landlock=False, view=False)).close()


@pytest.mark.skipif(not IS_ROOT, reason="needs root: the worker would keep root only when started as root")
def test_student_code_as_root_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SandboxRefused, match="as root"):
        _start(tmp_path, SandboxConfig(private_uid=False)).close()


def test_refusal_is_a_row_with_the_reason_not_a_zero_blamed_on_the_student(tmp_path: Path) -> None:
    good = tmp_path / "subs" / "good"
    good.mkdir(parents=True)
    for name in ("layers.py", "logistic_regression.py"):
        shutil.copyfile(ROOT / "solutions" / name, good / name)
    opts = GradeOptions(secret=SECRET, mnist=False, sandbox_config=SandboxConfig(landlock=False, view=False))
    outcome = grade_batch(tmp_path / "subs" / "good", tmp_path / "out", opts)
    r = outcome.results[0]
    # the machine's fault, not the student's: status infra (never kept by a resume), with the reason
    assert r.status == "infra" and "refused" in r.reason and "GRADER_SANDBOX_ALLOW_WEAK" in str(r.to_dict()), r.reason


def test_refusal_stops_grader_grade_before_any_row(tmp_path: Path) -> None:
    """``grader grade`` checks the sandbox once before grading: one clear error (exit 2), no row of zeros."""
    good = tmp_path / "subs" / "good"
    good.mkdir(parents=True)
    for name in ("layers.py", "logistic_regression.py"):
        shutil.copyfile(ROOT / "solutions" / name, good / name)
    env = dict(os.environ, GRADER_SANDBOX_OFF="landlock,view")
    env.pop("GRADER_SANDBOX_ALLOW_WEAK", None)
    r = subprocess.run([sys.executable, "-m", "grader.cli", "grade", str(good), "--out", str(tmp_path / "out"),
                        "--no-mnist", "--quiet"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert r.returncode == 2 and "refused" in r.stderr and "GRADER_SANDBOX_ALLOW_WEAK" in r.stderr, r.stderr
    assert not (tmp_path / "out" / "gradebook.csv").exists()


def test_layers_switch_off_from_the_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GRADER_SANDBOX_OFF", "seccomp,network")
    impl = _start(tmp_path, SandboxConfig())
    try:
        assert impl.isolation["seccomp"] == "unavailable: disabled by the configuration"
        assert impl.isolation["network"] == "unavailable: disabled by the configuration"
        assert impl.isolation["rlimits"] == "active"
    finally:
        impl.close()
    monkeypatch.setenv("GRADER_SANDBOX_OFF", "seccom")
    with pytest.raises(SandboxRefused, match="unknown layers"):
        SandboxConfig().effective()


def test_opt_in_allows_the_weak_mode(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GRADER_SANDBOX_ALLOW_WEAK", "1")
    impl = _start(tmp_path, SandboxConfig(landlock=False, view=False))
    try:
        assert impl.isolation["landlock"].startswith("unavailable") and impl.isolation["view"].startswith("unavailable")
        impl.new("Linear", 3, 2, 0)
    finally:
        impl.close()


def test_modified_runtime_is_never_started(tmp_path: Path, monkeypatch) -> None:
    """The worker's code is checked before every start: a changed file refuses the start."""
    from grader.sandbox import client

    monkeypatch.setattr(client, "RUNTIME_DIGEST", dict(client.RUNTIME_DIGEST, **{"worker.py": "0" * 64}))
    with pytest.raises(SandboxRefused, match="changed on disk"):
        _start(tmp_path, SandboxConfig()).close()
