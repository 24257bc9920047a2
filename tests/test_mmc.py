"""Tests of MMC: objectives and gradients, the fast path against the NumPy reference."""

import warnings

import numpy as np
import pytest
from scipy.optimize import check_grad
from sklearn.datasets import load_digits, load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

from linmetric import MMC
from linmetric._itml import sample_label_pairs
from linmetric._kernels.mmc import scaled_rows
from linmetric._mmc import (
    diagonal_data,
    diagonal_objective,
    diagonal_problem,
    dissimilar_objective,
    project_constraints,
    similar_sums,
)
from linmetric._validation import (
    differences_in_units,
    validate_pair_labels,
    validate_pairs,
)
from linmetric.reference import mmc as reference


def _pair_problem(seed, n_samples=40, n_features=4, n_pairs=60):
    """Points in two classes and pairs drawn from them, as differences."""
    rng = np.random.RandomState(seed)
    y = rng.randint(2, size=n_samples)
    X = rng.standard_normal((n_samples, n_features)) * rng.uniform(0.5, 2, n_features)
    X[:, 0] += 2.0 * y
    rows = rng.randint(n_samples, size=n_pairs)
    cols = (rows + 1 + rng.randint(n_samples - 1, size=n_pairs)) % n_samples
    signs = np.where(y[rows] == y[cols], 1, -1)
    return X, np.stack([rows, cols], axis=1), signs


def _differences(X, pairs, signs):
    diffs = X[pairs[:, 0]] - X[pairs[:, 1]]
    return diffs[signs > 0], diffs[signs < 0]


