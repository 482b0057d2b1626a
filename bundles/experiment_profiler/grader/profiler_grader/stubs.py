"""Fixed inputs the plan writes for the submission sandbox: a runner that makes `rich`
unimportable, and a stand-in `rich` package that prints what the table received."""

from __future__ import annotations

# Runs `-m experiment_profiler.cli` with `rich` unimportable (as if it were not installed).
BLOCK_RICH = """
import importlib.abc, runpy, sys
class _NoRich(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "rich" or name.startswith("rich."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _NoRich())
for _name in [m for m in sys.modules if m == "rich" or m.startswith("rich.")]:
    del sys.modules[_name]
runpy.run_module("experiment_profiler.cli", run_name="__main__", alter_sys=True)
"""

# A stand-in `rich` (the real one is not installed in the sandbox): prints what it is given as
# marked plain lines, so the grader can see that the table went through rich.
RICH_STUB = {
    "__init__.py": '''
STUB = "[rich-stub]"
def print(*objects, **kwargs):
    from .console import Console
    Console().print(*objects, **kwargs)
''',
    "console.py": '''
import sys
from .table import Table
class Console:
    def __init__(self, *args, file=None, **kwargs):
        self.file = file
    def print(self, *objects, **kwargs):
        out = self.file or sys.stdout
        for obj in objects:
            if isinstance(obj, Table):
                out.write(obj._render() + "\\n")
            else:
                out.write(str(obj) + "\\n")
        out.flush()
    def log(self, *objects, **kwargs):
        self.print(*objects)
    def rule(self, *args, **kwargs):
        pass
    def __getattr__(self, name):
        return lambda *a, **k: None
''',
    "table.py": '''
STUB = "[rich-stub]"
class Column:
    def __init__(self, header="", **kwargs):
        self.header = header
class Table:
    def __init__(self, *columns, title=None, **kwargs):
        self.title = title
        self.columns = [str(c.header if isinstance(c, Column) else c) for c in columns]
        self.rows = []
    @classmethod
    def grid(cls, *args, **kwargs):
        return cls(*args, **kwargs)
    def add_column(self, header="", *args, **kwargs):
        self.columns.append(str(header))
    def add_row(self, *cells, **kwargs):
        self.rows.append(["" if c is None else str(c) for c in cells])
    def add_section(self):
        pass
    def _render(self):
        lines = [STUB + " table: " + str(self.title or ""), STUB + " columns: " + " || ".join(self.columns)]
        lines += [STUB + " row: " + " || ".join(r) for r in self.rows]
        return "\\n".join(lines)
''',
    "text.py": '''
class Text(str):
    def __new__(cls, text="", *args, **kwargs):
        return str.__new__(cls, text)
    def append(self, *args, **kwargs):
        return self
''',
    "box.py": '''
ASCII = ASCII2 = ASCII_DOUBLE_HEAD = SQUARE = SQUARE_DOUBLE_HEAD = MINIMAL = MINIMAL_HEAVY_HEAD = "box"
MINIMAL_DOUBLE_HEAD = SIMPLE = SIMPLE_HEAD = SIMPLE_HEAVY = HORIZONTALS = ROUNDED = HEAVY = "box"
HEAVY_EDGE = HEAVY_HEAD = DOUBLE = DOUBLE_EDGE = MARKDOWN = "box"
def __getattr__(name):
    return "box"
''',
}
STUB_MARK = "[rich-stub]"
