"""The Brian2 names of the objects the backend builds: the same in every trial, every seed and
every build of one network.

Brian2 names the arrays in the code it generates after the object that owns them
(``_array_<owner>_v``, ``_array_<clock>_t``) and caches compiled Cython modules by that code's
text. An object left to Brian2's automatic names (``neurongroup_3``, ``synapses_1``,
``networkoperation_2``, a ``dt=`` argument's ``<owner>_clock_1``) takes the first number free
among every Brian2 object alive in the process, so a second trial built beside the first, or
another seed built before the first was collected, generates different code and Cython compiles
every module again (minutes per trial on a large network). So every object gets a name from its
IR node here.

A name is ``evospike_<kind><index>_<slug>[_<part>]``: ``index`` is the node's place in its
network collection (unique even where two IR names give one slug), ``slug`` the IR name's
letters and digits (Brian2 names are identifiers: ``[_A-Za-z][_A-Za-z0-9]*``; a run of any
other characters becomes one ``_``, so no ``__``, reserved in C++), and ``part`` tells the
objects of one node apart (``clock``, ``counter``, ``reward0``...)."""

from __future__ import annotations

import re

from evospike.ir.network import Network

#: name prefix -> the Network field whose node it names
KINDS = {"pop": "populations", "src": "sources", "proj": "projections", "proc": "processes",
         "input": "inputs", "trace": "state_monitors", "weights": "weight_monitors"}

#: longest slug taken from an IR name (the index keeps names unique)
SLUG_CHARS = 40

_IDENTIFIER = re.compile(r"[_A-Za-z][_A-Za-z0-9]*")


def slug(text: str) -> str:
    """``text`` as letters, digits and single underscores ('' when nothing is left)."""
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:SLUG_CHARS].rstrip("_")


def object_name(kind: str, net: Network, node: str, part: str = "") -> str:
    """The Brian2 name of IR node ``node`` (of field ``KINDS[kind]`` of ``net``), or of its
    object ``part``: the same in every trial."""
    if kind not in KINDS:
        raise ValueError(f"object_name: kind {kind!r} is not one of {sorted(KINDS)}")
    nodes = list(getattr(net, KINDS[kind]))
    if node not in nodes:
        raise ValueError(f"object_name: network '{net.name}' has no {KINDS[kind]} entry "
                         f"'{node}'")
    pieces = [f"evospike_{kind}{nodes.index(node)}", slug(node), slug(part)]
    name = "_".join(p for p in pieces if p)
    if not _IDENTIFIER.fullmatch(name):  # the pieces cannot produce this; Brian2 would refuse
        raise ValueError(f"object_name: {name!r} is not a valid Brian2 name")
    return name


def clock_for(b2, owner: str, dt, step_clock):
    """The clock of an object that runs every ``dt``: the step clock itself when ``dt`` is one
    step, or else a clock named after ``owner`` (not Brian2's ``<owner>_clock_<n>``)."""
    if abs(float(dt / step_clock.dt) - 1.0) < 1e-12:
        return step_clock
    return b2.Clock(dt, name=f"{owner}_clock")
