"""validate_params reads the parameters get_params(deep=False) would give.

The parameter names of a class are looked up once and cached; the values,
the checks and the messages are those of the constructor's current state.
"""

import numbers

import numpy as np
import pytest
from learners import public_classes, required_arguments
from sklearn.base import BaseEstimator

from linmetric import ITML, LSML, SCML
from linmetric._params import (
    Interval,
    InvalidParameterError,
    _shallow_params,
    validate_params,
)


def _assert_same_params(estimator):
    expected = estimator.get_params(deep=False)
    got = _shallow_params(estimator)
    assert list(got) == list(expected)
    assert all(got[name] is value for name, value in expected.items())


@pytest.mark.parametrize("cls", public_classes(), ids=lambda cls: cls.__name__)
def test_cached_names_give_get_params(cls):
    estimator = cls(**required_arguments(cls))
    for _ in range(2):  # before and after the names are cached
        _assert_same_params(estimator)
    validate_params(estimator)


class _Wider(LSML):
    """A subclass with a parameter of its own."""

    _parameter_constraints = {
        **LSML._parameter_constraints,
        "extra": [Interval(numbers.Integral, 0, None, closed="left")],
    }

    def __init__(self, extra=0, **params):
        super().__init__(**params)
        self.extra = extra

    @classmethod
    def _get_param_names(cls):
        return sorted([*LSML._get_param_names(), "extra"])


class _OwnGetParams(ITML):
    def get_params(self, deep=True):
        return {**super().get_params(deep=deep), "gamma": -1.0}


def test_names_are_cached_per_class_and_values_read_each_time():
    validate_params(LSML())
    wide = _Wider(extra=2, max_iter=3)
    _assert_same_params(wide)
    validate_params(wide)
    wide.set_params(extra=-1)
    with pytest.raises(InvalidParameterError, match=r"'extra' parameter.*got -1\."):
        validate_params(wide)
    # a class that defines its own get_params is asked each time
    with pytest.raises(InvalidParameterError, match=r"'gamma' parameter.*got -1\.0"):
        validate_params(_OwnGetParams())


def test_error_message_names_parameter_rule_and_value():
    with pytest.raises(InvalidParameterError) as error:
        validate_params(SCML(basis=3))
    assert str(error.value) == (
        "The 'basis' parameter of SCML must be a str among 'auto', 'lda', "
        "'triplet_diffs' or array-like; got 3."
    )
    with pytest.raises(InvalidParameterError) as error:
        validate_params(SCML(random_state=True))
    assert str(error.value) == (
        "The 'random_state' parameter of SCML must be None, an int or a numpy "
        "RandomState; got True."
    )
    validate_params(SCML(basis=np.eye(3), random_state=np.random.RandomState(0)))


def test_a_constraint_without_a_parameter_is_a_key_error():
    class Stray(BaseEstimator):
        _parameter_constraints = {"missing": [None]}

        def __init__(self, present=None):
            self.present = present

    with pytest.raises(KeyError, match="missing"):
        validate_params(Stray())
