"""The generated fast path of each cached function.

For a call whose arguments are all ``int``, ``str``, ``bytes`` or ``None``, the tuple of
arguments itself is the memory key, so a hit is one dict subscript plus the expiry and
epoch comparisons: no key string is built and no lock is taken. The code is generated once
per function, at decoration time, for its exact parameters (bound by name, so the call
needs neither an ``*args`` tuple nor a ``**kwargs`` dict), from one template in which the
sync ``__call__`` and the async ``probe`` share the same lookup text. What the generated
functions read (the shelf, the epoch, the clock...) are globals of their own namespace,
rebound when the function binds to a cache: a global costs only where it is read, while
every call copies each closure cell it uses into its frame.

Freshness options change nothing here: an entry recomputed ahead of expiry has its
``deadline`` at ``refresh_from`` (so a hit far from expiry is the same comparison), and a
function with any of them sends every call the probe does not serve (a miss, or an entry
past its deadline) through the compute flow, which asks the judge.

A memory-only miss is inlined (``_LEAN_MISS``): compute, then one entry and one store.
Otherwise, on a miss the generated ``__call__`` asks the core to look in the shared tiers and start
the computation (``miss_begin``), calls the user's function itself and hands the value to
``miss_end``: while the function runs, the only frame of cacheplug's on the stack is that
``__call__`` (a recursive cached function pays 2 recursion levels per call: the wrapper
object's call and its ``__call__``).
"""

from __future__ import annotations

import functools
import itertools
import sys
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import flight
from . import invalidation as inv
from .cache import stampede
from .cache.calls import _EMPTY_SHELF, Pending
from .cache.flow import arun, run
from .envelope import Entry
from .histogram import SAMPLES_MAX

if TYPE_CHECKING:
    from .cache import Cache
    from .cache.calls import Binding
    from .core import _CoreBase
    from .decorator import _Core

__all__ = ["make_call"]

_EMPTY = _EMPTY_SHELF
_NO_EPOCH = (-1,)
_NA = type("_NotGiven", (), {"__repr__": lambda self: "<not given>"})()
_FAST_TYPES = frozenset({int, str, bytes, type(None)})
_UNCOUNTED = itertools.count()

# Whether generated fast paths time 1 in SAMPLE_EVERY memory hits (the benchmarks build one
# without, to measure what the recording costs). The hit compares the hit counter's value
# with ``sample_at`` (a compact-int comparison, a few ns); timing every hit would cost ~70%.
RECORD_HITS = True
SAMPLE_EVERY = 64
_NEVER = 1 << 62
# What a learning cache's hit path counts up to on an entry between two ticks of its learner.
HITS_MAX = 256


def _abort(pending: Pending) -> None:
    """A computation raised: stop capturing its reads (nothing is stored), count the error,
    tell the callers waiting for it (called while the exception is being handled)."""
    inv.capture_end(pending.token)
    pending.binding.meter.errors.add()
    if pending.mark is not None or pending.lease is not None:
        stampede.land(pending, error=sys.exc_info()[1])


def _indent_text(text: str, spaces: int) -> str:
    return "".join(" " * spaces + line if line.strip() else line for line in text.splitlines(True))


_CHECK = """\
if entry.deadline > clock() and (
    entry.seq == epoch[0] or (fresh[1] == epoch[0] and entry.seq >= fresh[0]) or recheck(entry)
):
    entry.ref = True
    {count}
    if active and capturing() is not None:
        note_hit(entry)
    {found}
"""

_PROBE = (
    """\
entry = shelf.get(args)
if entry is None:
    {absent}
"""
    + _CHECK
)

