"""Notebooks as students save them (issues 14 and 21): the reduction of their cells to the two student
modules, unit by unit on realistic cell shapes, and end-to-end grading of whole notebooks (the
project's own notebooks completed in the notebook, one saved with 100 MB of plots, one cell of
10,000 constants)."""
from __future__ import annotations

import base64
import importlib
import json
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT
from grader.intake import IntakeError, Submission, prepare
from grader.intake.notebook import MAX_CODE_BYTES, NotebookError, notebook_modules, reduce_notebook
from grader.pipeline import GradeOptions, grade_submission
from grader.sandbox.client import SandboxConfig
from grader.sandbox.worker import describe_exception, install_package
from grader.spec import current_spec

SOLUTION = {f: (ROOT / "solutions" / f).read_text() for f in ("layers.py", "logistic_regression.py")}
CONFIG = SandboxConfig(call_timeout=5.0)
LINEAR_ONLY = SOLUTION["layers.py"].split("class ReLU")[0]  # imports, Module and Linear


def code(src: str, tags: list[str] | None = None, outputs: list | None = None, as_lines: bool = False) -> dict:
    meta = {"tags": tags} if tags else {}
    source = src.splitlines(keepends=True) if as_lines else src
    return {"cell_type": "code", "execution_count": None, "metadata": meta, "outputs": outputs or [], "source": source}


