"""Tests of LocalSCML: objective, solver, embedding and kNN against the NumPy reference."""

import numpy as np
import pytest
from scipy.optimize import check_grad
from sklearn.datasets import load_wine

from linmetric import SCML, LocalSCML
from linmetric._constraints import sample_triplets
from linmetric._optimize import IterationLog
from linmetric._scml import TripletFeatures, lda_basis
from linmetric._scml_local import (
    KernelEmbedding,
    local_loss_grad,
    nearest_in_local_metrics,
    proximal_adagrad,
)
from linmetric.reference import scml_local as reference


def _problem(iris, dtype, seed=0):
    X, y = iris
    X = (X - X.mean(axis=0)).astype(dtype)
    X64 = X.astype(np.float64)
    index = sample_triplets(
        X64, y, k_genuine=2, k_impostor=2, random_state=np.random.RandomState(seed)
    )
    basis = lda_basis(X64, y, 6, np.random.RandomState(seed))
    features = TripletFeatures.from_points(X64, basis, index)
    Z1 = KernelEmbedding(X64, 3, 1000, np.random.RandomState(seed)).transform(
        X64, with_bias=True
    )
    expected = np.array(
        [reference.triplet_feature(basis, *X[t], features.scale) for t in index]
    )
    return X, basis, index, features, Z1, expected


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_loss_grad_and_solver_match_reference(iris, dtype):
    _, basis, index, features, Z1, expected = _problem(iris, dtype)
    rtol = 1e-9 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(
        features.rows(np.arange(len(features))), expected, rtol=rtol, atol=rtol
    )
    rng = np.random.RandomState(1)
    theta = rng.normal(scale=0.3, size=(basis.shape[0], Z1.shape[1]))
    theta[2] = 0.0  # a removed element: no penalty gradient
    loss, grad = local_loss_grad(theta, Z1, features, 1e-2)
    ref_loss, ref_grad = reference.objective_and_gradient(
        theta, Z1, expected, index[:, 0], 1e-2
    )
    np.testing.assert_allclose(loss, ref_loss, rtol=rtol)
    np.testing.assert_allclose(
        grad, ref_grad, rtol=rtol, atol=rtol * np.abs(grad).max()
    )

    n_steps, batch_size = 200, 7
    start = np.zeros_like(theta)
    start[:, -1] = 0.5
    coefficients, n_iter, _ = proximal_adagrad(
        features,
        Z1,
        start,
        beta=1e-2,
        learning_rate=0.1,
        max_iter=n_steps,
        output_iter=n_steps,
        batch_size=batch_size,
        tol=0.0,
        random_state=np.random.RandomState(5),
        log=IterationLog("LocalSCML", columns=("n_nonzero",)),
    )
    replay = np.random.RandomState(5)
    batches = [replay.randint(len(features), size=batch_size) for _ in range(n_steps)]
    _, start_grad = reference.objective_and_gradient(
        start, Z1, expected, index[:, 0], 0.0
    )
    delta = np.sqrt(np.mean(np.sum(start_grad**2, axis=1)))
    expected_theta = reference.proximal_adagrad(
        start, Z1, expected, index[:, 0], batches, 1e-2, 0.05, delta
    )
    assert n_iter == n_steps
    np.testing.assert_allclose(coefficients, expected_theta, rtol=1e-6, atol=1e-9)
    # the solver lowers the objective
    assert (
        local_loss_grad(coefficients, Z1, features, 1e-2)[0]
        < local_loss_grad(start, Z1, features, 1e-2)[0]
    )


def test_gradient_matches_finite_differences(iris):
    _, basis, _, features, Z1, _ = _problem(iris, np.float64, seed=2)
    rng = np.random.RandomState(0)
    shape = (basis.shape[0], Z1.shape[1])
    for _ in range(3):
        theta = rng.normal(scale=0.3, size=shape)
        error = check_grad(
            lambda t: local_loss_grad(t.reshape(shape), Z1, features, 1e-2)[0],
            lambda t: local_loss_grad(t.reshape(shape), Z1, features, 1e-2)[1].ravel(),
            theta.ravel(),
            epsilon=1e-7,
        )
        norm = np.linalg.norm(local_loss_grad(theta, Z1, features, 1e-2)[1])
        assert error < 1e-5 * max(norm, 1.0)