# The sync call: a hit returns from the probe; a miss (absent or stale) computes right
# here, so no thunk or coordinator frame sits between the caller and the function.
# The memory-only miss of a function without tag templates, cache_if or middleware on
# misses (``lean``, decided when the function binds): the compute flow's one other copy,
# inlined so that a miss costs two Python calls besides the function (the entry's and the
# tier's). Anything unusual -- the function read cached values, an invalidation came while
# it ran, another caller stored the key meanwhile, an enclosing computation captures --
# goes to ``lean_end``, which finishes as the flow does.
_LEAN_MISS = """\
if lean:
    __cp_shelf = shelf
    __cp_seq = epoch[0]
    __cp_start = clock()
{claim}\
    __cp_bucket = []
    __cp_token = capture_set(__cp_bucket)
    active.append(None)
    try:
        __cp_value = func(*args)
    except BaseException as __cp_exc:
        next_(misses)
        next_(errors)
{land_error}\
        raise
    finally:
        active.pop()
        capture_reset(__cp_token)
    next_(misses)
    __cp_now = clock()
    record(__cp_now - __cp_start)
    if __cp_bucket or active or epoch[0] != __cp_seq or args in __cp_shelf or judge.cutoff > __cp_start:
        lean_end(args, __cp_value, __cp_shelf, __cp_seq, __cp_start, __cp_bucket)
    else:
        put(__cp_shelf, args, ENTRY(
            __cp_value, __cp_now, None if ttl is None else __cp_now + ttl, __cp_seq, base_tags,
            __cp_now - __cp_start,
        ))
{land}\
    return __cp_value
"""

# Single-flight in the lean miss (cacheplug.flight): claim the key with a mark (a list and
# a dict operation; a second caller of the key goes the general way, which waits for this
# computation), pop it when done; only a mark someone joined or replaced costs more. The
# mark's owner is left out (None): a caller meeting it finds out whether it is the owner
# itself (a recursive call) by looking for this frame below its own (stampede._computing_here).
_LEAN_FLIGHT = {
    "claim": """\
    __cp_mark = [None, __cp_seq, __cp_start, None]
    if marks.setdefault(args, __cp_mark) is not __cp_mark:
        return contended(args)
""",
    "land_error": """\
        if (__cp_popped := marks.pop(args, None)) is not __cp_mark or __cp_mark[3]:
            lean_land(args, __cp_mark, __cp_popped, __cp_exc)
""",
    "land": """\
    if (__cp_popped := marks.pop(args, None)) is not __cp_mark or __cp_mark[3]:
        lean_land(args, __cp_mark, __cp_popped, None)
""",
}

_SYNC_PROBE = (
    # .get() costs a hit a few ns more than a subscript, and spares every miss a KeyError
    # (about 300 ns). Every 64th hit times one more lookup of its key (``sampled``).
    """\
entry = shelf.get(args)
if entry is not None:
"""
    + _indent_text(_CHECK, 4)
    + _LEAN_MISS
    + """\
__cp_pending = miss(args)
if type(__cp_pending) is not PENDING:
    return __cp_pending  # served by a shared tier (or the general path, before binding)
try:
    __cp_value = func(*args)
except BaseException:
    miss_abort(__cp_pending)
    raise
return miss_end(__cp_pending, __cp_value)
"""
)

