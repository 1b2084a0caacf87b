#!/usr/bin/python3
"""Writes bindings/qingshui/transport.pyi, the type stub of qingshui.transport.

The module's classes are compiled (pybind11), so editors see no attributes or types unless
a stub declares them. This script reads them from the built extension: the signature that
pybind11 puts first in every method's and property getter's docstring, and the Python
signatures of the module's own functions. Run it after changing bindings/transport_bindings.cpp:

    PYTHONPATH=build/python /usr/bin/python3 scripts/make_stubs.py

tests/python/test_stub.py fails when the committed stub differs from what this writes.
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "bindings" / "qingshui" / "transport.pyi"
_PREFIX = re.compile(r"qingshui\._qingshui\.transport\.")


def _clean(text: str) -> str:
    """pybind11 types -> stub types (classes of this module by their plain names)."""
    text = _PREFIX.sub("", text)
    text = re.sub(r"numpy\.ndarray\[[^\]]*\]", "numpy.ndarray", text)
    return text.replace("List[", "list[").replace("Dict[", "dict[")


def _first_signature(doc: str | None) -> str | None:
    if not doc:
        return None
    line = doc.strip().splitlines()[0]
    return _clean(line) if "(" in line and "->" in line else None


def _summary(doc: str | None) -> str | None:
    """The first line of prose after the signature lines, if any."""
    if not doc:
        return None
    for line in doc.strip().splitlines()[1:]:
        line = line.strip()
        if line and "->" not in line and not line[0].isdigit() and line != "Overloaded function.":
            return line.replace('"""', "'")
    return None


def _method(name: str, obj, indent: str, static: bool = False) -> list[str]:
    doc = getattr(obj, "__doc__", None) or ""
    lines = doc.splitlines()
    numbered = [l.split(". ", 1)[1] for l in lines if re.match(rf"^\d+\. {re.escape(name)}\(", l)]
    sigs = numbered or [l for l in lines if l.startswith(f"{name}(")][:1]
    if not sigs:
        if name == "__init__":
            return []  # no Python constructor: made by the engine only
        return [f"{indent}def {name}(self, *args: Any, **kwargs: Any) -> Any: ..."]
    out = []
    for s in sigs:
        body = _clean(s)[len(name):]
        body = re.sub(r"= <[^>]*>", "= ...", body)
        body = re.sub(r"\(self: [A-Za-z_.]+", "(self", body, count=1)
        if static:
            out.append(f"{indent}@staticmethod")
        elif len(sigs) > 1:
            out.append(f"{indent}@overload")
        out.append(f"{indent}def {name}{body}: ...")
    return out


def _class(cls, indent: str = "") -> list[str]:
    lines = [f"{indent}class {cls.__name__}:"]
    inner = indent + "    "
    doc = (cls.__doc__ or "").strip().splitlines()
    if doc and "(" not in doc[0] and doc[0] != "Members:":
        lines.append(f'{inner}"""{doc[0]}"""')
    if "__members__" in vars(cls):  # a pybind11 enum
        for member in cls.__members__:
            lines.append(f"{inner}{member}: {cls.__name__}")
        lines.append(f"{inner}value: int")
        lines.append(f"{inner}name: str")
        return lines
    for name, value in vars(cls).items():
        if name.startswith("_") and name != "__init__":
            continue
        if inspect.isclass(value):
            lines.extend(_class(value, inner))
        elif isinstance(value, property):
            sig = _first_signature(value.fget.__doc__ if value.fget else None)
            typ = sig.split("->", 1)[1].strip() if sig else "Any"
            lines.append(f"{inner}{name}: {typ}")
        elif isinstance(value, staticmethod):
            lines.extend(_method(name, value.__func__, inner, static=True))
        elif callable(value):
            lines.extend(_method(name, value, inner))
    if len(lines) == 1:
        lines.append(f"{inner}...")
    return lines


def generate() -> str:
    import qingshui.transport as mod
    from qingshui._qingshui import transport as native

    out = [
        '"""Type stub of qingshui.transport, written by scripts/make_stubs.py from the built',
        'extension; do not edit by hand."""',
        "",
        "from __future__ import annotations",
        "",
        "import os",
        "from dataclasses import dataclass",
        "from typing import Any, Dict, Union, overload",
        "",
        "import numpy",
        "import pandas as pd",
        "",
    ]
    for name in sorted(n for n in dir(native) if not n.startswith("_")):
        obj = getattr(native, name)
        if inspect.isclass(obj):
            out.extend(_class(obj))
            out.append("")
        else:
            out.extend(_method(name, obj, ""))
            out.append("")
    # The module's own Python API.
    out.append("@dataclass")
    out.append("class OtisRun:")
    for field, annotation in mod.OtisRun.__annotations__.items():
        out.append(f"    {field}: {annotation if isinstance(annotation, str) else annotation.__name__}")
    for name, value in vars(mod.OtisRun).items():
        if callable(value) and not name.startswith("_"):
            out.append(f"    def {name}{_py_signature(value)}: ...")
    out.append("")
    out.append(f"def run_otis{_py_signature(mod.run_otis)}: ...")
    out.append("")
    out.append("__all__: list[str]")
    return "\n".join(out) + "\n"


def _py_signature(func) -> str:
    sig = inspect.signature(func)
    parts = []
    for p in sig.parameters.values():
        text = p.name
        if p.kind is p.VAR_POSITIONAL:
            text = "*" + text
        elif p.kind is p.VAR_KEYWORD:
            text = "**" + text
        if p.annotation is not p.empty:
            ann = p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", str(p.annotation))
            text += f": {ann}"
        if p.default is not p.empty:
            text += " = ..."
        parts.append(text)
    ret = ""
    if sig.return_annotation is not sig.empty:
        r = sig.return_annotation
        ret = f" -> {r if isinstance(r, str) else getattr(r, '__name__', str(r))}"
    return f"({', '.join(parts)}){ret}"


def main(argv: list[str]) -> int:
    text = generate()
    if "--check" in argv:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            print(f"{OUT} is out of date: run scripts/make_stubs.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
