import numpy as np
import pytest
from sklearn.utils import check_random_state

from linmetric import KISSME
from linmetric._itml import sample_label_pairs
from linmetric.reference.kissme import (
    kissme_metric,
    neighbor_pair_covariances,
    pair_covariances,
)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_all_pairs_in_closed_form_match_the_pair_by_pair_reference(labelled, dtype):
    X, y = labelled
    kissme = KISSME(regularization=1e-3, pair_sampling="uniform")
    kissme.fit(X.astype(dtype), y)
    expected = kissme_metric(*pair_covariances(X, y))
    assert kissme.components_.dtype == dtype
    rtol = 1e-9 if dtype == np.float64 else 2e-4
    scale = np.abs(expected).max()
    np.testing.assert_allclose(
        kissme.get_mahalanobis_matrix(), expected, rtol=0, atol=rtol * scale
    )
    n = y.size
    assert kissme.n_similar_ == (12 * 11 + 9 * 8 + 15 * 14) // 2
    assert kissme.n_dissimilar_ == n * (n - 1) // 2 - kissme.n_similar_


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("k", [1, 5, 12])
def test_neighbor_pairs_match_the_pair_by_pair_reference(labelled, dtype, k):
    X, y = labelled
    kissme = KISSME(regularization=1e-3, n_neighbors=k).fit(X.astype(dtype), y)
    # class 1 has 9 members: with k = 12 each pairs with all 8 others
    expected = kissme_metric(*neighbor_pair_covariances(X, y, k))
    assert kissme.components_.dtype == dtype
    rtol = 1e-9 if dtype == np.float64 else 2e-4
    scale = np.abs(expected).max()
    np.testing.assert_allclose(
        kissme.get_mahalanobis_matrix(), expected, rtol=0, atol=rtol * scale
    )
    same = sum(min(k, size - 1) * size for size in (12, 9, 15))
    assert kissme.n_similar_ == same
    assert kissme.n_dissimilar_ == k * y.size
    uniform = KISSME(regularization=1e-3, pair_sampling="uniform").fit(X, y)
    assert not np.allclose(uniform.get_mahalanobis_matrix(), expected)
    with pytest.raises(ValueError, match="pair_sampling='neighbors'"):
        KISSME(n_constraints=10).fit(X, y)


def test_fit_pairs_matches_reference_on_the_same_pairs(labelled):
    X, y = labelled
    rows, cols, signs = sample_label_pairs(y, 60, check_random_state(1))
    pairs = np.stack((X[rows], X[cols]), axis=1)
    kissme = KISSME().fit_pairs(pairs, signs)
    diffs = X[rows] - X[cols]
    similar = diffs[signs > 0].T @ diffs[signs > 0] / np.sum(signs > 0)
    dissimilar = diffs[signs < 0].T @ diffs[signs < 0] / np.sum(signs < 0)
    np.testing.assert_allclose(
        kissme.get_mahalanobis_matrix(),
        kissme_metric(similar, dissimilar),
        rtol=1e-9,
        atol=1e-12,
    )
    # fit(X, y) with n_constraints draws the same pairs from the same seed.
    sampled = KISSME(
        regularization=1e-3, n_constraints=60, random_state=1, pair_sampling="uniform"
    )
    sampled.fit(X, y)
    np.testing.assert_allclose(sampled.components_, kissme.components_, atol=1e-12)


def test_negative_eigenvalues_are_clipped(labelled):
    X, y = labelled
    similar, dissimilar = pair_covariances(X, y)
    epsilon = 1e-3 * np.trace(similar + dissimilar) / 8
    raw = np.linalg.inv(similar + epsilon * np.eye(4)) - np.linalg.inv(
        dissimilar + epsilon * np.eye(4)
    )
    n_negative = np.sum(np.linalg.eigvalsh(raw) < 0)
    assert n_negative >= 1
    kissme = KISSME(regularization=1e-3, pair_sampling="uniform").fit(X, y)
    eigenvalues = np.linalg.eigvalsh(kissme.get_mahalanobis_matrix())
    assert eigenvalues.min() > -1e-10 * eigenvalues.max()
    assert np.sum(np.all(kissme.components_ == 0, axis=1)) == n_negative


def test_shift_rescale_and_permutation(labelled):
    X, y = labelled
    base = KISSME().fit(X, y).components_
    np.testing.assert_allclose(KISSME().fit(X + 100.0, y).components_, base, atol=1e-8)
    np.testing.assert_allclose(KISSME().fit(7.0 * X, y).components_, base / 7.0)
    order = np.random.RandomState(3).permutation(y.size)
    np.testing.assert_allclose(KISSME().fit(X[order], y[order]).components_, base)