_TEMPLATE = """\
def build():
    def rebind(
        new_shelf, new_epoch, new_clock, new_hits, new_recheck, new_fresh, new_lean=None, new_meter=None
    ):
        # The names the calls read are globals of this function's own namespace, not cells:
        # a call copies every cell it uses into its frame, a hit included; a global costs
        # only where it is read. They are written one by one: the empty shelf first and the
        # new shelf last, so a concurrent hit never pairs an entry of one cache with the epoch
        # of another.
        global shelf, epoch, clock, hits, recheck, fresh, lean, misses, put, ttl, base_tags, judge
        global errors, record, timer, samples, drain, sample_at, marks, lean_land
        shelf = EMPTY
        lean = False
        epoch, clock, hits, recheck, fresh = new_epoch, new_clock, new_hits, new_recheck, new_fresh
        if new_meter is not None:
            timer, samples, drain, sample_at = new_meter
        if new_lean is not None:
            misses, errors, record, put, ttl, base_tags, judge, marks, lean_land = new_lean
        shelf = new_shelf
        lean = new_lean is not None

    def sampled(args, n):
        # The hit counter reached sample_at (every 64th hit): how long the lookup takes,
        # timed once more on the cache's timer (the same lookup and checks, not counted).
        global sample_at
        sample_at = n + SAMPLE_EVERY
        started = timer()
        timed_probe(args)
        samples.append(timer() - started)
        if len(samples) >= SAMPLES_MAX:
            drain()

    def timed_probe(args):
{timed_probe_8}
        return None

{call_def}

    def probe(args):
{unpack_4}
        if {typecheck}:
{probe_entry_12}
        return None

    async def _acall(args, kwargs):
        if not kwargs and len(args) == {n}:
            entry = probe(args)
            if entry is not None:
                return entry.value
        flow = start(args, kwargs)
        if flow is None:
            return await func(*args, **kwargs)
        return await adrive(flow, func, args, kwargs)

    def __acall__(self, *args, **kwargs):
        return _acall(args, kwargs)

    return __call__, __acall__, rebind
"""

# The function's own parameter names, each defaulting to NA: a call binds exactly as the
# function's would (positional or keyword), the interpreter builds neither an *args tuple
# nor a **kwargs dict, and a missing argument shows up as NA, which is not a fast type.
_NAMED_CALL = """\
    def __call__(__cp_self, {params}):
        if {typecheck}:
            args = ({names_tuple})
{probe_return_12}
        __cp_args, __cp_kwargs = split_values(({names_tuple}))
        __cp_flow = start(__cp_args, __cp_kwargs)
        if __cp_flow is None:
            return func(*__cp_args, **__cp_kwargs)
        return drive(__cp_flow, func, __cp_args, __cp_kwargs)"""

# Fallback when a parameter name would shadow a name of the template.
_POSITIONAL_CALL = """\
    def __call__(__cp_self, {params}*rest, **kwargs):
        if not kwargs and not rest and {typecheck}:
            args = ({names_tuple})
{probe_return_12}
        __cp_args = ({names_tuple})[: ({present})] + rest
        __cp_flow = start(__cp_args, kwargs)
        if __cp_flow is None:
            return func(*__cp_args, **kwargs)
        return drive(__cp_flow, func, __cp_args, kwargs)"""

_TEMPLATE_NAMES = frozenset({
    "func", "start", "drive", "adrive", "split_values", "miss", "miss_end", "miss_abort", "PENDING",
    "active", "capturing", "note_hit", "FAST", "EMPTY", "NO_EPOCH", "NA", "next_", "counter",
    "shelf", "epoch", "clock", "hits", "rebind", "probe", "args", "entry", "type", "recheck",
    "bool", "float", "fresh", "BaseException", "kwargs", "rest", "ENTRY", "capture_set",
    "capture_reset", "lean_end", "lean", "misses", "put", "ttl", "base_tags", "None", "judge",
    "errors", "record", "timer", "samples", "drain", "sampled", "timed_probe", "SAMPLES_MAX", "len",
    "sample_at", "SAMPLE_EVERY", "n", "marks", "lean_land", "contended",
})  # fmt: skip


def lean_cells(core: _CoreBase, cache: Cache, binding: Binding) -> tuple[Any, ...] | None:
    """What the inlined memory-only miss (``_LEAN_MISS``) needs, or ``None`` where it must not run.

    It runs for a memory-only cache whose misses no middleware observes, for a function
    without tag templates, ``cache_if`` or freshness options (the compute flow acts on those
    entries past their deadline), whose entries are stored (ttl not 0).
    """
    ttl = core.ttl if core.ttl is not None else cache.default_ttl
    memory = cache.memory
    if (
        memory is None
        or cache.tiering.lower
        or not cache.chains.quiet_miss
        or not core.untagged
        or core.cache_if is not None
        or core.freshness is not None
        or ttl == 0
    ):
        return None
    meter = binding.meter
    flights = binding.flights
    return (
        binding.misses.counter, meter.errors.counter, meter.compute.record, memory.put, ttl,
        binding.base_tags, cache.judge, flights.marks if flights is not None else {},
        functools.partial(stampede.land_lean, cache, binding),
    )  # fmt: skip


