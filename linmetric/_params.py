"""Declarative checks of constructor parameters.

Each learner lists the values its parameters accept in a class attribute
``_parameter_constraints`` (name -> list of allowed forms) and calls
:func:`validate_params` at the start of ``fit``. The forms read like
scikit-learn's, but the code is linmetric's own: scikit-learn keeps its
version private and free to change.

Allowed forms: ``None``; a type (``int``, ``numbers.Real``, ``np.ndarray``,
...); :class:`Interval`; :class:`StrOptions`; the strings ``"array-like"``,
``"boolean"``, ``"callable"``, ``"random_state"`` and ``"verbose"``.
"""

import numbers

import numpy as np
from sklearn.base import BaseEstimator


class InvalidParameterError(ValueError, TypeError):
    """A constructor parameter has a value outside the documented ones."""


class Interval:
    """Numbers of a given type between two bounds.

    Parameters
    ----------
    kind : type
        ``numbers.Integral`` or ``numbers.Real``.
    low, high : float or None
        Bounds; None means unbounded.
    closed : {'left', 'right', 'both', 'neither'}
        Which bounds belong to the interval. An unbounded side that is
        closed admits the infinity on that side; an open one does not.

    NaN is never inside an interval.
    """

    def __init__(self, kind, low, high, *, closed):
        self.kind = kind
        self.low = low
        self.high = high
        self.closed = closed

    def accepts(self, value):
        if isinstance(value, bool) or not isinstance(value, self.kind):
            return False
        if value != value:  # NaN compares false with every bound
            return False
        if value in (np.inf, -np.inf):
            side = "right" if value > 0 else "left"
            bound = self.high if value > 0 else self.low
            return bound is None and self.closed in (side, "both")
        if self.low is not None:
            if value < self.low or (
                value == self.low and self.closed in ("right", "neither")
            ):
                return False
        if self.high is not None:
            if value > self.high or (
                value == self.high and self.closed in ("left", "neither")
            ):
                return False
        return True

    def __str__(self):
        kind = "an int" if self.kind is numbers.Integral else "a float"
        left = "[" if self.closed in ("left", "both") else "("
        right = "]" if self.closed in ("right", "both") else ")"
        low = "-inf" if self.low is None else self.low
        high = "inf" if self.high is None else self.high
        return f"{kind} in the range {left}{low}, {high}{right}"


class StrOptions:
    """One of a fixed set of strings."""

    def __init__(self, options):
        self.options = frozenset(options)

    def accepts(self, value):
        return isinstance(value, str) and value in self.options

    def __str__(self):
        return "a str among " + ", ".join(repr(o) for o in sorted(self.options))


def _accepts(constraint, value):
    if constraint is None:
        return value is None
    if isinstance(constraint, (Interval, StrOptions)):
        return constraint.accepts(value)
    if constraint == "array-like":
        return hasattr(value, "__array__") or isinstance(value, (list, tuple))
    if constraint == "boolean":
        return isinstance(value, (bool, np.bool_))
    if constraint == "callable":
        return callable(value)
    if constraint == "random_state":
        return value is None or (
            isinstance(
                value, (numbers.Integral, np.random.RandomState, np.random.Generator)
            )
            and not isinstance(value, bool)
        )
    if constraint == "verbose":
        return isinstance(value, (numbers.Integral, bool, np.bool_))
    if isinstance(constraint, type):
        return isinstance(value, constraint) and not (
            isinstance(value, bool)
            and constraint in (int, numbers.Integral, numbers.Real)
        )
    raise TypeError(f"unknown parameter constraint {constraint!r}")


def _describe(constraint):
    if constraint is None:
        return "None"
    if isinstance(constraint, type):
        return f"an instance of {constraint.__name__}"
    if constraint == "random_state":
        return "None, an int or a numpy RandomState"
    if constraint == "verbose":
        return "an int or a bool"
    if constraint == "boolean":
        return "a bool"
    return str(constraint)


# The parameters of a learner that iterates (in this order, last in its
# ``_parameter_constraints``): ``tol`` means what each learner documents.
ITERATION_CONSTRAINTS = {
    "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
    "tol": [Interval(numbers.Real, 0, None, closed="left")],
    "verbose": ["verbose"],
    "callback": ["callable", None],
    "random_state": ["random_state"],
}


def validate_params(estimator):
    """Check every constructor parameter against ``_parameter_constraints``.

    Raises
    ------
    InvalidParameterError
        Naming the parameter, the value received and what it may be.
    """
    params = _shallow_params(estimator)
    for name, constraints in estimator._parameter_constraints.items():
        value = params[name]
        for constraint in constraints:
            if _accepts(constraint, value):
                break
        else:
            allowed = " or ".join(_describe(c) for c in constraints)
            raise InvalidParameterError(
                f"The {name!r} parameter of {type(estimator).__name__} must be "
                f"{allowed}; got {value!r}."
            )


# The constructor parameter names of each class: what get_params(deep=False)
# looks up, without inspecting the signature of __init__ on every fit (a few
# tens of microseconds, a noticeable share of a small fit).
_PARAM_NAMES = {}


def _shallow_params(estimator):
    """``estimator.get_params(deep=False)``, with the names cached per class."""
    cls = type(estimator)
    if getattr(cls, "get_params", None) is not BaseEstimator.get_params:
        return estimator.get_params(deep=False)
    names = _PARAM_NAMES.get(cls)
    if names is None:
        names = _PARAM_NAMES[cls] = tuple(cls._get_param_names())
    return {name: getattr(estimator, name) for name in names}
