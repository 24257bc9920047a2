"""Tests of SCML: features and RDA against the NumPy reference, the estimator."""

import numpy as np
import pytest

from linmetric import SCML
from linmetric._constraints import sample_triplets
from linmetric._optimize import IterationLog
from linmetric._scml import TripletFeatures, distinct_rows, lda_basis, rda
from linmetric.reference import scml as reference


def _triplets(X, y, seed=0):
    return sample_triplets(
        X, y, k_genuine=2, k_impostor=3, random_state=np.random.RandomState(seed)
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_features_and_rda_match_reference(iris, dtype):
    X, y = iris
    X = X.astype(dtype)
    index = _triplets(X, y)
    basis = lda_basis(X.astype(np.float64), y, 12, np.random.RandomState(0))
    assert np.allclose(np.linalg.norm(basis, axis=1), 1.0)
    features = TripletFeatures(X.astype(np.float64) @ basis.T, index)
    expected = reference.triplet_features(X[index], basis, features.scale)
    rtol = 1e-10 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(
        features.rows(np.arange(len(features))), expected, rtol=rtol, atol=rtol
    )

    n_steps, batch_size = 300, 7
    log = IterationLog("SCML", columns=("n_nonzero",))
    weights, n_iter, _ = rda(
        features,
        beta=1e-3,
        gamma=5e-3,
        max_iter=n_steps,
        output_iter=n_steps,
        batch_size=batch_size,
        tol=0.0,
        random_state=np.random.RandomState(5),
        log=log,
        components=None,
    )
    replay = np.random.RandomState(5)
    batches = [replay.randint(len(features), size=batch_size) for _ in range(n_steps)]
    expected_weights = reference.rda(expected, batches, 1e-3, 5e-3)
    assert n_iter == n_steps
    np.testing.assert_allclose(weights, expected_weights, rtol=1e-4, atol=1e-8)
    assert reference.objective(weights, expected, 1e-3) < reference.objective(
        np.zeros_like(weights), expected, 1e-3
    )


def test_fit_learns_the_triplets_and_keeps_float32(iris):
    X, y = iris
    index = _triplets(X, y, seed=1)
    triplets = X[index]
    for dtype in (np.float64, np.float32):
        scml = SCML(random_state=0).fit_triplets(triplets.astype(dtype))
        assert scml.components_.dtype == dtype
        near = scml.pair_distance(triplets[:, :2].astype(dtype))
        far = scml.pair_distance(triplets[:, [0, 2]].astype(dtype))
        euclidean = np.mean(
            np.linalg.norm(triplets[:, 0] - triplets[:, 1], axis=1)
            < np.linalg.norm(triplets[:, 0] - triplets[:, 2], axis=1)
        )
        assert np.mean(near < far) > euclidean
    M = scml.get_mahalanobis_matrix()
    expected = scml.basis_.T @ (scml.weights_[:, None] * scml.basis_)
    np.testing.assert_allclose(M, expected, rtol=1e-4, atol=1e-6)


def test_invariances(iris):
    X, y = iris
    scml = SCML(random_state=0).fit(X, y)
    shifted = SCML(random_state=0).fit(X + 5.0, y)
    # Rounding differences can flip a hinge near zero and move the stochastic
    # path a little; a real dependence on the shift would be of order one.
    M = scml.get_mahalanobis_matrix()
    np.testing.assert_allclose(
        shifted.get_mahalanobis_matrix(), M, rtol=0, atol=2e-3 * np.abs(M).max()
    )
    # A power of two rescales without rounding: the same path exactly.
    scaled = SCML(random_state=0).fit(4.0 * X, y)
    np.testing.assert_allclose(4.0 * scaled.components_, scml.components_, rtol=1e-12)
    np.testing.assert_allclose(16.0 * scaled.weights_, scml.weights_, rtol=1e-12)


def test_triplet_difference_basis_and_given_basis(iris):
    X, y = iris
    triplets = X[_triplets(X, y)]
    scml = SCML(basis="triplet_diffs", n_basis=7, random_state=0)
    scml.fit_triplets(triplets)
    assert scml.basis_.shape == (7, 4)
    scml = SCML(basis=np.eye(4), random_state=0).fit(X, y)
    np.testing.assert_array_equal(scml.basis_, np.eye(4))
    # With the axes as basis, M is diagonal.
    M = scml.get_mahalanobis_matrix()
    np.testing.assert_array_equal(M, np.diag(np.diag(M)))


def test_bad_input_is_a_clear_error(iris):
    X, y = iris
    triplets = X[_triplets(X, y)]
    with pytest.raises(ValueError, match=r"triplets must have shape"):
        SCML().fit_triplets(triplets[:, :2])
    with pytest.raises(ValueError, match="basis='lda' needs class labels"):
        SCML(basis="lda").fit_triplets(triplets)
    with pytest.raises(ValueError, match=r"basis must have shape \(n_basis, 4\)"):
        SCML(basis=np.eye(3)).fit(X, y)
    with pytest.raises(ValueError, match="zero row"):
        SCML(basis=np.zeros((2, 4))).fit(X, y)
    with pytest.raises(ValueError, match="single sample"):
        SCML().fit(X[:3], [0, 1, 2])
    with pytest.warns(UserWarning, match="every basis weight is zero"):
        SCML(beta=1e3, random_state=0).fit(X, y)


def test_distinct_rows_groups_like_numpy_unique(iris):
    X, _ = iris
    rng = np.random.RandomState(0)
    rows = X[rng.randint(0, 40, size=300)].astype(np.float32)
    points, inverse = distinct_rows(rows)
    expected, _ = np.unique(rows, axis=0, return_inverse=True)
    assert points.shape == expected.shape and points.dtype == np.float32
    np.testing.assert_array_equal(points[inverse], rows)
    # every point is distinct (lexicographic order of both lists agrees)
    np.testing.assert_array_equal(np.unique(points, axis=0), expected)
    # rows with the same key but different values fall back to np.unique
    direction = np.random.RandomState(0).standard_normal(2)
    tied = np.array([[1.0, 0.0], [0.0, direction[0] / direction[1]], [1.0, 0.0]])
    assert len(set(tied @ direction)) == 1
    points, inverse = distinct_rows(tied)
    np.testing.assert_array_equal(points[inverse], tied)
    assert points.shape[0] == 2