def meter_cells(cache: Cache, binding: Binding) -> tuple[Any, ...]:
    """What the sampled hit (``sampled`` in the template) needs: the timer and the histogram."""
    histogram = binding.meter.latency[0]
    return (cache.timer, histogram.samples, histogram.drain, binding.hits.value + SAMPLE_EVERY - 1)


def _indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line if line else line for line in text.splitlines())


@functools.lru_cache(maxsize=256)
def _compiled(source: str) -> types.CodeType:
    """The code of one template instance: functions of one shape share it (compiling is
    most of a decoration's cost); each gets its own names when it is built."""
    return compile(source, stampede.FAST_PATH_FILE, "exec")


def make_call(core: _Core) -> Callable[..., Any]:
    """Build the ``__call__`` of one function's wrapper class (decided once, here).

    The fast path is generated for the function's exact number of parameters (the
    arguments are unpacked and their types checked without a loop) from one template, in
    which the sync ``__call__`` and the async ``probe`` share the same lookup text.
    """
    func = core.func
    start = core.start
    if not core.fast:
        # The wrapper's frame starts the flow and the driver's calls the function: 2 frames.

        def __call__(self: Any, *args: Any, **kwargs: Any) -> Any:
            flow = start(args, kwargs)
            if flow is None:
                return func(*args, **kwargs)
            return run(flow, func, args, kwargs)

        async def __acall__(self: Any, *args: Any, **kwargs: Any) -> Any:
            flow = start(args, kwargs)
            if flow is None:
                return await func(*args, **kwargs)
            return await arun(flow, func, args, kwargs)

        return __acall__ if core.is_async else __call__
    plain = _build(core, learning=False)
    core.rebind = _variants(core, plain)
    return plain[1] if core.is_async else plain[0]


def _variants(core: _Core, plain: tuple[Callable[..., Any], ...]) -> Callable[..., None]:
    """The function's ``rebind``, choosing which generated fast path its class calls.

    A cache that learns usage (``Cache(learn=True)``) needs every memory hit to bump the
    entry's ``hits``; the other caches must not pay for it, so that fast path is a second
    build of the template (made on the first bind to a learning cache) and binding swaps the
    class's ``__call__``. The variant left is unbound first: a call already inside it finds
    the empty shelf and takes the general path.
    """
    built = {False: plain}
    current = [False]

    def rebind(*cells: Any, learning: bool = False) -> None:
        if cells[0] is _EMPTY or learning is current[0]:
            built[current[0]][2](*cells)  # unbinding, or the same variant: no swap
            return
        built[current[0]][2](_EMPTY, _NO_EPOCH, float, _UNCOUNTED, bool, [0, -1])
        chosen = built.get(learning)
        if chosen is None:
            chosen = built[learning] = _build(core, learning=learning)
        proxy = core.proxy() if core.proxy is not None else None
        if proxy is not None:
            type(proxy).__call__ = chosen[1] if core.is_async else chosen[0]
        current[0] = learning
        chosen[2](*cells)

    return rebind


