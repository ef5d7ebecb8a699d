"""PPS reaches PFS only through its public surface (DESIGN.md §2 and §5, "PFS output API").

Every module under ``src/tusk/pps/`` is parsed with ``ast`` (nothing is imported) and refused if
it imports a private name from ``tusk.pfs``, reaches a private attribute of a PFS object (any
``._name`` on an expression whose text mentions ``pfs``), or uses a table PFS owns from
``tusk.storage.schema``. PPS keeps its own tables (pipelines, jobs, datum runs, ...).
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

from tusk.storage import schema

PPS_DIR = Path(__file__).resolve().parents[2] / "src" / "tusk" / "pps"
PFS_DIR = PPS_DIR.parent / "pfs"
# What PfsService holds (and what a component or write session calls its neighbours).
COMPONENTS = ("catalog", "rows", "branches", "commits", "files", "transactions", "output", "svc")

# Who owns each table of the schema. PPS may use its own tables only; PFS's (and storage's
# own meta_info) are reached through PfsService.
PPS_TABLES = frozenset({
    "pipelines", "pipeline_versions", "jobs", "restart_requests", "datum_runs", "datum_inputs",
    "datum_tasks",
})
PFS_TABLES = frozenset({
    "projects", "repos", "commits", "branches", "branch_provenance", "commit_provenance",
    "staging", "tree_nodes", "chunks", "packs", "output_listings", "branch_triggers",
    "transactions", "transaction_ops", "meta_info",
})


def _modules() -> list[Path]:
    return sorted(PPS_DIR.rglob("*.py"))


def _schema_aliases(tree: ast.Module) -> tuple[set[str], dict[str, str]]:
    """Names bound to the schema module, and names imported from it (local -> table)."""
    modules: set[str] = set()
    tables: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "tusk.storage":
            for a in node.names:
                if a.name == "schema":
                    modules.add(a.asname or a.name)
        elif isinstance(node, ast.ImportFrom) and node.module == "tusk.storage.schema":
            for a in node.names:
                tables[a.asname or a.name] = a.name
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "tusk.storage.schema":
                    modules.add(a.asname or "tusk.storage.schema")
    return modules, tables


def violations(source: str, name: str) -> list[str]:
    """What in ``source`` (a PPS module called ``name``) breaks the layering, one line each."""
    tree = ast.parse(source, name)
    found: list[str] = []
    schema_mods, schema_names = _schema_aliases(tree)
    for node in ast.walk(tree):
        where = f"{name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tusk.pfs"):
            for a in node.names:
                if a.name.startswith("_"):
                    found.append(f"{where}: imports private {a.name} from {node.module}")
        elif isinstance(node, ast.Attribute):
            text = ast.unparse(node.value)
            if node.attr.startswith("_") and not node.attr.startswith("__") and "pfs" in text.lower():
                found.append(f"{where}: reaches PFS internals: {text}.{node.attr}")
            if text in schema_mods and node.attr in PFS_TABLES:
                found.append(f"{where}: uses PFS table {node.attr} ({text}.{node.attr})")
    for local, table in schema_names.items():
        if table in PFS_TABLES:
            found.append(f"{name}: imports PFS table {table} from tusk.storage.schema"
                         f"{'' if local == table else f' as {local}'}")
    return found


def test_every_pps_module_is_checked() -> None:
    names = {p.name for p in _modules()}
    assert {"jobs.py", "controller.py", "create.py", "lifecycle.py", "lineage.py"} <= names


def test_every_table_has_one_owner() -> None:
    tables = set(schema.metadata.tables)
    unowned = tables - PPS_TABLES - PFS_TABLES
    assert not unowned, f"tables owned by no one: {sorted(unowned)}; add each to PFS_TABLES or PPS_TABLES"
    assert not PPS_TABLES & PFS_TABLES
    assert PPS_TABLES | PFS_TABLES == tables, "a table was renamed or dropped: update the lists"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.name)
def test_pps_module_uses_only_public_pfs(path: Path) -> None:
    problems = violations(path.read_text(), f"pps/{path.name}")
    assert not problems, "PPS reaches past PFS's public API:\n" + "\n".join(problems)


def test_the_checker_catches_each_kind_of_breach() -> None:
    """The checker itself: each forbidden form is found, public use passes."""
    bad = textwrap.dedent("""
        from tusk.pfs.model import _hidden
        from tusk.storage import schema as s
        from tusk.storage.schema import commits as c
        def f(pps, conn):
            pps.pfs._repo_row(conn, 1)
            self.pfs._txn_id(None)
            conn.execute(s.tree_nodes.insert())
            conn.execute(s.jobs.insert())
    """)
    problems = violations(bad, "x.py")
    assert len(problems) == 5, problems
    good = textwrap.dedent("""
        from tusk.pfs.refs import RepoRef
        from tusk.storage import schema as s
        def f(pps, conn):
            pps.pfs.find_repo(conn, RepoRef('default', 'a'))
            conn.execute(s.datum_runs.insert())
            pps._row('p', 'default')
    """)
    assert violations(good, "y.py") == []


def sibling_reaches(source: str, name: str) -> list[str]:
    """Calls of a private method of another PFS component (``self.rows._x()``, ``svc._x()``)."""
    found = []
    for node in ast.walk(ast.parse(source, name)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = ast.unparse(node.func.value)
            if node.func.attr.startswith("_") and not node.func.attr.startswith("__") \
                    and owner.split(".")[-1] in COMPONENTS:
                found.append(f"{name}:{node.lineno}: {owner}.{node.func.attr}()")
    return found


def test_pfs_components_call_only_each_others_public_methods() -> None:
    """PfsService holds its parts; none reaches into a sibling (DESIGN.md §7)."""
    problems = [p for path in sorted(PFS_DIR.glob("*.py"))
                for p in sibling_reaches(path.read_text(), f"pfs/{path.name}")]
    assert not problems, "\n".join(problems)
    assert sibling_reaches("def f(self):\n    self.rows._move_head(1)\n", "x.py")


def test_the_service_is_composed_not_inherited() -> None:
    from tusk.pfs.service import PfsService

    assert PfsService.__bases__ == (object,)
