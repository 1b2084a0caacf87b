"""The package's stub (qingshui/__init__.pyi) declares every public name with the
parameters the implementation takes, so that editors complete and check them."""

import ast
import inspect
from pathlib import Path

import qingshui as qs

STUB = Path(qs.__file__).with_name("__init__.pyi")


def _stub():
    tree = ast.parse(STUB.read_text(encoding="utf-8"))
    names, functions = set(), {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
            if isinstance(node, ast.FunctionDef):
                args = node.args
                functions[node.name] = [a.arg for a in args.args + args.kwonlyargs] + [
                    a.arg for a in (args.vararg, args.kwarg) if a is not None]
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.AnnAssign):
            names.add(node.target.id)
    return names, functions


def test_every_public_name_is_in_the_stub():
    names, _ = _stub()
    assert not set(qs.__all__) - names
    # The submodules an analyst reaches through the package (qs.plot.profile, ...).
    assert {"plot", "forecast", "tracing", "scenario", "transport"} <= names


def test_stub_signatures_match_the_functions():
    _, functions = _stub()
    checked = 0
    for name, params in functions.items():
        try:
            real = inspect.signature(getattr(qs, name))
        except (TypeError, ValueError):
            continue  # a compiled function without a Python signature (normal_depth)
        assert params == list(real.parameters), name
        checked += 1
    assert checked >= 10
