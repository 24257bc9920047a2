"""The NumPy paths of small fits (LMNN's all-pairs loss, ITML's sweep) against
the compiled kernels: the same objective, the same fits, and no kernel
loaded by a first small fit in a fresh process."""

import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from scipy.optimize import check_grad
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning

from linmetric import ITML, LMNN, _itml, _lmnn_small
from linmetric._itml import numpy_bregman_sweep, sweep_plan
from linmetric._kernels.bregman import bregman_sweep
from linmetric._lmnn import _best_scale, _choose_targets, lmnn_loss_grad
from linmetric._lmnn_small import (
    AllPairsObjective,
    all_pairs_loss_grad,
    best_scale,
    choose_targets,
    small_problem,
)

LOSSES = ["squared_hinge", "hinge"]
DTYPES = [np.float32, np.float64]


def blobs(seed, n_samples=60, n_features=4, n_classes=3):
    rng = np.random.RandomState(seed)
    y = np.arange(n_samples) % n_classes
    X = rng.standard_normal((n_samples, n_features))
    X[:, 0] += y  # classes overlap: plenty of impostors
    return X, y


def with_ties(seed):
    """Many equal distances, and duplicates, that survive LMNN's scaling.

    Rows of six entries, four of them +-1, and their negations: the mean is
    0 and the RMS norm 2, so centring and scaling are exact, and so are the
    squared distances. Ties among them must go to the smaller index.
    """
    rng = np.random.RandomState(seed)
    rows = np.zeros((24, 6))
    for row in rows:
        row[rng.permutation(6)[:4]] = rng.choice([-1.0, 1.0], size=4)
    rows[20:] = rows[:4]  # exact duplicates
    X = np.concatenate([rows, -rows])
    y = rng.randint(0, 3, size=48)
    return X, y


def with_small_class(seed):
    """A class of two members, fewer than n_neighbors + 1 = 4."""
    X, y = blobs(seed, n_samples=50)
    y[[0, 1]] = 3
    return X, y


def other_class_pairs(y):
    return np.argwhere(y[:, None] != y[None, :])


def prepared(X):
    """X as LMNN.fit hands it on: centred, of unit RMS norm."""
    X = X - X.mean(axis=0)
    return X / np.sqrt((X**2).sum() / X.shape[0])


# --- LMNN: the pieces ------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("seed", [0, 1])
def test_all_pairs_loss_equals_the_kernel_loss(dtype, loss, seed):
    X, y = blobs(seed)
    X = prepared(X).astype(dtype)
    targets = choose_targets(X, y, 3)
    rng = np.random.RandomState(seed)
    for L in (rng.standard_normal((4, 4)), 0.3 * rng.standard_normal((2, 4))):
        value, grad = all_pairs_loss_grad(L, X, y, targets, push_weight=0.3, loss=loss)
        expected, expected_grad = lmnn_loss_grad(
            L, X, targets, other_class_pairs(y), push_weight=0.3, loss=loss
        )
        np.testing.assert_allclose(value, expected, rtol=1e-12)
        np.testing.assert_allclose(
            grad, expected_grad, rtol=1e-10, atol=1e-10 * np.abs(expected_grad).max()
        )


