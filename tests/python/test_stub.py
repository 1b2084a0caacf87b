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


def test_transport_stub_is_what_make_stubs_writes():
    """qingshui/transport.pyi declares the compiled classes' attributes and signatures;
    it is generated from the built extension and must not drift from it."""
    import importlib.util
    import sys

    script = Path(__file__).resolve().parents[2] / "scripts" / "make_stubs.py"
    spec = importlib.util.spec_from_file_location("make_stubs", script)
    make_stubs = importlib.util.module_from_spec(spec)
    sys.modules["make_stubs"] = make_stubs
    spec.loader.exec_module(make_stubs)
    committed = make_stubs.OUT.read_text(encoding="utf-8")
    assert committed == make_stubs.generate(), "run scripts/make_stubs.py"
    tree = ast.parse(committed)
    classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    assert {"TransportProblem", "TransportSolver", "TransportResult", "Segment"} <= classes
