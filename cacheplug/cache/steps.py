"""I/O steps, and the sync twin generated from each step generator.

The tiering and the compute flow are written once, as generators that *yield* their I/O
steps: ``(GET, tier, key, None)``, ``(SET, tier, key, entry)``, ``(DELETE, tier, key, None)``
and ``(CHAINED, chain, (sub_flow, awaits), op)``. The async driver awaits them. Driving a
generator costs about half a microsecond per call, which a disk hit (about 7 µs) notices, so
the sync driver's hot paths call a *twin* instead: a plain function compiled at import time
from the generator's own source, in which each ``yield`` of a step is the call the sync
driver would make (``tier.get(key)``, ``versions.bump(tags)``, a store that hands back a
``SerializationError`` instead of raising it, the chain with the sub-flow's twin as its
terminal) and each
``yield from x.f(...)`` is ``x.f_now(...)``. The text exists once; the twin is generated
from it, and tests/test_flow.py checks both drivers agree.
"""

from __future__ import annotations
import __future__

import ast
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

from ..errors import SerializationError
from ..middleware import Op

__all__ = [
    "BACKGROUND",
    "CHAINED",
    "COMPUTE",
    "DELETE",
    "GET",
    "RECORD",
    "SET",
    "WAIT",
    "sync_twin",
    "with_run",
]

GET, SET, DELETE, COMPUTE, CHAINED = "get", "set", "delete", "compute", "chained"
# (RECORD, versions, tags, None): record an invalidation in a version store (``bump``).
RECORD = "record"
# (WAIT, wait, arg, await_): wait for something another caller holds (a computation in
# flight, a host lease). The sync driver answers ``wait(arg)``, the async one
# ``await await_(arg)``, or ``wait(arg)`` in a worker thread when ``await_`` is None.
WAIT = "wait"
# (BACKGROUND, pool, key, refresh flow): run a refresh in the cache's background pool (the
# compute flow's drivers only; no step generator with a sync twin yields it).
BACKGROUND = "background"


def set_now(tier: Any, key: str, entry: Any) -> SerializationError | None:
    """A store as the sync driver makes it: a value that cannot be serialized is the answer."""
    try:
        tier.set(key, entry)
    except SerializationError as exc:
        return exc
    return None


def with_run(op: Op, run: Callable[[], Any]) -> Op:
    """``op`` with its terminal's work (the op is new and not yet seen by any middleware)."""
    object.__setattr__(op, "run", run)
    return op


def chained_now(chain: Callable[[Op], Any], run: Callable[[], Any], op: Op) -> Any:
    """A sub-flow run as the terminal of a middleware chain, synchronously."""
    return chain(with_run(op, run))


_HELPERS = {"__cp_set_now": set_now, "__cp_chained_now": chained_now}


def _call(func: ast.expr, *args: ast.expr) -> ast.Call:
    return ast.Call(func=func, args=list(args), keywords=[])


def _twin_call(call: ast.expr) -> ast.Call:
    """``x.f(args)`` as ``x.f_now(args)`` (a sub-flow's twin)."""
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
        raise TypeError(f"a sync twin can only follow a method's sub-flow, not {ast.unparse(call)}")
    return ast.Call(
        func=ast.Attribute(value=call.func.value, attr=call.func.attr + "_now", ctx=ast.Load()),
        args=call.args,
        keywords=call.keywords,
    )


class _Steps(ast.NodeTransformer):
    def visit_Yield(self, node: ast.Yield) -> ast.expr:
        step = node.value
        if not (isinstance(step, ast.Tuple) and len(step.elts) == 4 and isinstance(step.elts[0], ast.Name)):
            raise TypeError(f"a sync twin needs (KIND, a, b, c) steps, not {ast.unparse(node)}")
        kind, a, b, c = step.elts
        assert isinstance(kind, ast.Name)
        if kind.id == "GET":
            return _call(ast.Attribute(value=a, attr="get", ctx=ast.Load()), b)
        if kind.id == "DELETE":
            return _call(ast.Attribute(value=a, attr="delete", ctx=ast.Load()), b)
        if kind.id == "RECORD":
            return _call(ast.Attribute(value=a, attr="bump", ctx=ast.Load()), b)
        if kind.id == "SET":
            return _call(ast.Name(id="__cp_set_now", ctx=ast.Load()), a, b, c)
        if kind.id == "CHAINED" and isinstance(b, ast.Tuple):
            run = ast.Lambda(
                args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[]),
                body=_twin_call(b.elts[0]),
            )
            return _call(ast.Name(id="__cp_chained_now", ctx=ast.Load()), a, run, c)
        raise TypeError(f"no sync twin for the step {ast.unparse(node)}")

    def visit_YieldFrom(self, node: ast.YieldFrom) -> ast.expr:
        return _twin_call(node.value)


def sync_twin(generator: Callable[..., Any]) -> Callable[..., Any]:
    """The plain function generated from the step generator ``generator`` (see above)."""
    source = textwrap.dedent(inspect.getsource(generator))
    tree = ast.parse(source)
    func = tree.body[0]
    if not isinstance(func, ast.FunctionDef):
        raise TypeError(f"{generator.__qualname__} is not a plain generator function")
    func.name = generator.__name__ + "_now"
    func.decorator_list = []
    func.returns = None
    tree = ast.fix_missing_locations(_Steps().visit(tree))
    ast.increment_lineno(tree, generator.__code__.co_firstlineno - 1)
    flags = __future__.annotations.compiler_flag
    code = compile(tree, inspect.getsourcefile(generator) or "<twin>", "exec", flags=flags, dont_inherit=True)
    module_globals = generator.__globals__
    for name, helper in _HELPERS.items():
        module_globals.setdefault(name, helper)
    made: dict[str, Any] = {}
    exec(code, module_globals, made)
    twin: Callable[..., Any] = made[func.name]
    twin.__qualname__ = generator.__qualname__ + "_now"
    return twin
