"""Distribution: the student release (``grader release``) and the Gradescope bundle (``grader gradescope``).

One module per job:

* :mod:`.student`: the student release of the current assignment (everything from its spec), a
  folder with the skeleton, the notebooks and data the spec names, the students' CI workflow and a
  ``grader`` that runs the public checks (``grader check``) and nothing more; it holds no reference
  code and no hidden check.
* :mod:`.closure`: which grader modules that ``grader`` is (the import closure of ``grader check``).
* :mod:`.recording`: the reference's answers to the public checks, recorded into
  ``grader/checks/public_reference.npz`` of the release (it has no ``solutions/``).
* :mod:`.gradescope`: the Gradescope autograder bundle (``setup.sh``, ``run_autograder``, the whole
  grader with the reference and the hidden checks).
* ``templates/``: the shell scripts and the files written into releases and bundles, as real files
  (package data, read through :func:`.common.template`).

Where a check author puts code: a check in ``grader/checks/<component>.py`` runs on public and on
hidden cases and ships to students whole; a check that must run on hidden cases only goes into
``grader/checks/hidden/`` (registered there, never copied into a release).
"""
from __future__ import annotations

from .closure import Shaker, shake
from .common import ReleaseError, template
from .gradescope import build_gradescope_bundle, extract_bundle
from .recording import record_public_reference
from .student import build_release, reference_snippets

__all__ = ["ReleaseError", "Shaker", "build_gradescope_bundle", "build_release", "extract_bundle",
           "record_public_reference", "reference_snippets", "shake", "template"]
