"""Tests of LSML: objective and gradient against the NumPy reference, the estimator."""

import numpy as np
import pytest
from scipy.optimize import check_grad
from sklearn.datasets import load_iris

import linmetric._lsml as lsml_module
from linmetric import LSML
from linmetric._constraints import sample_quadruplets
from linmetric._kernels.lsml import mean_variance
from linmetric._lsml import lsml_loss_grad
from linmetric._validation import differences_in_units
from linmetric.reference import lsml as reference


def _problem(seed, n=30, d=4):
    rng = np.random.RandomState(seed)
    quadruplets = rng.standard_normal((n, 4, d))
    weights = rng.uniform(0.5, 2.0, n)
    weights /= weights.sum()
    A = rng.standard_normal((d, d))
    prior = A @ A.T + d * np.eye(d)
    L = np.eye(d) + 0.3 * rng.standard_normal((d, d))
    return quadruplets, weights, prior, L


def _evaluate_against_reference(quadruplets, weights, prior, L):
    """``lsml_loss_grad`` at L, its loss and gradient held to the reference.

    Returns the gradient, the number of violated comparisons, and the
    differences and inverse prior it was evaluated with.
    """
    prior_inverse = np.linalg.inv(prior)
    diffs = quadruplets[:, 0::2] - quadruplets[:, 1::2]
    loss, grad, n_violated = lsml_loss_grad(L, diffs, weights, prior_inverse, 0.7)
    M = L.T @ L
    constant = 0.7 * (np.linalg.slogdet(prior)[1] - L.shape[0])
    assert loss + constant == pytest.approx(
        reference.objective(M, quadruplets, weights, prior, 0.7), rel=1e-10
    )
    # dF/dL = 2 L dF/dM
    np.testing.assert_allclose(
        grad,
        2 * L @ reference.gradient(M, quadruplets, weights, prior, 0.7),
        rtol=1e-9,
        atol=1e-12,
    )
    return grad, n_violated, diffs, prior_inverse


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_and_gradient_match_reference_and_finite_differences(seed):
    quadruplets, weights, prior, L = _problem(seed)
    _, n_violated, diffs, prior_inverse = _evaluate_against_reference(
        quadruplets, weights, prior, L
    )
    assert 0 < n_violated < 30
    d = L.shape[0]

    def f(flat):
        return lsml_loss_grad(flat.reshape(d, d), diffs, weights, prior_inverse, 0.7)[0]

    def g(flat):
        return lsml_loss_grad(flat.reshape(d, d), diffs, weights, prior_inverse, 0.7)[
            1
        ].ravel()

    assert check_grad(f, g, L.ravel(), epsilon=1e-7) < 1e-5 * np.linalg.norm(
        g(L.ravel())
    )


def test_scalar_prior_inverse_is_a_multiple_of_the_identity():
    quadruplets, weights, _, L = _problem(0)
    diffs = quadruplets[:, 0::2] - quadruplets[:, 1::2]
    scalar = lsml_loss_grad(L, diffs, weights, 2.5, 0.7)
    matrix = lsml_loss_grad(L, diffs, weights, 2.5 * np.eye(4), 0.7)
    assert scalar[0] == pytest.approx(matrix[0], rel=1e-14)
    np.testing.assert_allclose(scalar[1], matrix[1], rtol=1e-13, atol=1e-15)
    assert scalar[2] == matrix[2]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fit_matches_reference_solver(dtype):
    quadruplets, weights, prior, _ = _problem(3, n=40, d=3)
    lsml = LSML(prior=prior, regularization=0.5, tol=1e-9)
    lsml.fit_quadruplets(quadruplets.astype(dtype), weights)
    assert lsml.components_.dtype == dtype
    expected = reference.lsml(quadruplets, weights, prior, 0.5)
    rtol = 1e-4 if dtype == np.float64 else 1e-3
    np.testing.assert_allclose(
        lsml.get_mahalanobis_matrix(), expected, rtol=rtol, atol=rtol
    )


def test_degenerate_quadruplets_are_finite(iris):
    X, _ = iris
    # a == b and c == d: zero-length sides contribute nothing, no NaN.
    quadruplets = np.stack([X[:10], X[:10], X[10:20], X[10:20]], axis=1)
    lsml = LSML().fit_quadruplets(quadruplets)
    # nothing to learn: the prior, the identity in units of the mean variance
    variance = np.trace(np.cov(quadruplets.reshape(-1, 4), rowvar=False)) / 4
    np.testing.assert_allclose(
        lsml.components_, np.eye(4) / np.sqrt(variance), atol=1e-6
    )