def test_all_pairs_loss_without_impostors():
    X = np.array([[0.0], [1.0], [10.0], [11.0], [12.0]])
    y = np.array([0, 0, 1, 1, 1])
    targets = choose_targets(X, y, 1)
    value, grad = all_pairs_loss_grad(
        np.eye(1), X, y, targets, push_weight=0.5, loss="squared_hinge"
    )
    expected = lmnn_loss_grad(
        np.eye(1),
        X,
        targets,
        other_class_pairs(y),
        push_weight=0.5,
        loss="squared_hinge",
    )
    assert value == expected[0] == 2.5  # 0.5 * (1 + 1 + 1 + 1 + 1)
    np.testing.assert_allclose(grad, expected[1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_all_pairs_gradient_matches_finite_differences(seed):
    X, y = blobs(seed, n_samples=30)
    X = prepared(X)
    objective = AllPairsObjective(X, y, mu=0.5, squared=True)
    objective.targets = choose_targets(X, y, 3)
    x0 = np.random.RandomState(seed).standard_normal(12)
    error = check_grad(lambda x: objective(x)[0], lambda x: objective(x)[1], x0)
    assert error < 1e-5 * max(1.0, np.linalg.norm(objective(x0)[1]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make", [blobs, with_ties, with_small_class])
def test_target_neighbours_equal_the_kernel_search(dtype, make):
    X, y = make(3)
    X = prepared(X).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in (1, 3):
            np.testing.assert_array_equal(
                choose_targets(X, y, k), _choose_targets(X, y, k, None)
            )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("make", [blobs, with_ties])
def test_initial_scale_equals_the_kernel_estimate(dtype, loss, make):
    X, y = make(4)
    X = prepared(X).astype(dtype)
    targets = choose_targets(X, y, 3)
    for L in (np.eye(X.shape[1]), np.random.RandomState(0).rand(2, X.shape[1])):
        options = {"mu": 0.5, "squared": loss == "squared_hinge"}
        got = best_scale(
            X, y, L, targets, random_state=np.random.RandomState(1), **options
        )
        expected = _best_scale(
            X,
            y,
            L,
            targets,
            random_state=np.random.RandomState(1),
            working_memory=None,
            **options,
        )
        assert got == pytest.approx(expected, rel=1e-12)


def test_small_problems_respect_the_work_and_memory_budgets():
    assert small_problem(150, 4)  # iris
    assert small_problem(124, 13)  # 70% of wine
    assert not small_problem(150, 30)
    # 100 points need 100 * 100 pairs of ALL_PAIRS_BYTES
    assert not small_problem(100, 4, impostor_memory=1e-5)
    assert not small_problem(100, 4, working_memory=1e-5)


# --- LMNN: whole fits ------------------------------------------------------------


def fit_both(monkeypatch, X, y, **params):
    """LMNN fitted by the NumPy path and by the kernel path."""
    small = LMNN(random_state=0, **params).fit(X, y)
    with monkeypatch.context() as patch:
        patch.setattr(_lmnn_small, "SMALL_MAX_WORK", 0)
        kernel = LMNN(random_state=0, **params).fit(X, y)
    return small, kernel


CASES = [
    (blobs, {}),
    (blobs, {"loss": "hinge", "max_iter": 150}),
    (blobs, {"n_components": 2, "n_passes": 2}),
    (with_ties, {}),
    (with_small_class, {"push_weight": 0.3}),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("make", "params"), CASES)
def test_small_fit_equals_the_kernel_fit(monkeypatch, dtype, make, params):
    X, y = make(5)
    X = X.astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small, kernel = fit_both(monkeypatch, X, y, **params)
    assert small.n_streamed_evaluations_ == kernel.n_streamed_evaluations_ == 0
    assert set(vars(small)) == set(vars(kernel))
    assert small.components_.dtype == dtype
    np.testing.assert_array_equal(small.target_neighbors_, kernel.target_neighbors_)
    assert (small.n_iter_, small.n_passes_, small.converged_) == (
        kernel.n_iter_,
        kernel.n_passes_,
        kernel.converged_,
    )
    scale = np.abs(kernel.components_).max()
    np.testing.assert_allclose(
        small.components_, kernel.components_, rtol=1e-7, atol=1e-7 * scale
    )
    np.testing.assert_allclose(small.loss_curve_, kernel.loss_curve_, rtol=1e-9)
    np.testing.assert_array_equal(
        small.history_["active_impostors"], kernel.history_["active_impostors"]
    )


def test_small_fit_on_iris_equals_the_kernel_fit(monkeypatch):
    X, y = load_iris(return_X_y=True)
    small, kernel = fit_both(monkeypatch, X, y)
    np.testing.assert_allclose(
        small.components_, kernel.components_, rtol=1e-9, atol=1e-9
    )


def test_small_fit_warns_and_reports_like_the_kernel_fit(monkeypatch, capsys):
    X, y = with_small_class(0)
    with (
        pytest.warns(UserWarning, match="members or fewer"),
        pytest.warns(ConvergenceWarning, match="LMNN did not converge"),
    ):
        lmnn = LMNN(max_iter=2, verbose=1, random_state=0).fit(X, y)
    out = capsys.readouterr().out
    assert "did not converge after 2 iterations" in out
    assert lmnn.n_iter_ == 2 and not lmnn.converged_
    assert lmnn.n_impostor_searches_ >= 2  # every evaluation searched all pairs


# --- ITML ----------------------------------------------------------------------------


def sweep_problem(seed, n_constraints, n_features, *, sparse=False):
    rng = np.random.RandomState(seed)
    diffs = rng.standard_normal((n_constraints, n_features))
    if sparse:
        diffs[rng.rand(*diffs.shape) < 0.5] = 0.0
        diffs[0] = 0.0  # two equal points: skipped
    signs = np.where(rng.rand(n_constraints) < 0.5, 1, -1).astype(np.int8)
    sq = (diffs**2).sum(axis=1)
    slack = np.where(signs > 0, np.percentile(sq, 10), np.percentile(sq, 90))
    return diffs, signs, slack


@pytest.mark.parametrize("gamma", [1.0, 0.05, np.inf])
@pytest.mark.parametrize(
    ("n_features", "sparse"), [(1, False), (3, False), (9, True), (13, False)]
)
def test_numpy_sweep_equals_the_kernel_bit_for_bit(gamma, n_features, sparse):
    diffs, signs, slack = sweep_problem(n_features, 40, n_features, sparse=sparse)
    states = [
        [np.eye(n_features), slack.copy(), np.zeros(signs.shape[0])] for _ in range(2)
    ]
    plan = sweep_plan(diffs)
    for _ in range(8):
        metric, xi, duals = states[0]
        n_kernel = bregman_sweep(metric, diffs, signs, xi, duals, gamma)
        metric, xi, duals = states[1]
        n_numpy = numpy_bregman_sweep(metric, diffs, signs, xi, duals, gamma, plan=plan)
        assert n_numpy == n_kernel
        for kernel_state, numpy_state in zip(*states, strict=True):
            np.testing.assert_array_equal(numpy_state, kernel_state)
    assert n_kernel > 0  # the sweeps did change M


class _CountedKernel:
    """The compiled sweep, counting its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, *args):
        self.calls += 1
        return bregman_sweep(*args)


@pytest.fixture
def unloaded_kernel(monkeypatch):
    """The compiled sweep, as if not loaded yet in this process."""
    kernel = _CountedKernel()
    monkeypatch.setattr(_itml, "_compiled_sweep", lambda: kernel)
    monkeypatch.setattr(_itml, "_compiled_sweep_loaded", lambda: kernel.calls > 0)
    monkeypatch.setattr(_itml._Sweeper, "n_numpy_projections", 0)
    return kernel


@pytest.mark.parametrize("dtype", DTYPES)
def test_itml_numpy_sweeps_give_the_kernel_fit(monkeypatch, unloaded_kernel, dtype):
    X, y = load_iris(return_X_y=True)
    X, y = X[y < 2].astype(dtype), y[y < 2]  # 80 constraints
    monkeypatch.setattr(_itml, "NUMPY_SWEEP_MAX_PROJECTIONS", 10**6)
    numpy_fit = ITML(random_state=0).fit(X, y)
    assert unloaded_kernel.calls == 0
    monkeypatch.setattr(_itml, "NUMPY_SWEEP_MAX_CONSTRAINTS", 0)
    kernel_fit = ITML(random_state=0).fit(X, y)
    assert unloaded_kernel.calls == kernel_fit.n_iter_
    np.testing.assert_array_equal(numpy_fit.components_, kernel_fit.components_)
    np.testing.assert_array_equal(numpy_fit.loss_curve_, kernel_fit.loss_curve_)
    assert numpy_fit.components_.dtype == dtype


def test_itml_loads_the_kernel_past_the_numpy_budget(monkeypatch, unloaded_kernel):
    X, y = load_iris(return_X_y=True)
    X, y = X[y < 2], y[y < 2]
    monkeypatch.setattr(_itml, "NUMPY_SWEEP_MAX_PROJECTIONS", 400)  # 5 sweeps
    fit = ITML(random_state=0).fit(X, y)
    assert fit.n_iter_ > 5
    assert unloaded_kernel.calls == fit.n_iter_ - 5
    # a later fit uses the kernel from its first sweep
    unloaded_kernel.calls = 0
    again = ITML(random_state=0).fit(X, y)
    assert unloaded_kernel.calls == again.n_iter_
    np.testing.assert_array_equal(again.components_, fit.components_)


def test_itml_sweeps_of_many_constraints_use_the_kernel(unloaded_kernel):
    X, y = load_iris(return_X_y=True)  # 3 classes: 180 constraints
    with pytest.warns(ConvergenceWarning):
        fit = ITML(random_state=0, max_iter=3).fit(X, y)
    assert unloaded_kernel.calls == fit.n_iter_


# --- a fresh process --------------------------------------------------------------


def test_first_small_fits_load_no_compiled_kernel():
    script = textwrap.dedent(
        """
        import importlib, pkgutil, sys, warnings
        from sklearn.datasets import load_breast_cancer, load_iris
        import linmetric
        assert "numba" not in sys.modules, "import linmetric imported numba"
        from linmetric import ITML

        warnings.simplefilter("ignore")
        X, y = load_breast_cancer(return_X_y=True)
        ITML(random_state=0).fit((X - X.mean(axis=0)) / X.std(axis=0), y)
        from linmetric import LMNN
        X, y = load_iris(return_X_y=True)
        LMNN(random_state=0).fit(X, y)
        from linmetric import LSML
        LSML(random_state=0).fit(X, y)
        import linmetric._kernels as kernels
        loaded = [
            f"{info.name}.{name}"
            for info in pkgutil.iter_modules(kernels.__path__)
            for name, value in vars(
                importlib.import_module("linmetric._kernels." + info.name)
            ).items()
            if getattr(value, "signatures", None)
        ]
        print(loaded)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
