"""The shortcuts of the input checks give what the full checks give.

``validate_X`` and ``check_points`` return arrays that are already dense,
finite, C-contiguous float32 or float64 without scikit-learn's generic
machinery; ``centred_in_units`` computes its extremes and scalings with
cheaper operations. Each is compared here with the path it replaces: the
same array (the same object where the full path returns the input), the same
attributes on the estimator, the same error, the same warnings.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.utils.validation import validate_data

from linmetric import LSML
from linmetric._validation import (
    DENSE_FLOATS,
    _exponent,
    centred_in_units,
    check_points,
    validate_X,
)


def _outcome(call):
    """What ``call()`` returns or raises, and the warnings it emits."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = call()
        except (ValueError, TypeError) as error:
            result = error
    return result, [(w.category, str(w.message)) for w in caught]


def _state(estimator):
    return {
        name: getattr(estimator, name)
        for name in ("n_features_in_", "feature_names_in_")
        if hasattr(estimator, name)
    }


def _assert_same(X, *, reset=True, ensure_min_samples=1, fitted_on=None):
    """validate_X on X against scikit-learn's validate_data, from equal states."""
    quick, full = LSML(), LSML()
    if fitted_on is not None:
        for estimator in (quick, full):
            validate_data(estimator, fitted_on, **DENSE_FLOATS)
    got, got_warnings = _outcome(
        lambda: validate_X(quick, X, reset=reset, ensure_min_samples=ensure_min_samples)
    )
    expected, expected_warnings = _outcome(
        lambda: validate_data(
            full,
            X,
            reset=reset,
            ensure_min_samples=ensure_min_samples,
            **DENSE_FLOATS,
        )
    )
    assert got_warnings == expected_warnings
    if isinstance(expected, Exception):
        assert type(got) is type(expected) and str(got) == str(expected)
    else:
        assert not isinstance(got, Exception), got
        assert type(got) is type(expected) and got.dtype == expected.dtype
        assert got.flags.c_contiguous and (got is X) == (expected is X)
        np.testing.assert_array_equal(got, expected)
    got_state, expected_state = _state(quick), _state(full)
    assert got_state.keys() == expected_state.keys()
    for name, value in expected_state.items():
        np.testing.assert_array_equal(got_state[name], value)
    return got


def _points(dtype=np.float64, shape=(6, 3)):
    return np.random.RandomState(0).standard_normal(shape).astype(dtype)


class _Subclass(np.ndarray):
    pass


def _inputs():
    finfo = np.finfo(np.float64)
    plain = _points()
    cases = {
        "float64": plain,
        "float32": _points(np.float32),
        "one row": plain[:1].copy(),
        "sum overflows": np.full((3, 2), finfo.max),
        "float32 sum overflows": np.full((3, 2), np.finfo(np.float32).max, np.float32),
        "F-ordered": np.asfortranarray(plain),
        "non-contiguous": plain[::2],
        "columns skipped": plain[:, ::2],
        "read-only": plain.copy(),
        "big-endian": plain.astype(">f8"),
        "float16": plain.astype(np.float16),
        "int": np.arange(12).reshape(4, 3),
        "bool": plain > 0,
        "object": plain.astype(object),
        "complex": plain + 1j,
        "empty": np.empty((0, 3)),
        "no features": np.empty((3, 0)),
        "1-D": plain[0].copy(),
        "0-D": np.array(1.0),
        "3-D": plain.reshape(2, 3, 3),
        "subclass": plain.copy().view(_Subclass),
        "list": plain.tolist(),
        "frame": pd.DataFrame(plain, columns=["a", "b", "c"]),
        "frame of int names": pd.DataFrame(plain),
    }
    cases["read-only"].flags.writeable = False
    for name, value in [("nan", np.nan), ("inf", np.inf), ("-inf", -np.inf)]:
        for dtype in (np.float64, np.float32):
            bad = _points(dtype)
            bad[4, 1] = value
            cases[f"{name} {np.dtype(dtype).name}"] = bad
    both = _points()
    both[0, 0], both[5, 2] = np.inf, -np.inf  # a sum that is NaN, not inf
    cases["inf and -inf"] = both
    return cases


@pytest.mark.parametrize("case", list(_inputs()))
def test_validate_X_is_validate_data(case):
    X = _inputs()[case]
    _assert_same(X)
    _assert_same(X, ensure_min_samples=2)
    # a refit drops (or replaces) the feature names of the previous fit
    _assert_same(X, fitted_on=_inputs()["frame"])


