"""Error types. Every error names the object, the field and the offending value."""

from __future__ import annotations


class EvoSpikeError(Exception):
    """Base class for errors a user can act on (bad input, unsupported feature, bad file)."""


class ValidationError(EvoSpikeError, ValueError):
    """An IR node or a DSL call received an invalid value.

    The message always has the form ``<Kind> '<name>': <field> <problem> (got <value>)`` so a
    user can find the line that built the bad object.
    """

    def __init__(self, kind: str, name: str, field: str, problem: str, value: object = None):
        self.kind = kind
        self.name = name
        self.field = field
        self.value = value
        shown = "" if value is None else f" (got {_short(value)})"
        super().__init__(f"{kind} '{name}': {field} {problem}{shown}")


class UnsupportedError(EvoSpikeError, NotImplementedError):
    """A backend cannot carry some nodes of a network; raised before the run, listing them all."""

    def __init__(self, backend: str, reasons: list[str]):
        self.backend = backend
        self.reasons = list(reasons)
        # one line, like every user error: the command line prints it as `evospike: error: ...`
        listed = "; ".join(" ".join(str(r).split()) for r in reasons)
        super().__init__(f"backend '{backend}' cannot run this network: {listed}")


def first_bad(values, bad_mask) -> object:
    """The first offending entry of an array (with its index), for error messages: the whole
    array would be cut short and hide it."""
    import numpy as np

    arr = np.asarray(values)
    mask = np.broadcast_to(np.asarray(bad_mask), arr.shape)
    if arr.ndim == 0:
        return arr.item()
    idx = np.argwhere(mask)
    if idx.size == 0:
        return None
    where = tuple(int(i) for i in idx[0])
    label = where[0] if len(where) == 1 else where
    return f"{arr[where].item()} at index {label}"


def real_number(kind: str, name: str, field: str, value: object) -> float:
    """``value`` as a float. A string, bool or None is refused rather than converted:
    ``float("20")`` or ``True -> 1.0`` would hide a mistake. Range checks are the caller's."""
    import numpy as np

    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                    np.floating)):
        raise ValidationError(kind, name, field,
                              f"must be a real number, not {type(value).__name__}", value)
    return float(value)


def real_array(kind: str, name: str, field: str, value: object):
    """``value`` (a number or a sequence of numbers) as a float64 array; text, bools, None and
    ragged sequences are refused rather than converted."""
    import numpy as np

    problem = "must be a real number or a numeric array"
    if value is None or isinstance(value, (str, bytes, bool, np.bool_)):
        raise ValidationError(kind, name, field, f"{problem}, not {type(value).__name__}", value)
    try:
        arr = np.asarray(value)
    except ValueError:  # ragged nested lists
        raise ValidationError(kind, name, field, f"{problem} (ragged sequence)",
                              value) from None
    if arr.dtype.kind not in "iuf":
        raise ValidationError(kind, name, field, f"{problem}, not an array of {arr.dtype}",
                              value)
    return arr.astype(np.float64, copy=False)  # no copy of a large float64 array


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
