"""Boundary checks: declarative parameter intervals, labels, kernel caching."""

import numbers
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from linmetric import ITML, LMNN, NCA, Covariance, Whitening
from linmetric._params import Interval, InvalidParameterError
from linmetric._validation import check_points

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    y = np.arange(30) % 2
    return rng.randn(2, 3)[y] * 3 + rng.randn(30, 3), y


@pytest.mark.parametrize(
    "closed, low_inf, high_inf",
    [("left", False, False), ("right", False, True), ("both", False, True)],
)
def test_interval_nan_never_inside_inf_only_where_closed(closed, low_inf, high_inf):
    interval = Interval(numbers.Real, None, None, closed=closed)
    assert not interval.accepts(float("nan"))
    assert not interval.accepts(np.float32("nan"))
    assert interval.accepts(np.inf) is high_inf
    assert interval.accepts(-np.inf) is (closed in ("left", "both"))
    assert not Interval(numbers.Real, 0, 10, closed="both").accepts(np.inf)
    assert Interval(numbers.Real, 0, None, closed="left").accepts(1e300)


@pytest.mark.parametrize(
    "estimator, name",
    [
        (LMNN(tol=np.nan), "tol"),
        (LMNN(push_weight=np.nan), "push_weight"),
        (LMNN(tol=np.inf), "tol"),
        (NCA(tol=np.nan), "tol"),
        (ITML(gamma=np.nan), "gamma"),
        (Whitening(n_components=np.nan), "n_components"),
        (Whitening(regularization=np.nan), "regularization"),
        (Whitening(regularization=np.inf), "regularization"),
        (Covariance(shrinkage=np.nan), "shrinkage"),
    ],
)
def test_nan_and_inf_parameters_rejected(estimator, name, data):
    X, y = data
    with pytest.raises(InvalidParameterError, match=f"'{name}' parameter"):
        estimator.fit(X, y)


@pytest.mark.parametrize(
    "labels, message",
    [
        (np.array(["a", 1] * 15, dtype=object), "mixes labels of different types"),
        (np.array(["a", None] * 15, dtype=object), "contains None"),
        (np.array([1.5, None] * 15, dtype=object), "contains None"),
    ],
)
@pytest.mark.parametrize("estimator", [LMNN(max_iter=2), NCA(max_iter=2), ITML()])
def test_labels_of_mixed_types_rejected(estimator, labels, message, data):
    X, _ = data
    with pytest.raises(ValueError, match=message):
        estimator.fit(X, labels)


def test_object_labels_of_one_type_accepted(data):
    X, _ = data
    labels = np.array(["a", "b"] * 15, dtype=object)
    model = LMNN(max_iter=3).fit(X, labels)
    assert model.components_.shape == (3, 3)


_IMPORT_WITHOUT_CACHE = textwrap.dedent(
    """
    from numba.core import caching

    caching.CacheImpl._locator_classes = []  # nowhere to write a cache
    import numpy as np
    from linmetric import LMNN

    X = np.random.RandomState(0).randn(20, 3)
    print(LMNN(max_iter=2).fit(X, np.arange(20) % 2).components_.shape)
    """
)


def test_kernels_compile_without_a_writable_cache():
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_WITHOUT_CACHE],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": ROOT},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "(3, 3)" in result.stdout


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="a read-only tree is writable to root",
)
def test_import_from_read_only_install(tmp_path):
    import shutil
    import stat

    package = tmp_path / "site" / "linmetric"
    shutil.copytree(
        os.path.join(ROOT, "linmetric"),
        package,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    for path in [package.parent, *package.parent.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    home = tmp_path / "home"
    home.mkdir(mode=0o500)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")
    }
    env.update(HOME=str(home), PYTHONPATH=str(package.parent))
    code = _IMPORT_WITHOUT_CACHE.split("import numpy as np", 1)[1]
    try:
        result = subprocess.run(
            [sys.executable, "-c", "import numpy as np" + code],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=300,
        )
    finally:
        for path in [package.parent, *package.parent.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    assert result.returncode == 0, result.stderr
    assert "(3, 3)" in result.stdout


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("scale, offset", [(1.0, 0.0), (1e-200, 0.0), (1e200, 3.0)])
def test_centred_in_units_keeps_every_digit(dtype, scale, offset):
    from linmetric._validation import centred_in_units

    if dtype is np.float32:
        scale = float(np.clip(scale, 1e-20, 1e20))
    X = np.random.RandomState(0).standard_normal((7, 3))
    units, exponent = centred_in_units((X * scale + offset * scale).astype(dtype))
    assert units.dtype == dtype
    assert 0.5 <= np.abs(units).max() < 1
    np.testing.assert_allclose(units.mean(axis=0), 0, atol=1e-6)
    expected = (X - X.mean(axis=0)) * (scale / 2.0**exponent)
    # float32 input is rounded to 6e-8 of its largest entry
    tol = 1e-6 if dtype is np.float32 else 1e-12
    np.testing.assert_allclose(units, expected, rtol=0, atol=tol)
    for value in (1e200, 0.0):
        constant, exponent = centred_in_units(np.full((4, 2), value, dtype=dtype))
        assert exponent == 0 and not constant.any() and constant.dtype == dtype


def _points_or_error(points, finite):
    try:
        return check_points(points, "triplets", finite=finite)
    except ValueError as error:
        return str(error)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_points", [2, 3, 4])
@pytest.mark.parametrize("case", ["plain", "nan", "inf", "sum overflows"])
@pytest.mark.parametrize("finite", [True, False])
def test_check_points_on_ready_tuples_is_the_generic_check(
    dtype, n_points, case, finite
):
    # C-contiguous float tuples skip scikit-learn's checks: the same array,
    # or the same error, as the same tuples in another layout.
    tuples = np.random.RandomState(1).standard_normal((5, n_points, 3)).astype(dtype)
    if case == "nan":
        tuples[2, 1, 0] = np.nan
    elif case == "inf":
        tuples[3, 0, 2] = -np.inf
    elif case == "sum overflows":
        tuples[:] = np.finfo(dtype).max
    fast = _points_or_error(tuples, finite)
    generic = _points_or_error(np.asfortranarray(tuples), finite)
    if isinstance(generic, str):
        assert fast == generic and "triplets" in fast
        return
    assert fast.dtype == generic.dtype and fast.flags.c_contiguous
    np.testing.assert_array_equal(fast, generic)
    assert isinstance(_points_or_error(tuples[:0], finite), str)