def test_embedding_is_kernel_pca(iris):
    X = iris[0][::3] - iris[0].mean(axis=0)
    embedding = KernelEmbedding(X, 4, 1000, np.random.RandomState(0))
    Z = embedding.transform(X[:20], with_bias=False) * embedding.norm
    expected = reference.gaussian_kpca(X, 4)(X[:20])
    # eigenvectors are defined up to sign
    signs = np.sign(np.sum(Z * expected, axis=0))
    np.testing.assert_allclose(Z * signs, expected, rtol=1e-6, atol=1e-8)
    # with landmarks: memory n x n_landmarks, the same form
    small = KernelEmbedding(X, 4, 10, np.random.RandomState(0))
    assert small.landmarks.shape[0] == 10
    assert np.all(np.isfinite(small.transform(X, with_bias=True)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_distances_and_neighbours_match_reference(iris, dtype):
    X, y = iris
    X = X.astype(dtype)
    clf = LocalSCML(n_embedding=4, max_iter=300, random_state=0).fit(X[::2], y[::2])
    queries = X[1::10]
    weights = clf.local_weights(queries).astype(np.float64)
    assert weights.dtype == np.float64 and clf.local_weights(queries).dtype == dtype
    basis = clf.basis_.astype(np.float64)
    train = X[::2].astype(np.float64)
    expected = np.array(
        [
            [reference.distance(basis, w, q, t) for t in train]
            for w, q in zip(weights, queries.astype(np.float64), strict=True)
        ]
    )
    distances, indices = clf.kneighbors(queries)
    assert distances.dtype == dtype
    rtol = 1e-6 if dtype == np.float64 else 2e-3
    np.testing.assert_allclose(
        distances, np.sort(expected, axis=1)[:, :3], rtol=rtol, atol=rtol
    )
    np.testing.assert_allclose(
        np.take_along_axis(expected, indices, axis=1), distances, rtol=rtol, atol=rtol
    )
    pairs = np.stack([queries, X[::2][: len(queries)]], axis=1)
    np.testing.assert_allclose(
        clf.pair_distance(pairs),
        expected[np.arange(len(queries)), np.arange(len(queries))],
        rtol=rtol,
        atol=rtol,
    )
    # blocks of one query row (tiny budget) give the same neighbours
    projections = X[::2].astype(np.float64) @ basis.T
    small = nearest_in_local_metrics(
        queries.astype(np.float64) @ basis.T, weights, projections, 3, 1e-6
    )
    big = nearest_in_local_metrics(
        queries.astype(np.float64) @ basis.T, weights, projections, 3, None
    )
    np.testing.assert_array_equal(small[1], big[1])


def test_local_metric_starts_global_and_fits_triplets_better():
    X, y = load_wine(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    index = sample_triplets(
        X, y, k_genuine=3, k_impostor=5, random_state=np.random.RandomState(0)
    )
    triplets = X[index]
    local = LocalSCML(random_state=0).fit_triplets(triplets)
    glob = SCML(random_state=0).fit_triplets(triplets)

    def accuracy(model):
        near = model.pair_distance(triplets[:, :2])
        far = model.pair_distance(triplets[:, [0, 2]])
        return np.mean(near < far)

    assert accuracy(local) > accuracy(glob) - 0.01
    # the weights vary from point to point
    weights = local.local_weights(X)
    assert np.ptp(weights, axis=0).max() > 0
    with pytest.raises(ValueError, match="fit_triplets, which learns no class"):
        local.predict(X)
    assert local.kneighbors(X[:2])[1].shape == (2, 3)


def test_invariances_and_asymmetry(iris):
    X, y = iris
    clf = LocalSCML(n_embedding=5, max_iter=500, random_state=0).fit(X, y)
    # a power of two rescales without rounding: the same path exactly
    scaled = LocalSCML(n_embedding=5, max_iter=500, random_state=0).fit(4.0 * X, y)
    np.testing.assert_allclose(scaled.coefficients_, clf.coefficients_, rtol=1e-12)
    np.testing.assert_allclose(
        16.0 * scaled.local_weights(4.0 * X), clf.local_weights(X), rtol=1e-10
    )
    np.testing.assert_array_equal(scaled.predict(4.0 * X), clf.predict(X))
    # the distance is measured in the metric of the first point
    pairs = np.stack([X[:50], X[100:150]], axis=1)
    forward = clf.pair_distance(pairs)
    backward = clf.pair_distance(pairs[:, ::-1])
    assert not np.allclose(forward, backward)


def test_bad_input_is_a_clear_error(iris):
    X, y = iris
    with pytest.raises(ValueError, match="basis='lda' needs class labels"):
        LocalSCML(basis="lda").fit_triplets(np.stack([X[:5], X[1:6], X[50:55]], 1))
    with pytest.raises(ValueError, match=r"triplets must have shape"):
        LocalSCML().fit_triplets(X[:10, None, :])
    with pytest.raises(ValueError, match="n_embedding"):
        LocalSCML(n_embedding=-1).fit(X, y)
    clf = LocalSCML(n_embedding=2, max_iter=50, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="pairs have 3 features"):
        clf.pair_distance(np.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match="4 features"):
        clf.predict(X[:, :3])
    with pytest.warns(UserWarning, match="every basis element was removed"):
        LocalSCML(beta=1e6, max_iter=50, random_state=0).fit(X, y)
