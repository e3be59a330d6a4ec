"""The public API is pinned: a change to it is a deliberate change to this test.

Every public module's ``__all__`` must equal the names it really offers, so a
name can neither be exported by accident nor forgotten. A module that
re-exports (a package's ``__init__``, the ``analytics`` facade) offers every
public name it binds, imports included; an implementation module offers the
names it defines itself (functions, classes, assignments), not what it
imports for its own use.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import logging
import re
import types

import pytest

import llmreq_mongo
from llmreq_mongo import errors

PUBLIC = {
    "AlreadyExists",
    "DoesNotExist",
    "ExtraMissing",
    "Handle",
    "InvalidCursor",
    "InvalidInput",
    "InvalidLookup",
    "InvalidPayload",
    "LifespanError",
    "LLMClient",
    "LLMClientRequest",
    "LLMClientRequests",
    "LLMReqError",
    "LLMResponse",
    "Manager",
    "MultipleObjectsReturned",
    "NotInitialized",
    "NotUpdated",
    "Page",
    "PayloadTooLarge",
    "QuerySet",
    "RecordedCall",
    "Recorder",
    "RecorderClosed",
    "RecorderError",
    "RecorderFull",
    "RecordRejected",
    "RecordsNotWritten",
    "RecorderStats",
    "RollupResult",
    "ServerUnreachable",
    "ShardKeyConflict",
    "SpillFileMismatch",
    "SpillFileInUse",
    "StorageError",
    "TimestampedDocument",
    "TokenUsage",
    "UnsupportedClient",
    "aggregate_sessions",
    "init",
}

#: Public modules, and whether each is a re-exporting one.
PUBLIC_MODULES = {
    "llmreq_mongo": True,
    "llmreq_mongo.analytics": True,
    "llmreq_mongo.integrations": True,
    "llmreq_mongo.errors": False,
    "llmreq_mongo.embedded": False,
    "llmreq_mongo.pytest_plugin": False,
    "llmreq_mongo.integrations.asgi": False,
    "llmreq_mongo.integrations.fastapi": False,
    "llmreq_mongo.integrations.httpx": False,
}


def _defined_names(module: types.ModuleType) -> set[str]:
    """The public names a module binds at its top level by def, class or assignment.

    A name imported with the redundant alias of PEP 484 (``import x as x``) is
    a deliberate re-export and counts too. A module's logger is not API.
    """
    tree = ast.parse(inspect.getsource(module))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            names.update(a.name for a in node.names if a.asname == a.name)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Try):
            # a definition that depends on an optional import
            handled = [h for handler in node.handlers for h in handler.body]
            for inner in node.body + handled + node.orelse:
                if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    names.add(inner.name)
    return {
        n
        for n in names
        if not n.startswith("_") and not isinstance(getattr(module, n, None), logging.Logger)
    }


def _bound_names(module: types.ModuleType) -> set[str]:
    """Every public name a module offers, imports included, but not submodules.

    A module that imports its names on first use (PEP 562) offers what its
    ``dir()`` lists, each of which must then resolve.
    """
    names = set(dir(module)) if hasattr(module, "__getattr__") else set(vars(module))
    return {
        name
        for name in names
        if not name.startswith("_")
        and not isinstance(getattr(module, name), types.ModuleType)
        and name != "annotations"  # from __future__ import annotations
        and name != "TYPE_CHECKING"
    }


def test_package_exports_exactly_the_public_names() -> None:
    assert set(llmreq_mongo.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(llmreq_mongo, name) is not None


@pytest.mark.parametrize("name", sorted(PUBLIC_MODULES))
def test_all_equals_the_public_names(name: str) -> None:
    module = importlib.import_module(name)
    offered = _bound_names(module) if PUBLIC_MODULES[name] else _defined_names(module)
    assert sorted(module.__all__, key=str.lower) == sorted(offered, key=str.lower)
    for exported in module.__all__:
        assert hasattr(module, exported), exported


def test_star_import_binds_every_public_name() -> None:
    namespace: dict[str, object] = {}
    exec("from llmreq_mongo import *", namespace)
    assert set(namespace) - {"__builtins__"} == PUBLIC
    recorder = importlib.import_module("llmreq_mongo._recording.recorder")
    assert namespace["Recorder"] is recorder.Recorder


def test_a_public_name_is_the_object_it_was_before() -> None:
    from llmreq_mongo._documents import LLMClient

    assert llmreq_mongo.LLMClient is LLMClient
    assert vars(llmreq_mongo)["LLMClient"] is LLMClient  # kept after the first use
    assert llmreq_mongo.errors is errors


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match=r"^module 'llmreq_mongo' has no attribute 'Typo'$"):
        llmreq_mongo.Typo  # type: ignore[attr-defined]  # noqa: B018
    assert not hasattr(llmreq_mongo, "embedded_typo")


def test_the_names_type_checkers_see_are_the_names_imported_on_use() -> None:
    """The ``if TYPE_CHECKING:`` imports and the lazy table name the same objects."""
    tree = ast.parse(inspect.getsource(llmreq_mongo))
    checked = {
        alias.name: node.module
        for branch in tree.body
        if isinstance(branch, ast.If) and ast.unparse(branch.test) == "TYPE_CHECKING"
        for node in branch.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert checked == llmreq_mongo._SOURCES
    assert set(checked) == set(llmreq_mongo.__all__)


def test_every_error_is_importable_from_the_top_level() -> None:
    classes = [n for n in errors.__all__ if isinstance(getattr(errors, n), type)]
    assert set(classes) <= set(llmreq_mongo.__all__)
    for name in classes:
        assert getattr(llmreq_mongo, name) is getattr(errors, name)


_TREE_LINE = re.compile(r"^(?P<indent>[ │├└─]*)(?P<name>\w+)(?: \((?P<extra>[\w, ]+)\))?\s")


def _drawn_tree() -> dict[str, tuple[str, ...]]:
    """Each class of the drawing in errors' docstring, with the bases it is drawn with."""
    doc = errors.__doc__ or ""
    drawing = doc.split("The tree::", 1)[1].split("\n\n", 2)[1]
    parents: list[str] = []
    drawn: dict[str, tuple[str, ...]] = {}
    for line in drawing.splitlines():
        match = _TREE_LINE.match(line.strip("\n")[4:] + " ")
        assert match, f"cannot read the tree line {line!r}"
        depth = len(match["indent"]) // 4
        del parents[depth:]
        extra = tuple(e.strip() for e in (match["extra"] or "").split(",") if e.strip())
        drawn[match["name"]] = (*parents[-1:], *extra)
        parents.append(match["name"])
    return drawn


def test_the_drawn_exception_tree_is_the_real_one() -> None:
    drawn = _drawn_tree()
    classes = {n for n in errors.__all__ if isinstance(getattr(errors, n), type)}
    assert set(drawn) == classes
    for name, bases in drawn.items():
        real = tuple(b.__name__ for b in getattr(errors, name).__bases__)
        expected = bases or ("Exception",)
        assert real == expected, f"{name}: drawn with {expected}, derives from {real}"


def test_every_error_derives_from_the_root_and_has_a_docstring() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        if not isinstance(cls, type):
            continue  # storage_errors, the driver-error mapping
        assert issubclass(cls, errors.LLMReqError), name
        assert cls.__doc__, name
        for base in cls.__bases__:
            assert (
                base is Exception
                or issubclass(base, errors.LLMReqError)
                or (getattr(builtins, base.__name__, None) is base)
            ), f"{name} derives from {base!r}"
