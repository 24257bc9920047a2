"""Tests of SDML: the solver against the NumPy reference, the shift, the estimator."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from linmetric import SDML
from linmetric._itml import sample_label_pairs
from linmetric._optimize import IterationLog
from linmetric._sdml import optimality_residual, shifted_normalised, sparse_inverse
from linmetric.reference.sdml import sdml as reference_sdml


def _pairs(X, y, n_pairs, seed):
    rows, cols, signs = sample_label_pairs(y, n_pairs, np.random.RandomState(seed))
    return np.stack([X[rows], X[cols]], axis=1), signs


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("balance_param", [0.2, 2.0])  # PD and shifted P
def test_fit_pairs_matches_reference(iris, dtype, balance_param):
    X, y = iris
    pairs, labels = _pairs(X, y, 60, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        sdml = SDML(
            balance_param=balance_param,
            sparsity_param=0.05,
            prior="covariance",
            tol=1e-10,
        )
        sdml.fit_pairs(pairs.astype(dtype), labels)
    assert sdml.components_.dtype == dtype
    prior_inverse = np.cov(pairs.reshape(-1, 4), rowvar=False)
    expected = reference_sdml(
        pairs[:, 0] - pairs[:, 1], labels, prior_inverse, balance_param, 0.05
    )
    rtol = 1e-6 if dtype == np.float64 else 2e-4
    np.testing.assert_allclose(
        sdml.get_mahalanobis_matrix(), expected, rtol=rtol, atol=rtol * 1e-2
    )


def test_solver_reaches_the_optimality_conditions():
    rng = np.random.RandomState(0)
    A = rng.standard_normal((40, 8))
    P, _, _ = shifted_normalised(A.T @ A / 40, 0.01)
    log = IterationLog("test", columns=("residual", "step"))
    M, _, converged, _ = sparse_inverse(P, 0.1, max_iter=5000, tol=1e-9, log=log)
    assert converged
    assert optimality_residual(M, np.linalg.inv(M), P, 0.1) < 1e-7
    assert np.count_nonzero(M) < M.size  # the L1 penalty zeroed some entries
    # A large penalty leaves only the diagonal: the inverse of diag(P).
    M, _, _, _ = sparse_inverse(P, 10.0, max_iter=5000, tol=1e-9, log=log)
    np.testing.assert_allclose(M, np.diag(1 / np.diag(P)), rtol=1e-9, atol=1e-12)


def test_indefinite_problem_is_shifted_with_a_warning(iris):
    X, y = iris
    pairs, _ = _pairs(X, y, 60, seed=0)
    # All dissimilar with a large weight: P = cov - 5 * (mean dissimilar scatter).
    with pytest.warns(UserWarning, match="not positive definite"):
        sdml = SDML(balance_param=5.0, prior="covariance")
        sdml.fit_pairs(pairs, -np.ones(60))
    assert sdml.shift_ > 0
    assert np.all(np.isfinite(sdml.components_))
    assert np.linalg.eigvalsh(sdml.get_mahalanobis_matrix())[0] > 0
    # A positive definite P is left alone, silently.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sdml = SDML(balance_param=0.1, eigenvalue_floor=1e-3, prior="covariance")
        sdml.fit_pairs(pairs, np.ones(60))
    assert sdml.shift_ == 0


def test_singular_problem_is_lifted_silently():
    rng = np.random.RandomState(0)
    X = np.hstack([rng.standard_normal((30, 3)), np.zeros((30, 1))])  # constant
    y = np.repeat([0, 1, 2], 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sdml = SDML(balance_param=0.01, prior="covariance", random_state=0)
        sdml.fit(X, y)
    assert sdml.shift_ > 0
    assert np.all(np.isfinite(sdml.components_))


@pytest.mark.parametrize("prior", ["identity", "covariance"])
def test_auto_balance_is_the_largest_that_needs_no_lift(iris, prior):
    X, y = iris
    pairs, labels = _pairs(X, y, 100, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sdml = SDML(prior=prior, tol=1e-4).fit_pairs(pairs, labels)
    eta = sdml.balance_param_
    assert 0 < eta < 1
    # no warning, and a fixed eta a little larger needs a lift
    fixed = SDML(prior=prior, balance_param=eta, tol=1e-4).fit_pairs(pairs, labels)
    np.testing.assert_array_equal(fixed.components_, sdml.components_)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        larger = SDML(prior=prior, balance_param=1.01 * eta, tol=1e-4).fit_pairs(
            pairs, labels
        )
    assert larger.shift_ > sdml.shift_ + 1e-6 * abs(larger.shift_)
    # only similar pairs: the pair term adds no negative direction, eta = 1
    similar = SDML(prior=prior, tol=1e-4).fit_pairs(
        pairs[labels > 0], labels[labels > 0]
    )
    assert similar.balance_param_ == 1.0


def test_similar_pairs_get_closer(iris):
    X, y = iris
    pairs, labels = _pairs(X, y, 200, seed=2)
    sdml = SDML(prior="identity", balance_param=0.2).fit_pairs(pairs, labels)
    distances = sdml.pair_distance(pairs)
    euclidean = np.linalg.norm(pairs[:, 0] - pairs[:, 1], axis=1)
    ratio = distances / np.maximum(euclidean, 1e-12)
    assert ratio[labels > 0].mean() < ratio[labels < 0].mean()


@pytest.mark.parametrize("prior", ["covariance", "identity"])
def test_invariances(iris, prior):
    X, y = iris
    sdml = SDML(prior=prior, random_state=0, tol=1e-10).fit(X, y)
    shifted = SDML(prior=prior, random_state=0, tol=1e-10).fit(X + 5.0, y)
    np.testing.assert_allclose(shifted.components_, sdml.components_, rtol=1e-6)
    for scale in (3.0, 1e-200, 1e200):
        scaled = SDML(prior=prior, random_state=0, tol=1e-10).fit(scale * X, y)
        np.testing.assert_allclose(
            scale * scaled.components_, sdml.components_, rtol=1e-6, atol=1e-9
        )
    pairs, labels = _pairs(X, y, 80, seed=3)
    order = np.random.RandomState(0).permutation(80)
    a = SDML(tol=1e-10).fit_pairs(pairs, labels)
    b = SDML(tol=1e-10).fit_pairs(pairs[order], labels[order])
    np.testing.assert_allclose(
        a.get_mahalanobis_matrix(), b.get_mahalanobis_matrix(), rtol=1e-6
    )


def test_convergence_is_reported(iris):
    X, y = iris
    with pytest.warns(ConvergenceWarning, match="SDML did not converge"):
        sdml = SDML(max_iter=2, random_state=0).fit(X, y)
    assert sdml.n_iter_ == 2 and sdml.loss_curve_.shape == (2,)


def test_bad_input_is_a_clear_error(iris):
    X, y = iris
    pairs, labels = _pairs(X, y, 10, seed=0)
    with pytest.raises(ValueError, match=r"shape \(n_pairs, 2, n_features\)"):
        SDML().fit_pairs(pairs[:, :1], labels)
    with pytest.raises(ValueError, match="pair_labels must be"):
        SDML().fit_pairs(pairs, np.zeros(10))
    with pytest.raises(ValueError, match="pair_labels must have shape"):
        SDML().fit_pairs(pairs, labels[:5])
    with pytest.raises(ValueError, match="needs pair_labels"):
        SDML().fit_pairs(pairs, None)
    with pytest.raises(ValueError, match="prior must be positive definite"):
        SDML(prior=-np.eye(4)).fit(X, y)
    with pytest.raises(ValueError, match="balance_param"):
        SDML(balance_param=-1).fit(X, y)
