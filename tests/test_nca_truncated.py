"""Tests of NCA's truncated solver: candidate searches, threaded products, stages."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

import linmetric._nca
from linmetric import NCA
from linmetric._kernels.nca import candidate_search, reselect_candidates
from linmetric._nca import truncated_loss_grad
from linmetric._threads import limit_threads
from linmetric.reference import nca as reference


def grid_points(seed, n_samples, dtype):
    # Small integer coordinates: many exact ties and duplicates, and inner
    # products exact in float32, so the expected order is the exact one.
    rng = np.random.RandomState(seed)
    return rng.randint(-3, 4, size=(n_samples, 3)).astype(dtype)


def nearest_by_reference(Z, m):
    Z = Z.astype(np.float64)
    sq_dist = ((Z[:, None] - Z[None]) ** 2).sum(axis=2)
    np.fill_diagonal(sq_dist, np.inf)
    # ties by index: a stable sort of each row
    return np.argsort(sq_dist, axis=1, kind="stable")[:, :m], sq_dist


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m", [1, 5, 40, 299])
def test_candidate_search_equals_the_reference_with_ties(dtype, m):
    # m=1 and 5 cut the selection's buffer many times, 299 never.
    Z = grid_points(0, 300, dtype)
    labels = np.arange(300, dtype=np.intp) % 4
    expected, sq_dist = nearest_by_reference(Z, m)
    p_correct = np.empty(300)
    index, dropped = candidate_search(
        Z, m, working_memory=0.05, labels=labels, p_correct=p_correct
    )
    np.testing.assert_array_equal(index, expected)
    weights = np.exp(-(sq_dist - sq_dist.min(axis=1, keepdims=True)))
    weights /= weights.sum(axis=1, keepdims=True)
    kept = np.take_along_axis(weights, expected, axis=1).sum(axis=1)
    np.testing.assert_allclose(dropped, np.maximum(1.0 - kept, 0.0), atol=1e-12)
    same = (labels[:, None] == labels[None]) * weights
    np.testing.assert_allclose(p_correct, same.sum(axis=1), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_prior_bounds_the_search_without_changing_it(dtype):
    Z = grid_points(1, 200, dtype)
    expected, _ = nearest_by_reference(Z, 8)
    rng = np.random.RandomState(0)
    # any distinct other points will do, the nearest or not
    prior = np.array(
        [rng.choice(np.delete(np.arange(200), i), 8, replace=False) for i in range(200)]
    )
    for bound in (prior, expected, expected[:, ::-1]):
        index, _ = candidate_search(Z, 8, prior=bound)
        np.testing.assert_array_equal(index, expected)
    with pytest.raises(ValueError, match="prior has shape"):
        candidate_search(Z, 8, prior=prior[:, :5])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [1, 3])
@pytest.mark.parametrize("working_memory", [0.002, 0.05, None])
def test_candidate_search_blocks_give_the_brute_force_result(
    dtype, n_threads, working_memory
):
    # Blocks of any size (down to one row), taken by any number of threads:
    # the same nearest with ties by index, the same dropped mass and p_i on
    # the measured rows (terms past the skip limit at this scale).
    Z = 1.5 * grid_points(2, 250, dtype)
    labels = np.arange(250, dtype=np.intp) % 3
    expected, sq_dist = nearest_by_reference(Z, 12)
    weights = np.exp(-(sq_dist - sq_dist.min(axis=1, keepdims=True)))
    weights /= weights.sum(axis=1, keepdims=True)
    kept = np.take_along_axis(weights, expected[:, :5], axis=1).sum(axis=1)
    same = ((labels[:, None] == labels[None]) * weights).sum(axis=1)
    measured = np.arange(250) % 3 == 0
    for prior in (None, expected[:, ::-1]):
        p_correct = np.empty(250)
        with limit_threads(kernels=n_threads):
            index, dropped = candidate_search(
                Z,
                12,
                mass_stride=3,
                n_kept=5,
                labels=labels,
                p_correct=p_correct,
                prior=prior,
                working_memory=working_memory,
            )
        np.testing.assert_array_equal(index, expected)
        assert np.isnan(dropped[~measured]).all()
        assert np.isnan(p_correct[~measured]).all()
        np.testing.assert_allclose(
            dropped[measured], np.maximum(1.0 - kept, 0.0)[measured], atol=1e-12
        )
        np.testing.assert_allclose(p_correct[measured], same[measured], rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_tight_prior_gives_the_unbounded_result(dtype):
    # The prior is the answer itself: its bound admits exactly the m
    # nearest, whatever the rounding of the product.
    Z = np.random.RandomState(4).standard_normal((300, 20)).astype(dtype)
    expected, _ = candidate_search(Z, 10)
    index, _ = candidate_search(Z, 10, prior=expected)
    np.testing.assert_array_equal(index, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m", [1, 7, 20])
def test_reselection_keeps_the_pool_order_among_ties(dtype, m):
    # Many exact ties and duplicates: the m nearest of each pool by
    # (distance, position in the pool), nearest first.
    Z = grid_points(5, 120, dtype)
    rng = np.random.RandomState(1)
    pool = np.array(
        [rng.permutation(np.delete(np.arange(120), i))[:20] for i in range(120)]
    )
    out = np.empty((120, m), dtype=np.intp)
    reselect_candidates(Z, pool, out)
    _, sq_dist = nearest_by_reference(Z, 1)
    pool_dist = np.take_along_axis(sq_dist, pool, axis=1)
    order = np.argsort(pool_dist, axis=1, kind="stable")[:, :m]
    np.testing.assert_array_equal(out, np.take_along_axis(pool, order, axis=1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_truncated_loss_grad_equals_the_reference_and_ignores_threads(dtype):
    rng = np.random.RandomState(3)
    X = rng.standard_normal((60, 5))
    y = (np.arange(60) % 3).astype(np.intp)
    X += y[:, None] * 0.5
    components = 0.5 * rng.standard_normal((3, 5))
    candidates = nearest_by_reference(X @ components.T, 59)[0]
    X = X.astype(dtype)
    loss, grad, _ = truncated_loss_grad(components, X, y, candidates)
    ref_loss, ref_grad = reference.loss_grad(components, X.astype(np.float64), y)
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    assert loss == pytest.approx(ref_loss, rel=rtol)
    np.testing.assert_allclose(grad, ref_grad, rtol=rtol, atol=rtol * 1e-2)
    with limit_threads(kernels=1):
        serial = truncated_loss_grad(components, X, y, candidates)
    assert serial[0] == loss
    np.testing.assert_array_equal(serial[1], grad)


@pytest.fixture(scope="module")
def wine():
    X, y = load_wine(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def test_convergence_is_confirmed_by_the_final_measurement(wine, monkeypatch):
    # The search that confirms convergence measures every point at the map
    # the fit returns: no other search follows it.
    X, y = wine
    searches = []
    find_candidates = linmetric._nca.find_candidates

    def recording(components, *args, **kwargs):
        searches.append(kwargs.get("labels") is not None)
        measured_at.append(np.array(components))
        return find_candidates(components, *args, **kwargs)

    measured_at = []

    monkeypatch.setattr(linmetric._nca, "find_candidates", recording)
    # (settings where a trial stage confirms convergence)
    params = {"n_components": 3, "solver": "truncated", "n_candidates": 5}
    nca = NCA(refresh_every=3, max_iter=200, random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        nca.fit(X, y)
    # (an earlier measured search may have failed to confirm)
    assert searches[-1] and not searches[0]
    # the map returned is the one measured (in the units of X)
    ratio = np.linalg.norm(measured_at[-1]) / np.linalg.norm(nca.components_)
    np.testing.assert_allclose(measured_at[-1], ratio * nca.components_, rtol=1e-12)
    X_centered = X - X.mean(axis=0)
    assert nca.exact_loss_ == pytest.approx(
        reference.loss(nca.components_, X_centered, y), rel=1e-5
    )
    p = reference.soft_neighbors(nca.components_, X_centered)
    kept = np.sort(p, axis=1)[:, ::-1][:, :5].sum(axis=1)
    assert nca.dropped_mass_ == pytest.approx((1.0 - kept).max(), abs=1e-5)
    assert nca.n_iter_ == len(nca.loss_curve_) == len(nca.history_["dropped_mass"])


def test_order_of_the_samples_does_not_change_the_fit(wine):
    X, y = wine
    order = np.random.RandomState(0).permutation(X.shape[0])
    params = {"n_components": 3, "solver": "truncated", "n_candidates": 20}
    first = NCA(random_state=0, **params).fit(X, y)
    second = NCA(random_state=0, **params).fit(X[order], y[order])
    np.testing.assert_allclose(
        second.transform(X), first.transform(X), rtol=1e-5, atol=1e-5
    )


def test_locality_order_sorts_by_class_then_by_cells_of_the_start():
    # A permutation; classes contiguous in class order; within a class,
    # eight slabs of equal size along the leading axis of X L^T, each sorted
    # along the second axis.
    rng = np.random.RandomState(6)
    # centred columns, orthogonal, of distinct norms: the principal axes
    # are the coordinate axes
    X = rng.standard_normal((403, 4))
    X = np.linalg.qr(X - X.mean(axis=0))[0] * [5.0, 2.0, 0.5, 0.1]
    labels = rng.randint(0, 3, 403).astype(np.intp)
    order = linmetric._nca._locality_order(X, labels, np.eye(4))
    np.testing.assert_array_equal(np.sort(order), np.arange(403))
    assert np.all(np.diff(labels[order]) >= 0)
    for label in range(3):
        members = order[labels[order] == label]
        first, second = X[members, 0], X[members, 1]
        if first[0] > first[-1]:  # the sign of an eigenvector is arbitrary
            first = -first
        if np.sum(np.diff(second) > 0) < np.sum(np.diff(second) < 0):
            second = -second
        slab = np.arange(members.shape[0]) * 8 // members.shape[0]
        sizes = np.bincount(slab)
        assert sizes.shape[0] == 8 and sizes.max() - sizes.min() <= 1
        bounds = np.cumsum(np.concatenate([[0], sizes]))
        for a, b, c in zip(bounds[:-2], bounds[1:-1], bounds[2:], strict=True):
            assert first[a:b].max() <= first[b:c].min()
            assert np.all(np.diff(second[a:b]) >= 0)
        assert np.all(np.diff(second[bounds[-2] :]) >= 0)


def test_reverse_candidates_is_a_stable_sort_of_the_pairs():
    from linmetric._kernels.nca import reverse_candidates

    candidates = np.random.RandomState(7).randint(0, 40, size=(50, 6))
    indptr, positions = reverse_candidates(candidates, 45)
    np.testing.assert_array_equal(
        positions, np.argsort(candidates.ravel(), kind="stable")
    )
    np.testing.assert_array_equal(
        np.diff(indptr), np.bincount(candidates.ravel(), minlength=45)
    )
