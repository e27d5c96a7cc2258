"""Hidden-only checks: code the student release never holds.

A check registered in a module of this package (``@check(...)`` from ``grader.checks.base``, as in
the component modules) runs on hidden cases only: it is planned with ``visibility = "hidden"`` and
all of its points, never run by ``grader check``, and ``grader release`` does not copy this folder
(``grader/release/closure.py``, ``NEVER_SHIPPED``). Every module here is imported when
``grader.checks`` is, so a new file needs no other registration; its check ids go into the rubric
like any other check's.

A check in ``grader/checks/<component>.py`` instead runs on the fixed public cases and on hidden
cases drawn from the run's secret, and ships to students whole, helpers included. Since issue 15
every check of this grader is of that kind (no rule is enforced by hidden cases alone), so this
package holds no check yet.
"""
from __future__ import annotations

import importlib
import pkgutil

for _info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_info.name}")
