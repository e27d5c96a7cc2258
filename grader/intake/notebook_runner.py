"""The code at the end of every module made from a notebook (see notebook.py); it runs in the sandbox.

Everything after the marker line is copied into the module, after the data it reads
(``__grader_cells__``: cell number, kept code, the graded names the cell defines, the lines of its
statements that only bind a name (constants, plain ``def``); ``__grader_broken__``:
the cells that do not parse; ``__grader_futures__``; ``__grader_graded__``: the classes this module
must define). It has no effect when this file is imported.
"""
# --- runner ---


def __grader_run__(ns):
    """Run each kept cell as Jupyter would, under the file name ``cell N`` (tracebacks say ``cell N, line L``).

    Every kept statement runs, even after one fails, like a student running cells one at a time. An
    import that fails binds stand-ins that raise its error when used, so a scratch cell's ``import
    seaborn`` costs nothing unless graded code needs it. A graded class that ends up missing reports
    the failure of the cell that defined it (or that cell's syntax error)."""
    import ast
    import gc
    import linecache
    import os
    import sys

    here = os.path.dirname(os.path.abspath(ns["__file__"]))
    flags, graded = ns.pop("__grader_futures__"), ns.pop("__grader_graded__")
    cells, broken = ns.pop("__grader_cells__"), ns.pop("__grader_broken__")

    class Unavailable:
        """Bound by an import that failed: using it raises that import's error."""

        def __init__(self, error):
            object.__setattr__(self, "_grader_error", error)

        def __getattr__(self, name):
            raise ImportError(object.__getattribute__(self, "_grader_error"))

        def __call__(self, *args, **kwargs):
            raise ImportError(object.__getattribute__(self, "_grader_error"))

        def __repr__(self):
            return "<not importable: %s>" % object.__getattribute__(self, "_grader_error")

    collect = gc.isenabled()

    def quiet(function, *args):  # parsing and compiling make many objects, no cycles: no collector passes
        gc.disable()
        try:
            return function(*args)
        finally:
            if collect:
                gc.enable()

    def run(nodes, number, filename, defines):
        try:
            exec(quiet(compile, ast.Module(nodes, []), filename, "exec", flags, True), ns)
            return
        except Exception as exc:
            if len(nodes) > 1:  # a batch of pure statements: run them one by one to find the failing one
                for node in nodes:
                    run([node], number, filename, defines)
                return
            node = nodes[0]
            failures.append((number, node.lineno, defines, exc, node, filename))
            if isinstance(exc, ImportError) and isinstance(node, (ast.Import, ast.ImportFrom)):
                error = "%s (imported in cell %d, line %d)" % (exc, number, node.lineno)
                for alias in node.names:
                    bound = alias.asname or alias.name.partition(".")[0]
                    if alias.name != "*" and bound not in ns:
                        ns[bound] = Unavailable(error)

    failures = []
    for number, text, defines, plain in cells:
        filename = os.path.join(here, "cell %d" % number)
        linecache.cache[filename] = (len(text), None, [line + "\n" for line in text.split("\n")], filename)
        plain, batch = set(plain), []
        for node in quiet(ast.parse, text, filename).body:
            if node.lineno in plain:  # no effects but binding: compiled together, they cost one compile
                batch.append(node)
                continue
            if batch:
                run(batch, number, filename, defines)
                batch = []
            run([node], number, filename, defines)
        if batch:
            run(batch, number, filename, defines)
    # Run out of order in the notebook (a class that uses a name a later cell defines): as a student who
    # re-ran the cell, statements that failed on a missing name run once more, now that every cell ran.
    retry = [f for f in failures if isinstance(f[3], NameError)]
    failures[:] = [f for f in failures if not isinstance(f[3], NameError)]
    for number, _, defines, _, node, filename in retry:
        run([node], number, filename, defines)
    missing = {name for name in graded if not isinstance(ns.get(name), type)}
    causes = [(f[0], f[3]) for f in failures if missing.intersection(f[2])]
    for number, label, (msg, line, col, text), names in broken:
        if missing.intersection(names):
            where = (os.path.join(here, "cell %d" % number), line, col, text)
            causes.append((number, SyntaxError("%s does not parse: %s" % (label, msg), where)))
    if causes:
        raise min(causes, key=lambda c: c[0])[1]
    for number, line, _, exc, _, _ in failures:
        sys.stderr.write("grader: cell %d, line %d: %s: %s\n" % (number, line, type(exc).__name__, exc))
