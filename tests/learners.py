"""The public estimators the common and robustness tests enrol, and how.

Every class in ``linmetric.__all__`` that is a scikit-learn estimator is
enrolled, so a new learner needs no edit in the tests; a constructor with
required parameters takes them from ``REQUIRED_ARGUMENTS``.
"""

import inspect

from sklearn.base import BaseEstimator

import linmetric
from linmetric import MetricLearner

# Arguments for constructors that have required parameters.
REQUIRED_ARGUMENTS = {
    "estimator": lambda: linmetric.LMNN(),
    "learner": lambda: linmetric.ITML(),
}


def public_classes():
    """The public estimator classes (the abstract MetricLearner aside)."""
    return [
        obj
        for name in linmetric.__all__
        if isinstance(obj := getattr(linmetric, name), type)
        and issubclass(obj, BaseEstimator)
        and obj is not MetricLearner
    ]


def required_arguments(cls):
    """Fresh values for the required parameters of ``cls``'s constructor."""
    return {
        name: REQUIRED_ARGUMENTS[name]()
        for name, param in inspect.signature(cls).parameters.items()
        if param.default is inspect.Parameter.empty
        and param.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    }