def test_validate_X_returns_ready_data_itself_and_sets_the_attributes():
    X = _points(np.float32)
    estimator = LSML()
    estimator.feature_names_in_ = np.array(["x", "y", "z"], dtype=object)
    assert validate_X(estimator, X) is X
    assert estimator.n_features_in_ == 3 and not hasattr(estimator, "feature_names_in_")
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    assert validate_X(estimator, frame).dtype == np.float32
    assert list(estimator.feature_names_in_) == ["a", "b", "c"]


@pytest.mark.parametrize("fitted_on", [None, "plain", "frame", "other width"], ids=str)
@pytest.mark.parametrize("case", ["float64", "frame", "F-ordered", "nan float64"])
def test_validate_X_without_reset_is_validate_data(fitted_on, case):
    # feature names and widths are checked against those seen in fit, with
    # the same warnings and errors
    fitted = {
        None: None,
        "plain": _points(),
        "frame": pd.DataFrame(_points(), columns=["a", "b", "c"]),
        "other width": _points(shape=(6, 2)),
    }[fitted_on]
    _assert_same(_inputs()[case], reset=False, fitted_on=fitted)


def test_validate_X_follows_the_assume_finite_setting():
    X = _inputs()["nan float64"]
    with sklearn.config_context(assume_finite=True):
        assert np.isnan(_assert_same(X)).any()


def _points_or_error(points, finite=True):
    try:
        return check_points(points, "triplets", finite=finite)
    except ValueError as error:
        return str(error)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", ["sum overflows", "inf and -inf"])
def test_check_points_shortcut_adds_no_warning(dtype, case):
    # a sum that overflows, or adds inf to -inf, sends the tuples through
    # the generic check, which warns (or not) as it would anyway
    tuples = np.ones((4, 3, 2), dtype=dtype)
    if case == "sum overflows":
        tuples[:] = np.finfo(dtype).max
    else:
        tuples[0, 0, 0], tuples[1, 2, 1] = np.inf, -np.inf
    fast, fast_warnings = _outcome(lambda: _points_or_error(tuples))
    generic, generic_warnings = _outcome(
        lambda: _points_or_error(np.asfortranarray(tuples))
    )
    assert fast_warnings == generic_warnings
    if isinstance(generic, str):
        assert fast == generic and "infinity" in fast
    else:
        assert fast is tuples
        np.testing.assert_array_equal(fast, generic)


def _centred_in_units_as_defined(X):
    """The definition: absolute values, ldexp, new arrays at every step."""
    X64 = np.asarray(X, dtype=np.float64)
    if X64.size == 0:
        return np.zeros_like(X), 0
    outer = _exponent(np.abs(X64).max())
    if outer is None:  # all zeros
        return np.zeros_like(X), 0
    centred = np.ldexp(X64, -outer)
    centred -= centred.mean(axis=0)
    inner = _exponent(np.abs(centred).max())
    if inner is None or outer is None:
        return np.zeros_like(X), 0
    centred = np.ldexp(centred, -inner)
    return np.ascontiguousarray(centred, dtype=X.dtype), outer + inner


def _centring_cases():
    rng = np.random.RandomState(3)
    normal = rng.standard_normal((9, 4))
    tiny_spread = 1.0 + rng.standard_normal((9, 4)) * 2.0**-50
    cases = {f"scale 1e{p}": normal * 10.0**p for p in (-310, -300, -30, 0, 30, 300)}
    cases.update(
        {
            "near the float64 limit": np.full((9, 4), 1.7e308) - normal * 1e300,
            "subnormal": normal * 5e-324 * 1000,
            "smallest subnormal": np.array([[5e-324, 0.0], [0.0, -5e-324]]),
            # scaled by 2**1024, beyond the largest float64 power of two
            "largest 2**-1025": np.array([[2.0**-1025, 0.0], [0.0, 3 * 2.0**-1027]]),
            # halving odd multiples of the smallest subnormal rounds them
            "normal and subnormal": np.array(
                [[1.0, 3 * 5e-324], [-1.0, 7 * 5e-324], [0.75, -5 * 5e-324]]
            ),
            "spread near 2**-50": tiny_spread,
            "spread of one unit of the last place": np.nextafter(
                np.ones((4, 2)), 2 * (np.arange(8).reshape(4, 2) % 2)
            ),
            "one row": normal[:1],
            "constant": np.full((5, 3), -7.0),
            "zero": np.zeros((2, 3)),
            "empty": np.empty((0, 3)),
            "integers": np.arange(12.0).reshape(4, 3),
        }
    )
    return cases


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", list(_centring_cases()))
def test_centred_in_units_is_its_definition_to_the_bit(dtype, case):
    X = _centring_cases()[case]
    with np.errstate(all="ignore"):
        X = X.astype(dtype)
    got, got_warnings = _outcome(lambda: centred_in_units(X))
    expected, expected_warnings = _outcome(lambda: _centred_in_units_as_defined(X))
    assert got_warnings == expected_warnings
    if isinstance(expected, Exception):
        assert type(got) is type(expected) and str(got) == str(expected)
        return
    assert got[1] == expected[1]
    assert got[0].dtype == expected[0].dtype == dtype and got[0].flags.c_contiguous
    np.testing.assert_array_equal(got[0], expected[0], strict=True)
    # bit for bit: the same signs of zero too
    assert np.array_equal(np.signbit(got[0]), np.signbit(expected[0]))