def test_comparisons_are_learned(iris):
    X, y = iris
    index = sample_quadruplets(y, 300, np.random.RandomState(0))
    quadruplets = X[index]
    lsml = LSML(regularization=0.01).fit_quadruplets(quadruplets)
    before = np.mean(
        np.linalg.norm(quadruplets[:, 0] - quadruplets[:, 1], axis=1)
        < np.linalg.norm(quadruplets[:, 2] - quadruplets[:, 3], axis=1)
    )
    after = np.mean(
        lsml.pair_distance(quadruplets[:, :2]) < lsml.pair_distance(quadruplets[:, 2:])
    )
    assert after > before


@pytest.mark.parametrize("prior", ["covariance", "identity"])
def test_invariances(iris, prior):
    X, y = iris
    lsml = LSML(prior=prior, random_state=0, tol=1e-9).fit(X, y)
    shifted = LSML(prior=prior, random_state=0, tol=1e-9).fit(X + 5.0, y)
    np.testing.assert_allclose(
        shifted.get_mahalanobis_matrix(), lsml.get_mahalanobis_matrix(), rtol=1e-4
    )
    for scale in (3.0, 1e-200, 1e200):
        scaled = LSML(prior=prior, random_state=0, tol=1e-9).fit(scale * X, y)
        # M = L^T L in the units of X (M itself would underflow at 1e200)
        rescaled = scale * scaled.components_
        np.testing.assert_allclose(
            rescaled.T @ rescaled, lsml.get_mahalanobis_matrix(), rtol=1e-4, atol=1e-6
        )
    index = sample_quadruplets(y, 100, np.random.RandomState(1))
    order = np.random.RandomState(0).permutation(100)
    a = LSML(tol=1e-9).fit_quadruplets(X[index])
    b = LSML(tol=1e-9).fit_quadruplets(X[index][order])
    np.testing.assert_allclose(
        a.get_mahalanobis_matrix(), b.get_mahalanobis_matrix(), rtol=1e-4, atol=1e-6
    )


def test_bad_input_is_a_clear_error(iris):
    X, y = iris
    quadruplets = X[sample_quadruplets(y, 10, np.random.RandomState(0))]
    with pytest.raises(ValueError, match=r"quadruplets must have shape"):
        LSML().fit_quadruplets(quadruplets[:, :3])
    with pytest.raises(ValueError, match="weights must be finite and non-negative"):
        LSML().fit_quadruplets(quadruplets, weights=-np.ones(10))
    with pytest.raises(ValueError, match=r"weights must have shape \(10,\)"):
        LSML().fit_quadruplets(quadruplets, weights=np.ones(3))
    with pytest.raises(ValueError, match="must not all be zero"):
        LSML().fit_quadruplets(quadruplets, weights=np.zeros(10))
    with pytest.raises(ValueError, match="same-class pair"):
        LSML().fit(X[:3], [0, 1, 2])
    with pytest.raises(ValueError, match="regularization"):
        LSML(regularization=0).fit(X, y)


def test_callback_sees_components_in_data_units(iris):
    X, y = iris
    seen = []
    lsml = LSML(random_state=0, callback=lambda L, n: seen.append(L.copy()))
    lsml.fit(1e3 * X, y)
    np.testing.assert_allclose(seen[-1], lsml.components_, rtol=1e-12)


def test_skipping_certified_comparisons_changes_nothing(iris, monkeypatch):
    X, y = iris
    quadruplets = X[sample_quadruplets(y, 200, np.random.RandomState(0))]
    skipping = LSML(tol=1e-9).fit_quadruplets(quadruplets)
    monkeypatch.setattr(lsml_module, "AT_RISK_FRACTION", -1.0)  # never skip
    full = LSML(tol=1e-9).fit_quadruplets(quadruplets)
    np.testing.assert_allclose(skipping.components_, full.components_, rtol=1e-8)
    np.testing.assert_allclose(skipping.loss_curve_, full.loss_curve_, rtol=1e-10)