# --- objectives and gradients -------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_diagonal_gradient_and_hessian_match_finite_differences(seed):
    X, pairs, signs = _pair_problem(seed)
    similar, dissimilar = _differences(X, pairs, signs)
    s, _ = similar_sums(similar, dissimilar)
    squared = dissimilar**2
    a = np.random.RandomState(seed).uniform(0.5, 2.0, X.shape[1])

    def value(a):
        return diagonal_objective(a, s, squared, hessian=False)[0]

    def grad(a):
        return diagonal_objective(a, s, squared, hessian=False)[1]

    scale = np.linalg.norm(grad(a))
    assert check_grad(value, grad, a, epsilon=1e-7) < 1e-5 * scale
    hess = diagonal_objective(a, s, squared)[2]
    for k in range(a.shape[0]):
        error = check_grad(
            lambda a, k=k: grad(a)[k], lambda a, k=k: hess[k], a, epsilon=1e-6
        )
        assert error < 1e-4 * np.abs(hess).max()
    np.testing.assert_allclose(hess, hess.T)
    assert np.linalg.eigvalsh(hess)[0] > -1e-12  # h is convex
    free = np.arange(a.shape[0]) % 2 == 0
    block = diagonal_objective(a, s, squared, free=free)[2]
    np.testing.assert_allclose(block, hess[np.ix_(free, free)], rtol=1e-12)
    chosen = diagonal_objective(a, s, squared, free=lambda grad: grad < 0)
    np.testing.assert_allclose(
        chosen[2], hess[np.ix_(chosen[1] < 0, chosen[1] < 0)], rtol=1e-12
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_full_gradient_matches_finite_differences(seed):
    X, pairs, signs = _pair_problem(seed, n_features=3)
    _, dissimilar = _differences(X, pairs, signs)
    rng = np.random.RandomState(seed)
    B = rng.standard_normal((3, 3))
    A0 = B @ B.T + np.eye(3)

    def value(flat):
        A = flat.reshape(3, 3)
        return dissimilar_objective((A + A.T) / 2, dissimilar)[0]

    def grad(flat):
        return dissimilar_objective(flat.reshape(3, 3), dissimilar)[1].ravel()

    assert check_grad(value, grad, A0.ravel(), epsilon=1e-7) < 1e-5 * np.linalg.norm(
        grad(A0.ravel())
    )


def test_objectives_match_reference():
    X, pairs, signs = _pair_problem(3)
    similar, dissimilar = _differences(X, pairs, signs)
    A = np.diag([1.0, 2.0, 0.5, 0.0])
    g, grad = dissimilar_objective(A, dissimilar)
    g_ref, grad_ref = reference.dissimilar_objective(A, dissimilar)
    assert g == pytest.approx(g_ref, rel=1e-12)
    np.testing.assert_allclose(grad, grad_ref, rtol=1e-12)
    s, _ = similar_sums(similar, dissimilar)
    s_ref, _ = reference.similar_sums(similar, dissimilar)
    np.testing.assert_allclose(s, s_ref, rtol=1e-12)
    a = np.array([1.0, 2.0, 0.5, 0.0])
    for fast, ref in zip(
        diagonal_objective(a, s, dissimilar**2),
        reference.diagonal_objective(a, s_ref, dissimilar),
        strict=True,
    ):
        np.testing.assert_allclose(fast, ref, rtol=1e-12)


def test_projection_lands_in_both_constraint_sets():
    rng = np.random.RandomState(0)
    B = rng.standard_normal((5, 5))
    sigma = B @ B.T
    A = rng.standard_normal((5, 5))
    A = 3 * (A + A.T)  # indefinite and infeasible
    P = project_constraints(A, sigma, np.vdot(sigma, sigma))
    np.testing.assert_allclose(P, P.T, atol=1e-14)
    assert np.linalg.eigvalsh(P)[0] > -1e-12
    assert np.vdot(P, sigma) <= 1 + 1e-12
    np.testing.assert_allclose(P, reference.project(A, sigma), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("scale", [1.0, 3e-200, 5e250])
def test_diagonal_kernel_matches_numpy(dtype, scale):
    # The kernel squares the unscaled differences and scales the squares by
    # a power of two; NumPy scales the differences first: the same numbers
    # (sums up to their order). Data far from 1 takes NumPy's path, with
    # each kind of pair in the units of its own largest difference.
    X, pairs, signs = _pair_problem(8, n_features=5)
    if dtype == np.float32 and scale != 1.0:
        scale = 1e-30 if scale < 1 else 1e30
    X = (X * scale).astype(dtype)
    X[3, 2] = X[4, 2]  # a pair that may not differ in every feature
    similar = signs > 0
    fast = diagonal_data(X, pairs[:, 0], pairs[:, 1], similar)
    if dtype == np.float32 or scale == 1.0:
        diffs, exponent = differences_in_units(X[pairs[:, 0]], X[pairs[:, 1]])
        slow = diagonal_problem(diffs, similar)
    else:
        a, b = pairs[similar].T
        near, exponent = differences_in_units(X[a], X[b])
        a, b = pairs[~similar].T
        far, _ = differences_in_units(X[a], X[b])
        kinds = np.arange(len(near) + len(far)) < len(near)
        slow = diagonal_problem(np.concatenate([near, far]), kinds)
    assert fast[-1] == exponent
    np.testing.assert_array_equal(fast[1], slow[1])
    np.testing.assert_array_equal(fast[2], slow[2])
    np.testing.assert_allclose(fast[0], slow[0], rtol=1e-13)
    np.testing.assert_allclose(fast[3:5], slow[3:5], rtol=1e-13)
    assert fast[2].flags.c_contiguous and fast[2].shape == (5, np.sum(~similar))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_scaled_rows_matches_numpy(dtype):
    rng = np.random.RandomState(0)
    matrix = rng.standard_normal((7, 13)).astype(dtype)
    rows = np.array([5, 0, 6, 2], dtype=np.intp)
    weights = rng.uniform(0.1, 10.0, 13)
    out = np.full((7, 13), np.nan)
    scaled_rows(matrix, rows, weights, out)
    np.testing.assert_array_equal(out[:4], matrix[rows] * weights)
    assert np.isnan(out[4:]).all()


def _outcome(function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except (ValueError, TypeError) as error:
        return type(error), str(error)


def _assert_same_outcome(fast, generic):
    if isinstance(generic[0], type):
        assert fast == generic
        return
    for got, expected in zip(fast, generic, strict=True):
        assert got.dtype == expected.dtype and got.flags.c_contiguous
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", ["plain", "nan", "inf", "sum overflows", "shape"])
@pytest.mark.parametrize("finite", [True, False])
def test_pairs_as_float_arrays_are_checked_like_any_input(dtype, case, finite):
    # C-contiguous float pairs skip the generic checks: the same result, or
    # the same error, as pairs given in another layout.
    pairs = np.random.RandomState(1).standard_normal((4, 2, 3)).astype(dtype)
    if case == "nan":
        pairs[2, 1, 0] = np.nan
    elif case == "inf":
        pairs[3, 0, 2] = -np.inf
    elif case == "sum overflows":
        pairs[:] = np.finfo(dtype).max
    elif case == "shape":
        pairs = pairs.reshape(4, 3, 2)
    labels = np.array([1, -1, 1, 1])
    fast = _outcome(validate_pairs, pairs, labels, finite=finite)
    generic = _outcome(validate_pairs, np.asfortranarray(pairs), labels, finite=finite)
    _assert_same_outcome(fast, generic)
    if case in ("nan", "inf") and finite:
        assert fast[0] is ValueError and "pairs" in fast[1]
    empty = _outcome(validate_pairs, pairs[:0], labels[:0])
    assert empty[0] is ValueError and "0 sample(s)" in empty[1]


@pytest.mark.parametrize(
    "labels",
    [
        [1, -1, 1],
        [1.0, -1.0, 1.0],
        [1, 0, -1],
        [1.0, 0.5, -1.0],
        [1.0, np.nan, 1.0],
        [True, True, False],
        [-1, 2, 1],
    ],
)
def test_numeric_pair_labels_are_checked_like_any_labels(labels):
    # Numeric labels are compared with +1 and -1 directly; others with isin.
    fast = _outcome(validate_pair_labels, np.array(labels), 3)
    generic = _outcome(validate_pair_labels, np.array(labels, dtype=object), 3)
    if isinstance(generic, tuple):
        assert fast == generic
    else:
        np.testing.assert_array_equal(fast, generic)
        assert fast.dtype == generic.dtype == np.int8


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [(0, 0, 1), (9, 1, 3)])
def test_diagonal_non_finite_pairs_are_a_clear_error(value, where):
    X, pairs, signs = _pair_problem(9)
    points = X[pairs]
    points[where] = value
    with pytest.raises(ValueError, match="Input pairs contains"):
        MMC(diagonal=True).fit_pairs(points, signs)


def test_diagonal_fit_reaches_the_optimum():
    # At a tight tol the fit satisfies the optimality conditions of h over
    # a >= 0; at the default tol it is close in h.
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    fits = [
        MMC(diagonal=True, tol=tol, random_state=6).fit(X, y) for tol in (1e-12, 1e-3)
    ]
    assert fits[1].loss_curve_[-1] <= fits[0].loss_curve_[-1] + 1e-4
    assert fits[1].history_["change"][-1] <= 1e-3
    # The optimality conditions, in the units of the fit.
    rows, cols, signs = sample_label_pairs(y, 2000, np.random.RandomState(6))
    s, active, squared_t, _, _, exponent = diagonal_data(X, rows, cols, signs > 0)
    a = np.ldexp(np.diag(fits[0].components_) ** 2, 2 * exponent)
    _, grad, _ = diagonal_objective(a, s, squared_t.T, hessian=False)
    support = a > 0
    assert np.abs(grad[support]).max() < 1e-3 * np.abs(grad).max()
    assert grad[active & ~support].min() > -1e-6 * np.abs(grad).max()
    # h is least along the ray at the similar sum 1/2.
    assert s @ a == pytest.approx(0.5, rel=1e-10)


# --- fits against the reference --------------------------------------------------


@pytest.mark.parametrize("diagonal", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("seed", [0, 1])
def test_fit_matches_reference(diagonal, dtype, seed):
    X, pairs, signs = _pair_problem(seed)
    X = X.astype(dtype)
    similar, dissimilar = _differences(X.astype(np.float64), pairs, signs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mmc = MMC(diagonal=diagonal, max_iter=30, tol=1e-6).fit_pairs(X[pairs], signs)
        if diagonal:
            a, n_iter, _ = reference.mmc_diagonal(
                similar, dissimilar, max_iter=30, tol=1e-6
            )
            expected = np.diag(a)
        else:
            expected, n_iter, _ = reference.mmc_full(
                similar, dissimilar, max_iter=30, tol=1e-6
            )
    assert mmc.components_.dtype == dtype
    rtol = 1e-5 if dtype == np.float32 else 1e-8
    M = mmc.components_.astype(np.float64).T @ mmc.components_.astype(np.float64)
    np.testing.assert_allclose(M, expected, rtol=rtol, atol=rtol * np.abs(M).max())
    if dtype == np.float64:
        assert mmc.n_iter_ == n_iter == mmc.loss_curve_.shape[0]


@pytest.mark.parametrize("diagonal", [False, True])
def test_solution_is_feasible_and_loss_decreases(diagonal):
    X, pairs, signs = _pair_problem(4, n_features=5)
    mmc = MMC(diagonal=diagonal, tol=1e-6, max_iter=300).fit_pairs(X[pairs], signs)
    assert mmc.n_iter_ == mmc.loss_curve_.shape[0] == mmc.history_["change"].shape[0]
    assert np.all(np.diff(mmc.loss_curve_) <= 1e-12 * np.abs(mmc.loss_curve_).max())
    similar, dissimilar = _differences(X, pairs, signs)
    sq_similar = (similar @ mmc.components_.T) ** 2
    if diagonal:
        # At the optimum of h, the similar sum is 1/2 (h is stationary in scale).
        assert sq_similar.sum() == pytest.approx(0.5, rel=1e-3)
        assert (
            np.count_nonzero(mmc.components_ - np.diag(np.diag(mmc.components_))) == 0
        )
    else:
        assert sq_similar.sum() == pytest.approx(1.0, rel=1e-6)
    # Better than the start (the Euclidean metric at the same scale).
    dist = np.linalg.norm(dissimilar @ mmc.components_.T, axis=1).sum()
    start = np.linalg.norm(dissimilar, axis=1).sum() / np.linalg.norm(similar)
    assert dist > start * (1.0 if diagonal else 1.01) / (2**0.5 if diagonal else 1.0)


@pytest.mark.parametrize("diagonal", [False, True])
def test_shift_and_rescale_invariance(diagonal):
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    mmc = MMC(diagonal=diagonal, random_state=0).fit(X, y)
    shifted = MMC(diagonal=diagonal, random_state=0).fit(X + 5.0, y)
    np.testing.assert_allclose(
        shifted.get_mahalanobis_matrix(),
        mmc.get_mahalanobis_matrix(),
        rtol=1e-6,
        atol=1e-9,
    )
    scaled = MMC(diagonal=diagonal, random_state=0).fit(X * 10.0, y)
    np.testing.assert_allclose(
        scaled.get_mahalanobis_matrix() * 100.0,
        mmc.get_mahalanobis_matrix(),
        rtol=1e-6,
        atol=1e-9,
    )
    assert scaled.n_iter_ == mmc.n_iter_


@pytest.mark.parametrize("diagonal", [False, True])
def test_max_iter_reached_warns(diagonal):
    X, pairs, signs = _pair_problem(5)
    with pytest.warns(ConvergenceWarning, match="MMC did not converge"):
        mmc = MMC(diagonal=diagonal, max_iter=1, tol=0).fit_pairs(X[pairs], signs)
    assert mmc.n_iter_ == 1


def test_callback_and_verbose(capsys):
    X, pairs, signs = _pair_problem(6)
    seen = []
    MMC(verbose=1, callback=lambda L, n: seen.append((n, L.shape))).fit_pairs(
        X[pairs], signs
    )
    assert seen and seen[0] == (1, (4, 4))
    assert "[MMC]" in capsys.readouterr().out


# --- robustness ------------------------------------------------------------------


@pytest.mark.parametrize("diagonal", [False, True])
def test_degenerate_pairs_change_nothing(diagonal):
    X, pairs, signs = _pair_problem(7)
    mmc = MMC(diagonal=diagonal).fit_pairs(X[pairs], signs)
    self_pairs = np.stack([np.arange(5), np.arange(5)], axis=1)
    with_self = MMC(diagonal=diagonal).fit_pairs(
        X[np.concatenate([pairs, self_pairs])],
        np.concatenate([signs, [1, -1, 1, -1, 1]]),
    )
    np.testing.assert_allclose(with_self.components_, mmc.components_, rtol=1e-10)


@pytest.mark.parametrize("diagonal", [False, True])
def test_rank_deficient_data_gives_finite_metric(diagonal):
    # More features than points, constant and duplicated features, duplicate
    # points, and a feature that separates the classes perfectly (so similar
    # pairs never differ in it): the setting where eigendecompositions and
    # logarithms go wrong.
    rng = np.random.RandomState(0)
    y = np.repeat([0, 1, 2], 4)
    X = rng.standard_normal((12, 20))
    X[:, 3] = 1.0
    X[:, 4] = X[:, 5]
    X[:, 6] = y
    X[6] = X[7]
    mmc = MMC(diagonal=diagonal, random_state=0, max_iter=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mmc.fit(X, y)
    assert np.all(np.isfinite(mmc.components_))
    assert np.all(np.isfinite(mmc.loss_curve_))
    Z = mmc.transform(X)
    assert np.all(np.isfinite(Z))


@pytest.mark.parametrize(
    ("signs", "match"),
    [
        ([1, 1, 1], "at least one dissimilar pair"),
        ([-1, -1, -1], "at least one similar pair"),
    ],
)
def test_one_kind_of_pair_is_a_clear_error(signs, match):
    X = np.random.RandomState(0).standard_normal((6, 2))
    with pytest.raises(ValueError, match=match):
        MMC().fit_pairs(X.reshape(3, 2, 2), signs)


def test_similar_pairs_of_identical_points_only_is_a_clear_error():
    X = np.random.RandomState(0).standard_normal((4, 3))
    pairs = np.stack([X[[0, 1, 2]], X[[0, 3, 1]]], axis=1)
    with pytest.raises(ValueError, match="similar pair of distinct points"):
        MMC().fit_pairs(pairs, [1, -1, -1])


@pytest.mark.parametrize(
    ("pairs", "labels", "match"),
    [
        (np.zeros((3, 3, 2)), [1, -1, 1], r"shape \(n_pairs, 2, n_features\)"),
        (np.ones((3, 2, 2)), [1, 0, -1], "must be \\+1 \\(similar\\) or -1"),
        (np.ones((3, 2, 2)), [1, -1], r"pair_labels must have shape \(3,\)"),
        (np.ones((3, 2, 2)), None, "needs pair_labels"),
    ],
)
def test_bad_pairs_are_clear_errors(pairs, labels, match):
    with pytest.raises(ValueError, match=match):
        MMC().fit_pairs(pairs, labels)


def test_bad_parameters_are_clear_errors():
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match="'diagonal' parameter of MMC must be a bool"):
        MMC(diagonal="yes").fit(X, y)
    with pytest.raises(ValueError, match="'n_constraints' parameter"):
        MMC(n_constraints=1).fit(X, y)


# scikit-learn's finiteness check sums the points, and that sum overflows
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("diagonal", [False, True])
def test_pairs_whose_differences_overflow(diagonal):
    # Points near the float64 limit with opposite signs: their differences
    # overflow unless taken in units of the points; the fit is the same as
    # on the points scaled down by a power of two, scaled back (up to the
    # digits a map near 1e-309 loses to subnormal numbers).
    X, pairs, signs = _pair_problem(4)
    X = 1.9 * X / np.abs(X).max()
    big = np.ldexp(X, 1023)
    fits = [
        MMC(diagonal=diagonal, max_iter=20).fit_pairs(points[pairs], signs)
        for points in (X, big)
    ]
    assert np.all(np.isfinite(fits[1].components_))
    np.testing.assert_allclose(
        np.ldexp(fits[1].components_, 1023), fits[0].components_, rtol=1e-12
    )


@pytest.mark.parametrize("diagonal", [False, True])
@pytest.mark.parametrize(
    "outlier, scale", [(1e250, 1.0), (1e250, 2.0**-500), (1e250, 1e-170), (1e87, 1.0)]
)
def test_pairs_far_apart_in_scale(diagonal, outlier, scale):
    # Similar pairs of order one beside dissimilar ones through a point
    # 1e250 away: in one unit for both, the similar squares round to zero
    # (the full form divided by a zero trace, the diagonal one said no pair
    # had distinct points). At 1e-170 the diagonal kernel squares the
    # differences unscaled, and the similar ones underflow there too; with
    # the point 1e87 away they do not, but the diagonal Newton system did.
    # At the optimum the similar pairs' sum is 1 (the full form's
    # constraint) or 1/2 (the diagonal form's h along a ray).
    rng = np.random.RandomState(0)
    X = rng.standard_normal((30, 4))
    X[0] *= outlier
    near = rng.randint(1, 30, size=(20, 2))
    far = rng.randint(0, 30, size=(20, 2))
    far[:5, 0] = 0
    pairs = X[np.concatenate([near, far])] * scale
    signs = np.repeat([1, -1], 20)
    model = MMC(diagonal=diagonal, random_state=0).fit_pairs(pairs, signs)
    assert np.all(np.isfinite(model.components_))
    similar = (pairs[:20, 0] - pairs[:20, 1]) @ model.components_.T
    expected = 0.5 if diagonal else 1.0
    assert np.sum(similar**2) == pytest.approx(expected, rel=1e-6)


# --- scratch memory reused between fits ------------------------------------------


def test_a_fit_inside_a_callback_shares_no_scratch_memory():
    # The diagonal form borrows its squared differences and Hessian rows
    # from the thread's scratch pool; a fit run from the callback must get
    # buffers of its own.
    X, y = load_iris(return_X_y=True)
    plain = MMC(diagonal=True, random_state=0).fit(X, y)
    other = MMC(diagonal=True, random_state=1).fit(X, y)
    inner = []

    def callback(components, n_iter):
        inner.append(MMC(diagonal=True, random_state=1).fit(X, y).components_)

    outer = MMC(diagonal=True, random_state=0, callback=callback).fit(X, y)
    np.testing.assert_array_equal(outer.components_, plain.components_)
    assert len(inner) == outer.n_iter_
    for components in inner:
        np.testing.assert_array_equal(components, other.components_)


def test_fits_in_parallel_threads_keep_their_own_scratch():
    from concurrent.futures import ThreadPoolExecutor

    X, y = load_iris(return_X_y=True)

    def fit(seed):
        return MMC(diagonal=True, random_state=seed).fit(X, y).components_

    serial = [fit(seed) for seed in range(8)]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(fit, range(8)))
    for one, other in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(one, other)


def test_scratch_buffers_are_reused_but_never_shared(monkeypatch):
    import threading

    from linmetric import _scratch

    monkeypatch.setattr(_scratch, "_LOCAL", threading.local())  # an empty pool
    with _scratch.scratch() as empty:
        a = empty((100, 3))
        with _scratch.scratch() as inner_empty:
            b = inner_empty((100, 3))
            assert not np.shares_memory(a, b)
        c = empty((50,))  # b's buffer, returned by the inner block
        assert np.shares_memory(b, c) and not np.shares_memory(a, c)
    with _scratch.scratch() as empty:
        d, e = empty((300,)), empty((10, 30))
        assert np.shares_memory(a, d) ^ np.shares_memory(a, e)
    # Beyond MAX_KEPT_BUFFERS, the buffers used least recently are dropped.
    monkeypatch.setattr(_scratch, "MAX_KEPT_BUFFERS", 2)
    with _scratch.scratch() as empty:
        f = empty((1000,))
    assert [buffer.shape[0] for buffer in _scratch._LOCAL.pool] == [1000, 300]
    # Beyond MAX_KEPT_BYTES, buffers are dropped at the end of the block.
    monkeypatch.setattr(_scratch, "MAX_KEPT_BYTES", 0)
    with _scratch.scratch() as empty:
        f = empty((300,))
    with _scratch.scratch() as empty:
        assert not np.shares_memory(f, empty((300,)))