def _labels():
    many = np.arange(30) % 20  # more classes than half the samples: a warning
    return {
        "int64": np.arange(30) % 3,
        "binary": np.arange(30) % 2,
        "int8": (np.arange(30) % 3 - 1).astype(np.int8),
        "uint16": (np.arange(30) % 4 * 1000).astype(np.uint16),
        "strided": (np.arange(60) % 3)[::2],
        "mostly distinct": many,
        "mostly distinct, few samples": many[:12],
        "one class": np.zeros(30, dtype=int),
        "a class of one": np.r_[np.zeros(29, dtype=int), 1],
        "too few": np.arange(29) % 3,
        "column": (np.arange(30) % 3)[:, None],
        "float": (np.arange(30) % 3).astype(float),
        "continuous": np.linspace(0, 1, 30),
        "bool": np.arange(30) % 2 == 0,
        "str": np.array(["a", "b", "c"])[np.arange(30) % 3],
        "object": np.array([1, "a"] * 15, dtype=object),
        "series": pd.Series(np.arange(30) % 3),
        "list": list(np.arange(30) % 3),
    }


@pytest.mark.parametrize("X_case", ["float64", "float32", "F-ordered", "frame", "nan"])
@pytest.mark.parametrize("y_case", list(_labels()))
def test_validate_X_y_is_the_generic_check(monkeypatch, X_case, y_case):
    from linmetric import _validation

    rng = np.random.RandomState(0)
    X = rng.standard_normal((30, 3))
    X = {
        "float64": X,
        "float32": X.astype(np.float32),
        "F-ordered": np.asfortranarray(X),
        "frame": pd.DataFrame(X, columns=["a", "b", "c"]),
        "nan": np.where(np.arange(3) == 1, np.nan, X),
    }[X_case]
    y = _labels()[y_case]

    def run(estimator):
        estimator.feature_names_in_ = np.array(["old"], dtype=object)
        result, caught = _outcome(
            lambda: _validation.validate_X_y(
                estimator, X, y, min_class_size=2, min_class_size_param=("k", 2)
            )
        )
        return result, caught, _state(estimator)

    got = run(LSML())
    monkeypatch.setattr(_validation, "_is_ready", lambda *args, **kwargs: False)
    expected = run(LSML())
    assert got[1] == expected[1]  # warnings
    if isinstance(expected[0], Exception):
        assert type(got[0]) is type(expected[0])
        assert str(got[0]) == str(expected[0])
    else:
        for part, expected_part in zip(got[0], expected[0], strict=True):
            assert part.dtype == expected_part.dtype
            np.testing.assert_array_equal(part, expected_part)
        assert got[0][0].flags.c_contiguous
    assert got[2].keys() == expected[2].keys()
    for name, value in expected[2].items():
        np.testing.assert_array_equal(got[2][name], value)


def _differences_in_units_as_defined(first, second):
    first = np.asarray(first, dtype=np.float64)
    second = np.asarray(second, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        diffs = np.subtract(first, second)
        largest = np.abs(diffs).max() if diffs.size else 0.0
    outer = 0
    if not np.isfinite(largest):
        outer = _exponent(max(np.abs(first).max(), np.abs(second).max()))
        diffs = np.ldexp(first, -outer) - np.ldexp(second, -outer)
        largest = np.abs(diffs).max()
    inner = _exponent(largest)
    if inner is None:
        return np.ascontiguousarray(diffs), 0
    return np.ascontiguousarray(np.ldexp(diffs, -inner)), outer + inner


@pytest.mark.parametrize("case", list(_centring_cases()))
def test_differences_in_units_is_its_definition_to_the_bit(case):
    from linmetric._validation import differences_in_units

    X = _centring_cases()[case]
    first, second = X, X[::-1] * 0.75
    if case == "near the float64 limit":
        second = -second  # differences overflow: the points' own units
    got = differences_in_units(first, second)
    expected = _differences_in_units_as_defined(first, second)
    assert got[1] == expected[1]
    np.testing.assert_array_equal(got[0], expected[0], strict=True)
    assert np.array_equal(np.signbit(got[0]), np.signbit(expected[0]))
    assert got[0].flags.c_contiguous