def _bound_at_start(seed):
    """500 quadruplets' differences, a map, the bound reset there, and an RNG."""
    quadruplets, weights, _, L = _problem(seed, n=500)
    diffs = quadruplets[:, 0::2] - quadruplets[:, 1::2]
    bound = lsml_module._SatisfiedBound(diffs)
    distance = np.empty((500, 2))
    lsml_loss_grad(L, diffs, weights, np.eye(4), 1.0, distance=distance)
    bound.reset(L, distance)
    return diffs, L, bound, np.random.RandomState(seed)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_satisfied_bound_is_certified(seed):
    diffs, L, bound, rng = _bound_at_start(seed)
    for size in (1e-3, 1e-2, 1e-1):
        moved = L + size * rng.standard_normal(L.shape)
        rows = bound.at_risk(moved)
        if rows is None:
            continue
        skipped = np.setdiff1d(np.arange(500), rows)
        assert skipped.size > 0
        after = np.linalg.norm(diffs[skipped] @ moved.T, axis=2)
        assert np.all(after[:, 0] < after[:, 1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_satisfied_bound_stays_certified_along_a_path(seed, monkeypatch):
    # Each step moves the reference to the new point: the margins computed
    # there are exact, the others lowered by the step's bound.
    monkeypatch.setattr(lsml_module, "AT_RISK_FRACTION", 1.0)
    diffs, L, bound, rng = _bound_at_start(seed)
    n_skipped = 0
    for size in (1e-3, 1e-4, 3e-2, 1e-3, 1e-5, 1e-4, 1e-3):
        L = L + size * rng.standard_normal(L.shape)
        rows = bound.at_risk(L)
        exact = np.linalg.norm(diffs @ L.T, axis=2)
        skipped = np.setdiff1d(np.arange(500), rows)
        assert np.all(exact[skipped, 0] < exact[skipped, 1])
        # margins are lower bounds, exact on the rows computed
        bound.move(L, rows, exact[rows])
        margin = exact[:, 1] - exact[:, 0]
        assert np.all(bound.margin <= margin + 1e-12)
        np.testing.assert_array_equal(bound.margin[rows], margin[rows])
        n_skipped += skipped.size
    assert n_skipped > 500


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("scale", [1.0, 1e-300, 1e-310, 1e300, 1.5e308])
def test_differences_by_index_match_gathered_points(dtype, scale):
    rng = np.random.RandomState(0)
    X = rng.standard_normal((12, 5))
    X[3] = X[4]  # a zero-length difference
    if dtype == np.float32:
        scale = min(max(scale, 1e-30), 1e30)
    X = (X * scale).astype(dtype) if scale < 1e308 else X.clip(-1, 1) * scale
    X = X.astype(dtype)
    index = rng.randint(12, size=(40, 4)).astype(np.intp)
    index[0] = [3, 4, 4, 3]
    diffs, exponent, lengths = lsml_module._differences(X, index)
    expected, expected_exponent = differences_in_units(
        X[index[:, 0::2]], X[index[:, 1::2]]
    )
    assert exponent == expected_exponent
    np.testing.assert_array_equal(diffs, expected)
    np.testing.assert_allclose(lengths, np.linalg.norm(expected, axis=2), rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mean_variance_kernel_matches_numpy(dtype):
    X = (np.random.RandomState(1).standard_normal((300, 7)) * 3 + 50).astype(dtype)
    expected = np.var(X, axis=0, dtype=np.float64, ddof=1).mean()
    assert mean_variance(X) == pytest.approx(expected, rel=1e-12)
    assert lsml_module._mean_variance(X, 2) == pytest.approx(expected / 16, rel=1e-12)


def test_zero_length_differences_match_reference():
    quadruplets, weights, prior, L = _problem(3)
    quadruplets[:5, 1] = quadruplets[:5, 0]  # a = b: satisfied, no gradient
    quadruplets[5:10, 3] = quadruplets[5:10, 2]  # c = d: violated, one side
    grad, n_violated, _, _ = _evaluate_against_reference(quadruplets, weights, prior, L)
    assert n_violated >= 5 and np.all(np.isfinite(grad))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spectral_norm_bound(seed):
    rng = np.random.RandomState(seed)
    for shape_scale in (1e-200, 1.0, 1e150):
        A = rng.standard_normal((30, 30)) * shape_scale
        A[:, 0] *= 10.0 ** rng.uniform(-3, 3)
        exact = np.linalg.norm(A, 2)
        bound = lsml_module.spectral_norm_bound(A)
        assert exact <= bound <= 30 ** (1 / 16) * exact * (1 + 1e-5)
    assert lsml_module.spectral_norm_bound(np.zeros((3, 3))) == 0.0


def test_start_distances_from_lengths_change_nothing(iris, monkeypatch):
    # The identity prior's start L = c I takes its distances from the
    # lengths of the differences instead of the product L v.
    X, y = iris
    quadruplets = X[sample_quadruplets(y, 200, np.random.RandomState(0))]
    shortcut = LSML(tol=1e-9).fit_quadruplets(quadruplets)
    original = lsml_module.lsml_loss_grad
    calls = []

    def full_product(*args, known_distance=False, **kwargs):
        calls.append(known_distance)
        return original(*args, **kwargs)

    monkeypatch.setattr(lsml_module, "lsml_loss_grad", full_product)
    full = LSML(tol=1e-9).fit_quadruplets(quadruplets)
    assert calls[0] is True and not any(calls[1:])
    np.testing.assert_allclose(shortcut.components_, full.components_, rtol=1e-8)
    np.testing.assert_allclose(shortcut.loss_curve_, full.loss_curve_, rtol=1e-10)


# --- the passes in NumPy on small problems --------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_features", [3, 20])
def test_numpy_passes_equal_the_kernels(dtype, n_features, monkeypatch):
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(60, n_features)) * 2.0**40).astype(dtype)
    X[5] = X[6]  # a zero-length difference when (5, 6) is drawn
    index = rng.integers(0, 60, size=(150, 4))
    index[0, :2] = [5, 6]
    components = rng.normal(size=(n_features, n_features)) + 3 * np.eye(n_features)
    results = []
    for limit in (10**9, -1):  # NumPy, then the compiled kernels
        monkeypatch.setattr(lsml_module, "NUMPY_MAX_ENTRIES", limit)
        diffs, exponent, lengths = lsml_module._differences(X, index)
        variance = lsml_module._mean_variance(X, exponent)
        loss_grad = lsml_module.lsml_loss_grad(
            components, diffs, np.full(150, 1 / 150), np.eye(n_features), 0.1
        )
        results.append((diffs, exponent, lengths, variance, loss_grad))
    (d0, e0, l0, v0, (f0, g0, n0)), (d1, e1, l1, v1, (f1, g1, n1)) = results
    assert e0 == e1
    np.testing.assert_array_equal(d0, d1)
    np.testing.assert_allclose(l0, l1, rtol=1e-14)
    assert l0[0, 0] == 0.0
    assert v0 == pytest.approx(v1, rel=1e-12)
    assert n0 == n1 > 0
    assert f0 == pytest.approx(f1, rel=1e-12)
    np.testing.assert_allclose(g0, g1, rtol=1e-10, atol=1e-12 * np.abs(g1).max())


def test_small_problems_take_the_numpy_passes(monkeypatch):
    import linmetric._kernels.lsml as kernels

    X, y = load_iris(return_X_y=True)
    calls = []
    for name in ("quadruplet_differences", "scale_differences", "residuals"):
        real = getattr(kernels, name)
        monkeypatch.setattr(
            kernels, name, lambda *a, _real=real, **k: calls.append(1) or _real(*a, **k)
        )
    small = LSML(random_state=0).fit(X, y)
    assert calls == []
    monkeypatch.setattr(lsml_module, "NUMPY_MAX_ENTRIES", -1)
    compiled = LSML(random_state=0).fit(X, y)
    assert calls
    np.testing.assert_allclose(small.components_, compiled.components_, rtol=1e-12)


@pytest.mark.parametrize("numpy_passes", [True, False])
def test_a_fit_inside_a_callback_shares_no_scratch_memory(numpy_passes, monkeypatch):
    # The differences and the evaluations' buffers come from the thread's
    # scratch pool; a fit run from the callback must get buffers of its own.
    if not numpy_passes:
        monkeypatch.setattr(lsml_module, "NUMPY_MAX_ENTRIES", -1)
    X, y = load_iris(return_X_y=True)
    plain = LSML(random_state=0).fit(X, y)
    other = LSML(random_state=1).fit(X, y)
    inner = []

    def callback(components, n_iter):
        inner.append(LSML(random_state=1).fit(X, y).components_)

    outer = LSML(random_state=0, callback=callback).fit(X, y)
    np.testing.assert_array_equal(outer.components_, plain.components_)
    assert len(inner) == outer.n_iter_
    for components in inner:
        np.testing.assert_array_equal(components, other.components_)