def test_pca_pre_step_learns_in_the_principal_subspace(labelled):
    X, y = labelled
    kissme = KISSME(n_components=2, pair_sampling="uniform").fit(X, y)
    assert kissme.components_.shape == (2, 4)
    centred = X - X.mean(axis=0)
    _, _, Vt = np.linalg.svd(centred, full_matrices=False)
    P = Vt[:2]
    expected = kissme_metric(*pair_covariances(X @ P.T, y))
    np.testing.assert_allclose(
        kissme.get_mahalanobis_matrix(), P.T @ expected @ P, atol=1e-9
    )
    with pytest.raises(ValueError, match="n_components=5 is out of range"):
        KISSME(n_components=5).fit(X, y)


def test_constant_feature_gets_zero_weight(labelled):
    X, y = labelled
    X = np.column_stack((X, np.full(y.size, 3.0)))
    M = KISSME().fit(X, y).get_mahalanobis_matrix()
    np.testing.assert_allclose(M[-1], 0.0, atol=1e-12 * np.abs(M).max())


def test_bad_input_is_a_clear_error(labelled):
    X, y = labelled
    pairs = np.stack((X[:4], X[4:8]), axis=1)
    with pytest.raises(ValueError, match="no dissimilar pairs"):
        KISSME().fit_pairs(pairs, [1, 1, 1, 1])
    with pytest.raises(ValueError, match="no similar pairs"):
        KISSME().fit_pairs(pairs, [-1, -1, -1, -1])
    with pytest.raises(ValueError, match="no similar pairs"):
        KISSME().fit(X[:3], [0, 1, 2])
    with pytest.raises(ValueError, match="pair_labels must be"):
        KISSME().fit_pairs(pairs, [1, 0, 1, -1])
    with pytest.raises(ValueError, match="set regularization > 0"):
        KISSME(regularization=0).fit_pairs(pairs, [1, -1, 1, -1])
    with pytest.raises(ValueError, match="regularization"):
        KISSME(regularization=-1.0).fit(X, y)
    with pytest.raises(ValueError, match="identical points"):
        KISSME().fit(np.ones((6, 2)), [0, 0, 0, 1, 1, 1])


def test_leave_one_out_error_matches_scikit_learn(iris):
    from sklearn.model_selection import LeaveOneOut, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    from linmetric._kissme import loo_knn_error

    X, y = iris
    X = X[::2, :2] + 0.01 * np.arange(75)[:, None]  # overlapping classes
    y = y[::2]
    scores = cross_val_score(KNeighborsClassifier(3), X, y, cv=LeaveOneOut())
    assert loo_knn_error(X, y) == pytest.approx(1 - scores.mean())
    assert 0 < loo_knn_error(X, y) < 0.5


def test_one_standard_error_rule_prefers_the_default():
    from linmetric._kissme import choose_candidate

    # best 0.10 on 100 rows: one standard error is 0.03
    assert choose_candidate([0.12, 0.10, 0.20], 100, [0, 1, 2]) == 0
    assert choose_candidate([0.14, 0.10, 0.20], 100, [0, 1, 2]) == 1
    assert choose_candidate([0.0, 0.0, 0.01], 100, [2, 1, 0]) == 1


def test_validation_subset_is_stratified_and_order_free():
    from linmetric._kissme import validation_rows

    rng = np.random.RandomState(0)
    y = np.repeat([0, 1, 2], [500, 300, 200])
    X = rng.standard_normal((1000, 3))
    assert validation_rows(X, y, max_samples=1000).size == 1000
    rows = validation_rows(X, y, max_samples=100)
    np.testing.assert_array_equal(np.bincount(y[rows]), [50, 30, 20])
    order = rng.permutation(1000)
    again = validation_rows(X[order], y[order], max_samples=100)
    np.testing.assert_array_equal(np.sort(order[again]), rows)


def test_auto_ridge_is_one_of_the_candidates_and_fits_with_it(labelled):
    from linmetric._kissme import AUTO_RIDGES

    X, y = labelled
    X = np.column_stack((X, 0.05 * np.random.RandomState(1).standard_normal(y.size)))
    auto = KISSME().fit(X, y)
    assert auto.regularization_ in AUTO_RIDGES
    fixed = KISSME(regularization=auto.regularization_).fit(X, y)
    np.testing.assert_array_equal(auto.components_, fixed.components_)
    # from pairs there are no labels to validate with: the smallest ridge
    pairs = np.stack((X[:-1], X[1:]), axis=1)
    signs = np.where(y[:-1] == y[1:], 1, -1)
    assert KISSME().fit_pairs(pairs, signs).regularization_ == AUTO_RIDGES[0]
