"""The code at the end of every module made from a notebook (see notebook.py); it runs in the sandbox.

Everything after the marker line is copied into the module, after the data it reads
(``__grader_cells__``: cell number, kept code, the graded names the cell defines, the lines of its
statements that only bind a name (constants, plain ``def``); ``__grader_broken__``:
the cells that do not parse; ``__grader_futures__``; ``__grader_graded__``: the classes this module
must define). It has no effect when this file is imported.

``__grader_run__`` is a class so that its steps are small methods while the module made from the
notebook still gains one name only, which it deletes after the call (``__grader_run__(globals())``).
"""
# --- runner ---


class __grader_run__:
    """Run each kept cell as Jupyter would, under the file name ``cell N`` (tracebacks say ``cell N, line L``).

    Every kept statement runs, even after one fails, like a student running cells one at a time. An
    import that fails binds stand-ins that raise its error when used, so a scratch cell's ``import
    seaborn`` costs nothing unless graded code needs it. A graded class that ends up missing reports
    the failure of the cell that defined it (or that cell's syntax error). Called once, as a function:
    the work is done by the constructor."""

    def __init__(self, ns):
        import gc
        import os

        self.ns = ns
        self.here = os.path.dirname(os.path.abspath(ns["__file__"]))
        self.flags, self.graded = ns.pop("__grader_futures__"), ns.pop("__grader_graded__")
        self.cells, self.broken = ns.pop("__grader_cells__"), ns.pop("__grader_broken__")
        self.unavailable = self.unavailable_type()
        self.collect = gc.isenabled()
        self.failures = []
        self.run_cells()
        self.retry_missing_names()
        self.report()

    @staticmethod
    def unavailable_type():
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

        return Unavailable

    def quiet(self, function, *args):  # parsing and compiling make many objects, no cycles: no collector passes
        import gc

        gc.disable()
        try:
            return function(*args)
        finally:
            if self.collect:
                gc.enable()

    def run(self, nodes, number, filename, defines):
        import ast

        try:
            exec(self.quiet(compile, ast.Module(nodes, []), filename, "exec", self.flags, True), self.ns)
            return
        except Exception as exc:
            if len(nodes) > 1:  # a batch of pure statements: run them one by one to find the failing one
                for node in nodes:
                    self.run([node], number, filename, defines)
                return
            node = nodes[0]
            self.failures.append((number, node.lineno, defines, exc, node, filename))
            if isinstance(exc, ImportError) and isinstance(node, (ast.Import, ast.ImportFrom)):
                error = "%s (imported in cell %d, line %d)" % (exc, number, node.lineno)
                for alias in node.names:
                    bound = alias.asname or alias.name.partition(".")[0]
                    if alias.name != "*" and bound not in self.ns:
                        self.ns[bound] = self.unavailable(error)

    def run_cells(self):
        import ast
        import linecache
        import os

        for number, text, defines, plain in self.cells:
            filename = os.path.join(self.here, "cell %d" % number)
            linecache.cache[filename] = (len(text), None, [line + "\n" for line in text.split("\n")], filename)
            plain, batch = set(plain), []
            for node in self.quiet(ast.parse, text, filename).body:
                if node.lineno in plain:  # no effects but binding: compiled together, they cost one compile
                    batch.append(node)
                    continue
                if batch:
                    self.run(batch, number, filename, defines)
                    batch = []
                self.run([node], number, filename, defines)
            if batch:
                self.run(batch, number, filename, defines)

    def retry_missing_names(self):
        """Run out of order in the notebook (a class that uses a name a later cell defines): as a student
        who re-ran the cell, statements that failed on a missing name run once more, now that every cell ran."""
        retry = [f for f in self.failures if isinstance(f[3], NameError)]
        self.failures[:] = [f for f in self.failures if not isinstance(f[3], NameError)]
        for number, _, defines, _, node, filename in retry:
            self.run([node], number, filename, defines)

    def report(self):
        """Raise the first failure behind a missing graded class; log every other failure on stderr."""
        import os
        import sys

        missing = {name for name in self.graded if not isinstance(self.ns.get(name), type)}
        causes = [(f[0], f[3]) for f in self.failures if missing.intersection(f[2])]
        for number, label, (msg, line, col, text), names in self.broken:
            if missing.intersection(names):
                where = (os.path.join(self.here, "cell %d" % number), line, col, text)
                causes.append((number, SyntaxError("%s does not parse: %s" % (label, msg), where)))
        if causes:
            raise min(causes, key=lambda c: c[0])[1]
        for number, line, _, exc, _, _ in self.failures:
            sys.stderr.write("grader: cell %d, line %d: %s: %s\n" % (number, line, type(exc).__name__, exc))
