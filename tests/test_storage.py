"""Storage mechanics: nothing is read or connected at import; the modules' imports have no cycles."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

_PROBE = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from chalicelib import config

    def refuse(*args, **kwargs):
        raise AssertionError("the settings were read at import")

    config.get_settings = refuse
    from pynamodb.connection import base
    real_init = base.Connection.__init__

    def no_connection(self, *args, **kwargs):
        raise AssertionError("a connection was made at import")

    base.Connection.__init__ = no_connection
    import {module}
    base.Connection.__init__ = real_init
    print("imported")
""")


@pytest.mark.parametrize("module", ["chalicelib.models", "chalicelib.storage", "app"])
def test_importing_reads_no_settings_and_makes_no_connection(module):
    """A fresh interpreter without any of the service's settings in its environment imports the
    models, the storage and the whole app: the settings are read, and the connection made, on
    first use (with STAGE unset and no PUBLIC_BASE_URL, reading the settings would fail too)."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("STAGE", "TABLE_PREFIX", "PUBLIC_BASE_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_REGION",
                          "AWS_DEFAULT_REGION", "ADMIN_TOKEN", "SIGNING_SECRET", "MAIL_BACKEND", "MAIL_DELIVERY")}
    result = subprocess.run([sys.executable, "-c", _PROBE.format(root=str(ROOT), module=module)],
                            cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "imported"


def test_the_models_table_names_follow_the_settings(monkeypatch):
    """Table names are read when used: a changed TABLE_PREFIX (with the settings read again) is
    the table the model uses next."""
    from chalicelib import config
    from chalicelib.models import Meetup
    before = Meetup.Meta.table_name
    monkeypatch.setenv("TABLE_PREFIX", "elsewhere-")
    config.get_settings.cache_clear()
    try:
        assert Meetup.Meta.table_name == "elsewhere-meetups"
        assert Meetup._get_connection().table_name == "elsewhere-meetups"
    finally:
        monkeypatch.undo()
        config.get_settings.cache_clear()
    assert Meetup.Meta.table_name == before


def test_one_connection_serves_every_model_and_every_transaction():
    from chalicelib import storage
    from chalicelib.models import ALL_MODELS
    shared = storage.connection()
    assert all(model._get_connection().connection is shared for model in ALL_MODELS)
    assert storage.Transaction()._tx._connection is shared


def test_the_first_use_on_many_threads_at_once_makes_one_connection():
    """A sign-up rush runs many requests at once in one process: the first uses race."""
    from concurrent.futures import ThreadPoolExecutor

    from chalicelib import storage
    from chalicelib.models import ALL_MODELS
    storage._shared = None  # as in a fresh process
    with ThreadPoolExecutor(max_workers=16) as pool:
        made = set(pool.map(lambda model: id(model._get_connection().connection), list(ALL_MODELS) * 8))
    assert len(made) == 1


def test_conditional_tells_a_failed_condition_from_a_storage_failure():
    import secrets

    from pynamodb.exceptions import PynamoDBException

    from chalicelib import clock
    from chalicelib.errors import ServiceUnavailable
    from chalicelib.models import AdminToken
    from chalicelib.storage import conditional
    token = AdminToken(token_hash=secrets.token_hex(32), name="conditional", created_at=clock.stamp(clock.now()))
    try:
        assert conditional(lambda: token.save(condition=AdminToken.token_hash.does_not_exist())) is True
        assert conditional(lambda: token.save(condition=AdminToken.token_hash.does_not_exist())) is False

        def unreachable():
            raise PynamoDBException("the endpoint is unreachable")

        with pytest.raises(ServiceUnavailable):
            conditional(unreachable)
    finally:
        token.delete()


# --- import cycles --------------------------------------------------------------------------------

# Cycles that were there before this test, through imports inside functions: each one is a debt
# to pay off the way chalicelib.meetup_changes paid off catalogue -> registration/jobs (a module
# above both sides holds the orchestration). The test fails on any cycle not listed here, and on a
# listed edge that is no longer on a cycle, so that the list only shrinks.
KNOWN_CYCLE_EDGES = {
    # privacy's erasure and links use the roster's mail; the roster and the outbox hash addresses
    # with privacy.address_hash; privacy's backfill fills in the digest's organisers.
    ("chalicelib.digest", "chalicelib.privacy"), ("chalicelib.privacy", "chalicelib.digest"),
    ("chalicelib.outbox", "chalicelib.privacy"), ("chalicelib.privacy", "chalicelib.outbox"),
    ("chalicelib.privacy", "chalicelib.registration"), ("chalicelib.registration", "chalicelib.privacy"),
    # the outbox composes a waitlisted email's place with the roster; the roster queues mail
    ("chalicelib.outbox", "chalicelib.registration"), ("chalicelib.registration", "chalicelib.outbox"),
    # theme tables: the roster seats people, the tables re-seat the roster's people and mail them
    ("chalicelib.registration", "chalicelib.theme_tables"), ("chalicelib.theme_tables", "chalicelib.registration"),
    ("chalicelib.theme_tables", "chalicelib.outbox"),
    # a handover starts the invitations job; the job invites through the handover
    ("chalicelib.handover", "chalicelib.jobs"), ("chalicelib.jobs", "chalicelib.handover"),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Every chalicelib module's chalicelib imports, at module level or inside functions."""
    paths = {_module_name(p): p for p in (ROOT / "chalicelib").rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names if alias.name in paths)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                for alias in node.names:
                    if f"{base}.{alias.name}" in paths:
                        deps.add(f"{base}.{alias.name}")
                    elif base in paths and base != "chalicelib":
                        deps.add(base)
        graph[name] = deps - {name}
    return graph


def _cycle_edges(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """The edges that lie on a cycle: those within one strongly connected component."""
    index, low, on_stack, stack, component = {}, {}, set(), [], {}
    counter = [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component[member] = node
                if member == node:
                    break

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return {(a, b) for a, deps in graph.items() for b in deps if component[a] == component[b]}


def test_the_import_walk_sees_imports_inside_functions():
    graph = _imports()
    assert "chalicelib.registration" in graph["chalicelib.meetup_changes"]
    assert "chalicelib.storage" in graph["chalicelib.outbox"]


def test_the_catalogue_imports_neither_the_roster_nor_the_jobs():
    graph = _imports()
    assert not graph["chalicelib.catalogue"] & {"chalicelib.registration", "chalicelib.jobs",
                                                "chalicelib.meetup_changes"}


def test_storage_and_models_sit_below_every_domain_module():
    graph = _imports()
    # clock: a leaf (standard library only) for the activity keys' time stamps
    assert graph["chalicelib.models"] <= {"chalicelib.clock", "chalicelib.config", "chalicelib.statuses"}
    assert graph["chalicelib.statuses"] == set()
    assert graph["chalicelib.storage"] <= {"chalicelib.clock", "chalicelib.config", "chalicelib.errors",
                                           "chalicelib.messages", "chalicelib.models", "chalicelib.statuses"}


def test_no_import_cycles():
    edges = _cycle_edges(_imports())
    new = sorted(edges - KNOWN_CYCLE_EDGES)
    gone = sorted(KNOWN_CYCLE_EDGES - edges)
    assert not new, f"import cycles (module -> module it imports, also inside functions): {new}"
    assert not gone, f"no longer on a cycle, remove from KNOWN_CYCLE_EDGES: {gone}"