def md(text: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def notebook(*cells: dict) -> bytes:
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": list(cells)}).encode()


def write(tmp_path: Path, *cells: dict, name: str = "nb") -> Path:
    path = tmp_path / f"{name}.ipynb"
    path.write_bytes(notebook(*cells))
    return path


class Loaded:
    """A notebook prepared as for grading and imported in this process (trusted test code only)."""

    def __init__(self, tmp_path: Path, *cells: dict) -> None:
        path = write(tmp_path, *cells, name=f"nb{uuid.uuid4().hex[:6]}")
        self.prepared = prepare(Submission(path.stem, path, "ipynb"), tmp_path / f"scratch-{path.stem}")
        self.notes = self.prepared.notes
        self.text = (self.prepared.package_dir / "layers.py").read_text()
        self.package = f"_nbtest_{uuid.uuid4().hex}"
        install_package(str(self.prepared.package_dir), self.package, current_spec().student_modules, current_spec().provided)

    def module(self, name: str = "layers"):
        return importlib.import_module(f"{self.package}.{name}")

    def error(self, name: str = "layers") -> dict:
        with pytest.raises(BaseException) as info:
            self.module(name)
        return describe_exception(info.value, str(self.prepared.package_dir))

    def kept_code(self) -> str:
        """Only the cells' kept code (the module's first data line), to assert on what was dropped."""
        ns: dict = {}
        line = next(ln for ln in self.text.splitlines() if ln.startswith("__grader_cells__ = "))
        exec(line, ns)  # a literal written by the reduction
        return "\n".join(entry[1] for entry in ns["__grader_cells__"])


# --- what is kept, what is dropped -------------------------------------------------------------------

def test_decorated_classes_and_functions_are_kept_whole(tmp_path):
    nb = Loaded(tmp_path, code("import functools\nfrom dataclasses import dataclass, field\n"),
                code("@dataclass(frozen=True)\nclass Config:\n    lr: float = 0.1\n    sizes: tuple = (784, 10)\n\n"
                     "@functools.lru_cache(maxsize=None)\ndef fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"),
                code(SOLUTION["layers.py"]))
    m = nb.module()
    assert m.Config().lr == 0.1 and m.Config(lr=0.5).sizes == (784, 10)  # the decorator ran: __init__ exists
    assert m.fib(30) == 832040 and m.fib.cache_info().hits > 0
    assert "@dataclass(frozen=True)" in nb.kept_code() and "@functools.lru_cache" in nb.kept_code()


def test_future_import_in_a_later_cell_is_valid_and_applies(tmp_path):
    nb = Loaded(tmp_path, code("import numpy as np\n"),
                code("def early(x: NotDefinedAnywhere) -> AlsoUndefined:\n    return x\n"),
                code('"""My layers."""\nfrom __future__ import annotations\n' + SOLUTION["layers.py"].split("from __future__ import annotations\n", 1)[1]))
    m = nb.module()
    assert m.early(3) == 3 and m.early.__annotations__["x"] == "NotDefinedAnywhere"
    assert isinstance(m.Linear(2, 3), object) and "from __future__" not in nb.kept_code()


def test_imports_of_the_grader_are_dropped(tmp_path):
    nb = Loaded(tmp_path, code("import numpy as np\nimport grader\nimport grader.student as gs\nfrom grader.student import check\n"
                               "from grader import student\n"),
                code(SOLUTION["layers.py"]), code('check("Linear")\ngs.check("ReLU")\n'))
    kept = nb.kept_code()
    assert "grader" not in kept and "check(" not in kept and "import numpy as np" in kept
    assert nb.module().ReLU().forward(np.array([-1.0, 2.0])).tolist() == [0.0, 2.0]


@pytest.mark.parametrize("setup", [
    "from assignment import Linear, ReLU, LogSoftmax, NLLLoss, LogisticRegression, Sequential, check_gradient, rel_error\n",
    "from assignment.layers import Linear, ReLU, LogSoftmax, NLLLoss\nfrom assignment import Sequential, check_gradient, rel_error\n",
    "from .layers import Linear, ReLU\nfrom .module import Sequential\nfrom assignment.gradcheck import check_gradient, rel_error\n",
])
def test_setup_cell_helpers_from_the_package_and_own_names_from_the_notebook(tmp_path, setup):
    nb = Loaded(tmp_path, code("%load_ext autoreload\n%autoreload 2\nimport numpy as np\n" + setup),
                code(SOLUTION["layers.py"]), code(SOLUTION["logistic_regression.py"]))
    layers, logreg = nb.module("layers"), nb.module("logistic_regression")
    assert layers.Linear.__module__ == layers.__name__  # the notebook's own class, no circular self-import
    assert logreg.LogisticRegression.__module__ == logreg.__name__
    net = layers.Sequential(layers.Linear(3, 4, rng=0), layers.ReLU())  # provided helpers come from the package
    errors = layers.check_gradient(net, np.random.default_rng(0).standard_normal((2, 3)))
    assert max(errors.values()) < 1e-6 and layers.rel_error(np.ones(2), np.ones(2)) == 0


def test_provided_name_imported_from_a_student_module_comes_from_the_package(tmp_path):
    nb = Loaded(tmp_path, code("from assignment.layers import Module, Linear\n" + SOLUTION["layers.py"]))
    m = nb.module()
    assert m.Module.__module__.endswith(".module") and issubclass(m.Linear, m.Module)
    assert "from assignment import Module" in nb.kept_code()


def test_magics_shell_help_and_cell_magics(tmp_path):
    nb = Loaded(tmp_path,
                code("%matplotlib inline\n!pip install tqdm\nimport numpy as np\nfiles = !ls\nt = %timeit -o np.zeros(3)\nnp.zeros?\n?np.ones\n"),
                code("%%time\n" + SOLUTION["layers.py"]),
                code("%%bash\necho hi > /tmp/should-not-exist\n"),
                code('%%writefile notes.txt\nclass Linear: pass\n'),
                code('def helper(x):\n    """Is this right?\n    Yes."""\n    return x\n\nhelper?\n'))
    m = nb.module()
    assert m.helper.__doc__.startswith("Is this right?") and m.Linear(2, 2).forward(np.ones((1, 2))).shape == (1, 2)
    kept = nb.kept_code()
    assert "pip" not in kept and "!ls" not in kept and "%" not in kept and "echo" not in kept and "np.zeros?" not in kept
    assert any("%%bash" in n for n in nb.notes) and any("%%writefile" in n for n in nb.notes)


def test_percent_continuation_line_is_python_not_a_magic(tmp_path):
    nb = Loaded(tmp_path, code('FMT = ("%d items"\n       % 3)\n\ndef f():\n    return FMT\n'))
    assert nb.module().f() == "3 items"


def test_top_level_actions_are_dropped_and_constants_kept(tmp_path):
    nb = Loaded(tmp_path,
                code("import numpy as np\nnp.random.seed(0)\nEPS = 1e-12\nSIZES = (784, 128, 10)\nDT = np.float64\n"
                     "X = np.random.randn(1000, 784)\ndisplay(X[:3])\nprint('hello')\nfor i in range(10**9):\n    pass\n"
                     "with open('/tmp/x', 'w') as fh:\n    fh.write('x')\nif __name__ == '__main__':\n    raise SystemExit(1)\n"
                     "data = load_mnist()\nX_train = data.X_train\n"),
                code(SOLUTION["layers.py"]))
    m, kept = nb.module(), nb.kept_code()
    assert (m.EPS, m.SIZES, m.DT) == (1e-12, (784, 128, 10), np.float64)
    for dropped in ("np.random.seed", "randn", "display", "print", "range(10**9)", "open(", "__main__", "load_mnist", "X_train"):
        assert dropped not in kept, dropped
    assert any("not run (cells 1)" in n for n in nb.notes)


def test_assignment_the_graded_classes_read_is_kept_and_others_are_not(tmp_path):
    nb = Loaded(tmp_path,
                code("import numpy as np\nTINY = np.finfo(np.float64).tiny\nSCALE = np.sqrt(2.0)\nUNUSED = np.ones(10**3)\n"
                     "rng = np.random.default_rng(0)\nhist = train_for_an_hour()\n"),
                code("def stable_log(x):\n    return np.log(np.maximum(x, TINY))\n\n"
                     "def plot_history():\n    return hist.loss\n\n"
                     "class Linear:\n    gain = SCALE\n    def draw(self, n):\n        return rng.standard_normal(n)\n"
                     "    def forward(self, x):\n        return stable_log(x)\n"))
    m = nb.module()
    assert m.Linear().forward(0.0) == np.log(np.finfo(np.float64).tiny) and m.Linear.gain == np.sqrt(2.0)
    assert m.Linear().draw(3).shape == (3,)
    assert not hasattr(m, "UNUSED") and not hasattr(m, "hist")  # negative controls: no graded code reads them
    assert "train_for_an_hour" not in nb.kept_code()
    assert any("TINY" in n and "SCALE" in n and "rng" in n for n in nb.notes)


def test_methods_attached_to_a_class_later(tmp_path):
    linear = SOLUTION["layers.py"].split("class ReLU")[0]
    body = linear.split("    def forward", 1)[1].split("    def backward", 1)[0]
    assert "return X @ self.W + self.b" in body
    stub = linear.replace("    def forward" + body, "")
    nb = Loaded(tmp_path, code(stub),
                code("OFFSET = 0.0\n\ndef linear_forward(self, X):\n    self._X = X\n    return X @ self.W + self.b + OFFSET\n\n"
                     "Linear.forward = linear_forward\n"),
                code("def add_to_class(cls):\n    def wrap(f):\n        setattr(cls, f.__name__, f)\n        return f\n"
                     "    return wrap\n\n@add_to_class(Linear)\ndef describe(self):\n    return NAME\n\nNAME = str('linear')\n"))
    lin = nb.module().Linear(2, 3, rng=0)
    assert lin.forward(np.ones((1, 2))).shape == (1, 3) and lin.describe() == "linear"


def test_try_import_blocks_are_kept(tmp_path):
    nb = Loaded(tmp_path,
                code("try:\n    from tqdm import tqdm\nexcept ImportError:\n    tqdm = lambda it, **kw: it\n\n"
                     "try:\n    import not_a_module_anywhere_xyz as fast\n    HAVE_FAST = True\nexcept ImportError:\n    fast = None\n"
                     "    HAVE_FAST = False\n\n"
                     "def total(xs):\n    return sum(tqdm(xs))\n"),
                code(SOLUTION["layers.py"]))
    m = nb.module()
    assert m.total([1, 2, 3]) == 6 and m.HAVE_FAST is False and m.fast is None


def test_later_definition_wins_as_in_jupyter(tmp_path):
    wrong = LINEAR_ONLY.replace("return X @ self.W + self.b", "return X @ self.W")
    assert wrong != LINEAR_ONLY
    nb = Loaded(tmp_path, code(wrong), code("lin = Linear(2, 3)\nlin.forward(np.ones((1, 2)))\n"), code(LINEAR_ONLY))
    lin = nb.module().Linear(2, 3, rng=0)
    lin.b[:] = 5.0
    assert np.allclose(lin.forward(np.zeros((1, 2))), 5.0)  # the bias is added: the last cell's class


def test_helper_function_used_by_the_classes(tmp_path):
    layers = SOLUTION["layers.py"]
    start = layers.index("class LogSoftmax")
    end = layers.index("class NLLLoss")
    own = ("def log_softmax(T):\n    shifted = T - T.max(axis=1, keepdims=True)\n"
           "    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))\n\n\n"
           "class LogSoftmax(Module):\n    def forward(self, T):\n        self._out = log_softmax(T)\n        return self._out\n\n"
           "    def backward(self, grad_output):\n"
           "        return grad_output - np.exp(self._out) * grad_output.sum(axis=1, keepdims=True)\n\n\n")
    nb = Loaded(tmp_path, code(layers[:start]), code(own), code(layers[end:]))
    T = np.array([[1000.0, 0.0], [1.0, 2.0]])
    assert np.allclose(np.exp(nb.module().LogSoftmax().forward(T)).sum(axis=1), 1.0)


def test_sources_as_line_lists_crlf_and_statements_sharing_a_line(tmp_path):
    nb = Loaded(tmp_path, code("import numpy as np\r\nprint('é'); import math; K = 'ü'\r\n", as_lines=True),
                code(SOLUTION["layers.py"], as_lines=True))
    m = nb.module()
    assert m.math.pi > 3 and m.K == "ü" and "print" not in nb.kept_code()


def test_tagged_cells_only_and_a_class_left_in_an_untagged_cell(tmp_path):
    nb = Loaded(tmp_path, code("import numpy as np\n"), code(LINEAR_ONLY, tags=["solution"]),
                code(SOLUTION["logistic_regression.py"]))
    assert hasattr(nb.module(), "Linear")
    assert not hasattr(nb.module("logistic_regression"), "LogisticRegression")
    assert any("LogisticRegression is defined in cell 3, which is not tagged" in n for n in nb.notes)


def test_class_inside_an_if_block_is_named_in_the_notes(tmp_path):
    nb = Loaded(tmp_path, code("import numpy as np\nif True:\n    class ReLU:\n        pass\n"))
    assert not hasattr(nb.module(), "ReLU")
    assert any("ReLU appears in cell 1" in n and "top level" in n for n in nb.notes)


# --- cells that do not parse or fail when run ----------------------------------------------------

def test_syntax_error_in_a_scratch_cell_costs_nothing(tmp_path):
    nb = Loaded(tmp_path, md("# Homework"), code(SOLUTION["layers.py"]), code("# scratch\nloss = model.forward(X,\n"),
                code("def unfinished(:\n"), code(SOLUTION["logistic_regression.py"]))
    assert hasattr(nb.module(), "Linear") and hasattr(nb.module("logistic_regression"), "LogisticRegression")
    notes = "\n".join(nb.notes)
    assert "cell 3 ('# scratch')" in notes and "cell 4 ('def unfinished(:')" in notes and "not used" in notes


def test_broken_redefinition_falls_back_to_the_working_cell(tmp_path):
    nb = Loaded(tmp_path, code(LINEAR_ONLY), code("class Linear(Module):\n    def forward(self, X)\n        return X\n"))
    assert nb.module().Linear(2, 3).forward(np.ones((1, 2))).shape == (1, 3)
    assert any("Linear from another cell was graded instead" in n for n in nb.notes)


def test_syntax_error_in_the_cell_that_defines_a_graded_class_names_the_cell(tmp_path):
    good = "    def __init__(self) -> None:\n        self._X = None"
    assert SOLUTION["layers.py"].count(good) == 1
    broken = SOLUTION["layers.py"].replace(good, "    def __init__(self) -> None\n        self._X = None")
    line = broken.splitlines().index("    def __init__(self) -> None") + 1
    nb = Loaded(tmp_path, md("intro"), code("import numpy as np"), code(broken), code(SOLUTION["logistic_regression.py"]))
    info = nb.error("layers")
    assert info["type"] == "SyntaxError" and info["where"] == f"cell 3, line {line}", info
    assert "cell 3 ('\"\"\"The layers of a multilayer perceptron" in info["message"] and "does not parse" in info["message"]
    assert hasattr(nb.module("logistic_regression"), "LogisticRegression")  # the other module is unaffected
    assert any("Linear, LogSoftmax, NLLLoss, ReLU are defined only there" in n for n in nb.notes)


def test_traceback_of_a_method_maps_to_the_cell_and_its_line(tmp_path):
    buggy = LINEAR_ONLY.replace("return X @ self.W + self.b", "return X @ self.W + self.bias")
    nb = Loaded(tmp_path, md("title"), code("import numpy as np"), code(buggy))
    line = buggy.splitlines().index("        return X @ self.W + self.bias") + 1
    with pytest.raises(AttributeError) as info:
        nb.module().Linear(2, 3).forward(np.ones((1, 2)))
    where = describe_exception(info.value, str(nb.prepared.package_dir))["where"]
    assert where == f"cell 3, line {line}, in forward: return X @ self.W + self.bias"


def test_failed_import_in_a_setup_cell_binds_a_stand_in(tmp_path):
    nb = Loaded(tmp_path, code("import numpy as np\nimport seaborn_not_installed_xyz as sns\nfrom assignment.nothing_here import load\n"
                               "PI = 3.14\n"),
                code(SOLUTION["layers.py"]), code("def plot(x):\n    return sns.lineplot(x)\n"))
    m = nb.module()
    assert m.PI == 3.14 and hasattr(m, "Linear")  # the cell went on after the failed import, the others ran
    with pytest.raises(ImportError, match=r"seaborn_not_installed_xyz.*\(imported in cell 1, line 2\)"):
        m.plot([1])


def test_cell_failing_when_run_reports_its_error_for_its_missing_class(tmp_path):
    nb = Loaded(tmp_path, code("import numpy as np\nimport torch_like_missing_xyz as torch\n"),
                code("class Linear(torch.nn.Module):\n    pass\n"), code("class ReLU:\n    pass\n"))
    info = nb.error("layers")
    assert info["type"] == "ImportError" and "torch_like_missing_xyz" in info["message"]
    assert info["where"].startswith("cell 2, line 1"), info


# --- reading and bounds ------------------------------------------------------------------------------

def test_not_a_notebook(tmp_path):
    for raw, why in [(b"{ not json", "not a valid Jupyter notebook"), (b'{"a": 1}', "no list of cells"),
                     (b"\xff\xfe\x00garbage", "not"), (b"[" * 100_000, "not a valid Jupyter notebook")]:
        with pytest.raises(NotebookError, match=why):
            notebook_modules(raw, "x.ipynb")
    path = tmp_path / "n.ipynb"
    path.write_bytes(b"[]")
    with pytest.raises(IntakeError, match="not a valid Jupyter notebook"):
        prepare(Submission("n", path, "ipynb"), tmp_path / "s")


def test_code_size_is_capped_not_outputs(tmp_path):
    big_code = "X = 1\n" * (MAX_CODE_BYTES // 6 + 10)
    with pytest.raises(NotebookError, match="code cells hold more than"):
        notebook_modules(notebook(code(big_code)), "x.ipynb")
    image = {"output_type": "display_data", "metadata": {}, "data": {"image/png": "A" * (4 * MAX_CODE_BYTES)}}
    files, _ = notebook_modules(notebook(code(SOLUTION["layers.py"], outputs=[image])), "x.ipynb")
    assert "AAAA" not in files["layers.py"]


def test_nbformat3_worksheets_are_read(tmp_path):
    raw = json.dumps({"nbformat": 3, "worksheets": [{"cells": [{"cell_type": "code", "input": SOLUTION["layers.py"]}]}]})
    files, _ = notebook_modules(raw.encode(), "old.ipynb")
    assert "class Linear" in files["layers.py"]


def test_ten_thousand_constants_in_one_cell_are_reduced_quickly():
    """Issue 21: this cell took 299 s with the quadratic source slicing; the bound is generous."""
    cell = "".join(f"CONSTANT_{i:05d} = {i * 1.5!r}\n" for i in range(10_000))
    assert 120_000 < len(cell) < 300_000
    start = time.perf_counter()
    reduced = reduce_notebook(notebook(code(cell), code(SOLUTION["layers.py"])), "consts.ipynb")
    assert time.perf_counter() - start < 5.0
    assert reduced.texts[1].count("\n") == cell.count("\n") and "CONSTANT_09999 = 14998.5" in reduced.texts[1]


# --- end to end --------------------------------------------------------------------------------------

def _grade(path: Path, mnist: bool = False):
    return grade_submission(Submission(path.stem, path, "ipynb"), GradeOptions(secret="nb-secret", mnist=mnist,
                                                                             sandbox_config=CONFIG))


def completed_course_notebook(source: Path, dest: Path) -> Path:
    """A project notebook completed in the notebook: setup and check cells kept, the reference pasted in."""
    nb = json.loads(source.read_text())
    setup = next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code")
    assert "from assignment import" in "".join(nb["cells"][setup]["source"])
    nb["cells"][setup + 1:setup + 1] = [code(SOLUTION["layers.py"]), code(SOLUTION["logistic_regression.py"])]
    dest.write_text(json.dumps(nb))
    return dest


COURSE = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("source", COURSE, ids=lambda p: p.stem)
def test_course_notebook_completed_in_the_notebook_gets_full_marks(tmp_path, source):
    text = source.read_text()
    assert "from grader.student import check" in text or "from assignment import" in text
    r = _grade(completed_course_notebook(source, tmp_path / source.name))
    assert r.status == "ok" and r.score == r.max_score, (r.reason, [(t.name, t.output) for t in r.tests if not t.passed])


@pytest.mark.slow
@pytest.mark.parametrize("source", COURSE, ids=lambda p: p.stem)
def test_course_notebook_completed_in_the_notebook_with_mnist(tmp_path, source):
    r = _grade(completed_course_notebook(source, tmp_path / source.name), mnist=True)
    assert r.status == "ok" and r.score == r.max_score == 100, [(t.name, t.output) for t in r.tests if not t.passed]


def _png_output(size: int) -> dict:
    payload = base64.b64encode(np.random.default_rng(size).bytes(size * 3 // 4)).decode()
    return {"output_type": "display_data", "metadata": {},
            "data": {"image/png": payload, "text/plain": ["<Figure size 640x480 with 1 Axes>"]}}


def _saved_notebook(path: Path, megabytes: int) -> Path:
    """What a student saves: magics, plots, a check cell, outputs of every cell (about ``megabytes`` MB)."""
    per_image = 1 << 20
    plots = [_png_output(per_image) for _ in range(megabytes)]
    stream = {"output_type": "stream", "name": "stdout", "text": ["loss 0.1\n"] * 50}
    cells = [code("%matplotlib inline\nimport numpy as np\nimport matplotlib.pyplot as plt\n"),
             code(SOLUTION["layers.py"], outputs=[stream]),
             code(SOLUTION["logistic_regression.py"]),
             code("from grader.student import check\ncheck()\n", outputs=[stream]),
             code("fig, ax = plt.subplots()\nax.plot(np.arange(10))\nplt.show()\n", outputs=plots[: len(plots) // 2]),
             code("%%time\nfor _ in range(3):\n    plt.imshow(np.zeros((28, 28)))\n", outputs=plots[len(plots) // 2:])]
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}, indent=1))
    return path


def test_unparseable_graded_cell_is_named_in_the_result_not_a_synthetic_line(tmp_path):
    broken = SOLUTION["layers.py"].replace("    def __init__(self) -> None:\n        self._X = None",
                                           "    def __init__(self) -> None\n        self._X = None")
    line = broken.splitlines().index("    def __init__(self) -> None") + 1
    r = _grade(write(tmp_path, md("# hw"), code("%matplotlib inline\nimport numpy as np"), code(broken),
                     code(SOLUTION["logistic_regression.py"])))
    assert r.status == "error" and f"cell 3 ('\"\"\"The layers" in r.reason and "does not parse" in r.reason, r.reason
    layers = [t for t in r.tests if t.component in ("Linear", "ReLU", "LogSoftmax", "NLLLoss")]
    assert layers and all(t.score == 0 and f"at cell 3, line {line}" in t.output for t in layers)
    assert all("layers.py, line" not in t.output for t in r.tests)
    comps = r.component_scores()
    assert comps["LogisticRegression"][0] == comps["LogisticRegression"][1] > 0  # its own cell is graded


def test_notebook_with_magics_outputs_and_matplotlib_gets_full_marks(tmp_path):
    r = _grade(_saved_notebook(tmp_path / "plots.ipynb", 8))
    assert r.status == "ok" and r.score == r.max_score, [(t.name, t.output) for t in r.tests if not t.passed]


def test_matplotlib_really_imports_in_the_worker(tmp_path):
    """The notebook above gets full marks either way (a failed import binds a stand-in); this checks
    that the setup cell's ``import matplotlib.pyplot as plt`` itself succeeded in the sandbox."""
    r = _grade(_saved_notebook(tmp_path / "plots.ipynb", 1))
    assert r.score == r.max_score and "matplotlib" not in r.student_output, r.student_output


def test_hundred_megabyte_notebook_is_graded_without_decoding_its_outputs(tmp_path):
    big = _saved_notebook(tmp_path / "big.ipynb", 100)
    small = _saved_notebook(tmp_path / "small.ipynb", 0)
    assert big.stat().st_size > 100e6
    r_small = _grade(small)
    r_big = _grade(big)
    assert r_big.status == "ok" and r_big.score == r_big.max_score == r_small.score
    assert r_big.execution_time() - r_small.execution_time() < 5.0, (r_big.timings, r_small.timings)


def test_ten_thousand_constants_notebook_is_graded_end_to_end(tmp_path):
    """Issue 21 must-show: the 140 KB cell is graded (not rejected), and costs seconds, not minutes."""
    cell = "".join(f"CONSTANT_{i:05d} = {i * 1.5!r}\n" for i in range(10_000))
    plain = _grade(write(tmp_path, code(SOLUTION["layers.py"]), code(SOLUTION["logistic_regression.py"]), name="plain"))
    consts = _grade(write(tmp_path, code(cell), code(SOLUTION["layers.py"]), code(SOLUTION["logistic_regression.py"]),
                          name="consts"))
    assert consts.status == "ok" and consts.score == consts.max_score == plain.score
    assert consts.execution_time() - plain.execution_time() < 5.0, (consts.timings, plain.timings)


def test_cells_run_out_of_order_as_the_student_did(tmp_path):
    """A class whose body needs a name that a later cell defines fails in a top-to-bottom run; the student
    ran the later cell first. It is run once more after all cells, as re-running the cell would."""
    nb = Loaded(tmp_path, code("import numpy as np\n"),
                code("class ReLU(Base):\n    def forward(self, X):\n        return np.maximum(X, 0)\n"),
                code("class Base:\n    pass\n"))
    assert nb.module().ReLU().forward(np.array([-1.0, 1.0])).tolist() == [0.0, 1.0]


def test_cell_label_is_its_first_line_as_the_student_sees_it():
    raw = notebook(code("%matplotlib inline\nimport numpy as np\nx = (\n"))
    notes = "\n".join(reduce_notebook(raw, "n.ipynb").notes)
    assert "cell 1 ('%matplotlib inline') does not parse" in notes and "at its line 3" in notes


def test_json_of_millions_of_tiny_values_is_rejected_by_the_bounded_reader(tmp_path):
    """No parser hook can bound ``[[],[],...]`` (50 times its size in memory): a big file is parsed in a
    helper process under a memory limit; this process stays small and the notebook is rejected."""
    import resource

    path = tmp_path / "values.ipynb"
    with open(path, "wb") as fh:
        fh.write(b'{"nbformat": 4, "metadata": {"x": [')
        for _ in range(25):
            fh.write(b"[]," * 1_000_000)
        fh.write(b'[]]}, "cells": []}')
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(IntakeError, match="too many values"):
        prepare(Submission("values", path, "ipynb"), tmp_path / "s")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KB: under 200 MB more


def test_big_notebook_read_by_the_helper_process_keeps_tags_and_sources(tmp_path):
    plot = _png_output(1 << 20)
    path = write(tmp_path, code("import numpy as np\n"), code(LINEAR_ONLY, tags=["solution"], outputs=[plot] * 10),
                 code("class ReLU:\n    pass\n", outputs=[plot]))
    assert path.stat().st_size > 10e6  # over IN_PROCESS_BYTES: read by the helper
    nb = prepare(Submission("big", path, "ipynb"), tmp_path / "s")
    text = (nb.package_dir / "layers.py").read_text()
    assert "1 code cell(s) tagged 'solution'" in nb.notes[0] and "class Linear" in text and "class ReLU" not in text


# --- a notebook that subclasses the skeleton (it gets the constructors, writes forward/backward) ------

SUBCLASSED = '''
class Linear({Linear}):
    def forward(self, X):
        self._X = X
        return X @ self.W + self.b

    def backward(self, grad_output):
        self.grad_W = self._X.T @ grad_output
        self.grad_b = grad_output.sum(axis=0)
        return grad_output @ self.W.T


class ReLU({ReLU}):
    def forward(self, X):
        self._X = X
        return np.maximum(X, 0)

    def backward(self, grad_output):
        return grad_output * (self._X {relu_op} 0)


class LogSoftmax({LogSoftmax}):
    def forward(self, T):
        shifted = T - T.max(axis=1, keepdims=True)
        self._Y = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return self._Y

    def backward(self, grad_output):
        return grad_output - np.exp(self._Y) * grad_output.sum(axis=1, keepdims=True)


class NLLLoss({NLLLoss}):
    def forward(self, log_probs, target):
        self._shape, self._t, self._dtype = log_probs.shape, target, log_probs.dtype
        picked = log_probs[np.arange(len(target)), target]
        return -(picked.mean() if self.reduction == "mean" else picked.sum())

    def backward(self, grad_output=1.0):
        g = np.zeros(self._shape, dtype=self._dtype)
        g[np.arange(len(self._t)), self._t] = -grad_output / (len(self._t) if self.reduction == "mean" else 1)
        return g


class LogisticRegression({LogisticRegression}):
    def forward(self, X, y):
        self._X, self._y = X, np.asarray(y).astype(X.dtype)
        y = self._y
        z = X @ self.w + self.b
        self._p = np.exp(-np.logaddexp(0, -z))
        return float(np.mean(np.logaddexp(0, z) - y * z))

    def backward(self, grad_output=1.0):
        d = (self._p - self._y) / len(self._y) * grad_output
        self.grad_w, self.grad_b = self._X.T @ d, np.asarray(d.sum())
        return np.outer(d, self.w)
'''
ALIASES = {c: f"_{c}" for c in ("Linear", "ReLU", "LogSoftmax", "NLLLoss", "LogisticRegression")}
SKELETON_IMPORTS = {
    "aliased_from_modules": ("from assignment.layers import Linear as _Linear, ReLU as _ReLU, LogSoftmax as _LogSoftmax, "
                             "NLLLoss as _NLLLoss\nfrom assignment.logistic_regression import LogisticRegression as "
                             "_LogisticRegression", ALIASES),
    "aliased_from_package": ("from assignment import Linear as _Linear, ReLU as _ReLU, LogSoftmax as _LogSoftmax, "
                             "NLLLoss as _NLLLoss, LogisticRegression as _LogisticRegression, Module", ALIASES),
    "module_objects": ("import assignment.layers as skel\nimport assignment.logistic_regression as skel_lr",
                       {c: f"skel.{c}" for c in ALIASES} | {"LogisticRegression": "skel_lr.LogisticRegression"}),
    "same_name": ("from assignment.layers import Linear, ReLU, LogSoftmax, NLLLoss\n"
                  "from assignment.logistic_regression import LogisticRegression", {c: c for c in ALIASES}),
}


@pytest.mark.parametrize("form", sorted(SKELETON_IMPORTS))
def test_a_notebook_subclassing_the_skeleton_gets_full_marks(tmp_path, form):
    imports, bases = SKELETON_IMPORTS[form]
    cells = [code("import numpy as np\n" + imports), code(SUBCLASSED.format(**bases, relu_op=">"))]
    r = _grade(write(tmp_path, *cells, name=form))
    assert r.status == "ok" and r.score == r.max_score, [(t.name, t.output[:200]) for t in r.tests if not t.passed]
    # negative control: the notebook's own methods are graded, not the skeleton's (a bug in ReLU only)
    cells = [code("import numpy as np\n" + imports), code(SUBCLASSED.format(**bases, relu_op=">="))]
    bad = _grade(write(tmp_path, *cells, name=form + "_bug")).component_scores()
    assert bad["ReLU"][0] < bad["ReLU"][1] and all(s == m for c, (s, m) in bad.items() if c != "ReLU"), bad


def test_a_notebook_that_writes_the_files_with_writefile_is_graded_on_what_it_writes(tmp_path):
    """``%%writefile assignment/layers.py`` cells: the files the student's kernel wrote. Split in two
    with ``-a`` (append), a quoted Windows path, and a %%writefile of another file that stays unused."""
    layers = SOLUTION["layers.py"]
    half = layers.index("class ReLU")
    cells = [code("%%writefile assignment/layers.py\n" + layers[:half]),
             code("%%writefile -a assignment/layers.py\n" + layers[half:]),
             code('%%writefile "C:\\\\hw\\\\assignment\\\\logistic_regression.py"\n' + SOLUTION["logistic_regression.py"]),
             code("%%writefile notes.py\nraise SystemExit\n"),
             code("!python -m assignment.train")]
    r = _grade(write(tmp_path, *cells, name="writes"))
    assert r.status == "ok" and r.score == r.max_score, [(t.name, t.output[:200]) for t in r.tests if not t.passed]
    assert any("layers.py is what the notebook writes with %%writefile (cell 1, 2)" in n for n in r.notes), r.notes
    assert any("cell 4: a %%writefile cell" in n for n in r.notes), r.notes
    buggy = layers.replace("grad_output * (self._X > 0)", "grad_output * (self._X >= 0)")
    assert buggy != layers
    cells[1] = code("%%writefile -a assignment/layers.py\n" + buggy[half:])  # negative control
    bad = _grade(write(tmp_path, *cells, name="writes_bug")).component_scores()
    assert bad["ReLU"][0] < bad["ReLU"][1] and bad["Linear"][0] == bad["Linear"][1], bad


def test_tagged_classes_use_the_imports_of_the_untagged_setup_cell(tmp_path):
    """Only tagged cells define the solution, but they ran after the setup cell in Jupyter: its imports
    are used; nothing else of an untagged cell is (a broken class, an action, a cell that does not parse)."""
    body = SOLUTION["layers.py"] + "\n" + SOLUTION["logistic_regression.py"]
    no_imports = "\n".join(ln for ln in body.splitlines() if not ln.startswith(("import ", "from ")))
    cells = [code("import numpy as np\nfrom assignment.module import Module\nimport matplotlib\n%matplotlib inline"),
             code("class Linear:\n    pass  # a scratch version, untagged: not used"),
             code("raise SystemExit('an action in an untagged cell')"),
             code("def broken(:\n"),
             code(no_imports, tags=["solution"])]
    r = _grade(write(tmp_path, *cells, name="setup_cell"))
    assert r.status == "ok" and r.score == r.max_score, [(t.name, t.output[:200]) for t in r.tests if not t.passed]
    assert any("imports of the untagged cells were used" in n for n in r.notes), r.notes
    assert not any("does not parse" in n for n in r.notes), r.notes  # an untagged scratch cell is not reported