def _build(
    core: _Core, *, learning: bool
) -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., None]]:
    """The generated ``__call__``, ``__acall__`` and ``rebind`` of one function (see make_call).

    ``learning``: every memory hit also bumps the entry's ``hits`` (a cache that learns usage).
    """
    func = core.func
    start = core.start
    n = core.nparams
    named = not (_TEMPLATE_NAMES & set(core.names)) and not any(x.startswith("__") for x in core.names)
    names = list(core.names) if named else [f"a{i}" for i in range(n)]
    typecheck = " and ".join(f"type({a}) in FAST" for a in names) or "True"
    count = (
        "__cp_n = next_(hits)\nif __cp_n >= sample_at:\n    sampled(args, __cp_n)"
        if RECORD_HITS
        else "next_(hits)"
    )
    if learning:
        # Saturating at HITS_MAX (the learner zeroes it every tick): CPython's small ints go
        # up to 256, so counting allocates nothing, whatever the hit rate.
        count = f"if entry.hits < {HITS_MAX}:\n    entry.hits += 1\n" + count
    flight_lines = _LEAN_FLIGHT if flight.ENABLED else dict.fromkeys(_LEAN_FLIGHT, "")
    probe_return = _indent(
        _SYNC_PROBE.format(found="return entry.value", count=_indent(count, 8).lstrip(), **flight_lines), 12
    )
    if named:
        call_def = _NAMED_CALL.format(
            params=", ".join(f"{a}=NA" for a in names),
            typecheck=typecheck,
            names_tuple="".join(f"{a}, " for a in names),
            probe_return_12=probe_return,
        )
    else:
        call_def = _POSITIONAL_CALL.format(
            params="".join(f"{a}=NA, " for a in names) + ("/, " if n else ""),
            typecheck=typecheck,
            names_tuple="".join(f"{a}, " for a in names),
            present="".join(f"{i} if {a} is NA else " for i, a in enumerate(names)) + str(n),
            probe_return_12=probe_return,
        )
    unpack = f"{', '.join(names)}, = args" if n else "pass"
    source = _TEMPLATE.format(
        n=n,
        call_def=call_def,
        typecheck=typecheck,
        unpack_4=_indent(unpack, 8),
        # The async hit counts (and takes its 1-in-64 timed lookup) in the probe.
        probe_entry_12=_indent(
            _PROBE.format(found="return entry", absent="return None", count=_indent(count, 4).lstrip()), 12
        ),
        timed_probe_8=_indent(_PROBE.format(found="return entry", absent="return None", count="pass"), 8),
    )
    counter = itertools.count()
    namespace: dict[str, Any] = {
        "func": func,
        "start": start,
        "drive": run,
        "adrive": arun,
        "split_values": core.split_values,
        "miss": core.miss_begin,
        "miss_end": core.miss_end,
        "miss_abort": _abort,
        "PENDING": Pending,
        "active": inv.ACTIVE,
        "capturing": inv.CAPTURE.get,
        "note_hit": core.note_hit,
        "FAST": _FAST_TYPES,
        "EMPTY": _EMPTY,
        "NO_EPOCH": _NO_EPOCH,
        "NA": _NA,
        "next_": next,
        # What rebind() sets (unbound: every call takes the general path).
        "shelf": _EMPTY,
        "epoch": _NO_EPOCH,
        "clock": float,
        "hits": counter,
        "recheck": bool,
        "fresh": [0, -1],
        "lean": False,
        "misses": counter,
        "put": None,
        "ttl": None,
        "base_tags": (),
        "sample_at": _NEVER,
        "judge": None,
        "ENTRY": Entry,
        "capture_set": inv.CAPTURE.set,
        "capture_reset": inv.CAPTURE.reset,
        "lean_end": core.lean_end,
        "marks": {},
        "lean_land": None,
        "contended": core.contended,
        "errors": counter,
        "record": float,
        "timer": float,
        "samples": [],
        "drain": float,
        "SAMPLES_MAX": SAMPLES_MAX,
        "SAMPLE_EVERY": SAMPLE_EVERY,
    }
    exec(_compiled(source), namespace)
    sync_call, async_call, rebind = namespace["build"]()
    # Argument errors raised by the interpreter name the user's function, not the template.
    sync_call.__code__ = sync_call.__code__.replace(co_name=func.__name__, co_qualname=func.__qualname__)
    sync_call.__name__, sync_call.__qualname__ = func.__name__, func.__qualname__
    return sync_call, async_call, rebind
