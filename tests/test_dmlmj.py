import numpy as np
import pytest

from linmetric import DMLMJ
from linmetric._dmlmj import other_class_neighbor_pairs, same_class_neighbor_pairs
from linmetric.reference.dmlmj import dmlmj, jeffrey_divergence, neighbor_pairs


@pytest.fixture
def labelled():
    rng = np.random.RandomState(0)
    y = np.repeat([0, 1, 2, 3], [14, 9, 17, 3])
    means = rng.standard_normal((4, 5)) * 2
    mixing = rng.standard_normal((5, 5)) + 2 * np.eye(5)
    X = means[y] + rng.standard_normal((y.size, 5)) @ mixing
    return X, y


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("working_memory", [None, 1e-4])
def test_neighbour_pairs_match_brute_force(labelled, dtype, working_memory):
    X, y = labelled
    X = X.astype(dtype)
    similar, dissimilar = neighbor_pairs(X.astype(np.float64), y, 4)
    rows, cols = same_class_neighbor_pairs(X, y, 4, working_memory=working_memory)
    # Class 3 has 3 members, fewer than 4 + 1: each gets the other two.
    assert sorted(zip(rows.tolist(), cols.tolist(), strict=True)) == sorted(similar)
    rows, cols = other_class_neighbor_pairs(X, y, 4, working_memory=working_memory)
    assert sorted(zip(rows.tolist(), cols.tolist(), strict=True)) == sorted(dissimilar)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_components", [2, 5])
def test_matches_the_reference(labelled, dtype, n_components):
    X, y = labelled
    model = DMLMJ(n_components=n_components, n_neighbors=4).fit(X.astype(dtype), y)
    L, values, _, _ = dmlmj(X, y, n_components, k=4)
    assert model.components_.dtype == dtype
    tol = 1e-8 if dtype == np.float64 else 1e-3
    np.testing.assert_allclose(model.eigenvalues_, values, rtol=tol)
    expected = L.T @ L
    np.testing.assert_allclose(
        model.get_mahalanobis_matrix(), expected, atol=tol * np.abs(expected).max()
    )


def test_kept_directions_maximise_the_jeffrey_divergence(labelled):
    X, y = labelled
    _, _, sigma_s, sigma_d = dmlmj(X, y, 2, k=5)
    model = DMLMJ(n_components=2).fit(X, y)
    best = jeffrey_divergence(model.components_, sigma_s, sigma_d)
    values = model.eigenvalues_
    np.testing.assert_allclose(best, 0.5 * np.sum(values + 1 / values))
    rng = np.random.RandomState(1)
    for _ in range(20):
        other = rng.standard_normal((2, 5))
        assert jeffrey_divergence(other, sigma_s, sigma_d) < best
    # All directions kept: M is the inverse same-class covariance.
    full = DMLMJ(n_components=None).fit(X, y)
    np.testing.assert_allclose(
        full.get_mahalanobis_matrix(), np.linalg.inv(sigma_s), rtol=1e-8
    )


def test_shift_rescale_and_permutation(labelled):
    X, y = labelled
    base = DMLMJ(n_components=3).fit(X, y).components_
    shifted = DMLMJ(n_components=3).fit(X + 20.0, y).components_
    np.testing.assert_allclose(shifted, base, atol=1e-8)
    scaled = DMLMJ(n_components=3).fit(X * 1e3, y).components_
    np.testing.assert_allclose(scaled, base / 1e3, rtol=1e-8)
    order = np.random.RandomState(2).permutation(y.size)
    permuted = DMLMJ(n_components=3).fit(X[order], y[order]).components_
    np.testing.assert_allclose(permuted, base, rtol=1e-8)


def test_bad_input_is_a_clear_error(labelled):
    X, y = labelled
    with pytest.raises(ValueError, match="n_components=6 is out of range"):
        DMLMJ(n_components=6).fit(X, y)
    with pytest.raises(ValueError, match="every class has a single sample"):
        DMLMJ().fit(X[:3], [0, 1, 2])
    # a feature constant inside each class: no same-class pair differs in it
    by_class = np.column_stack((X, y))
    with pytest.raises(ValueError, match="set regularization > 0"):
        DMLMJ(regularization=0).fit(by_class, y)
    assert np.all(np.isfinite(DMLMJ().fit(by_class, y).components_))
    with pytest.raises(ValueError, match="n_neighbors"):
        DMLMJ(n_neighbors=0).fit(X, y)


@pytest.mark.parametrize("regularization", [0.0, 1e-3])
def test_directions_without_variance_get_zero_rows(labelled, regularization):
    X, y = labelled
    # a constant feature, and a collinear one: two directions without variance
    wide = np.column_stack((X, np.full(y.size, 7.0), X[:, 0] - 2 * X[:, 1]))
    model = DMLMJ(regularization=regularization).fit(wide, y)
    assert np.all(np.isfinite(model.components_))
    null = np.zeros((2, wide.shape[1]))
    null[0, -2] = 1.0
    null[1, [0, 1, -1]] = [1.0, -2.0, -1.0]
    np.testing.assert_allclose(model.transform(null), 0.0, atol=1e-10)
    np.testing.assert_array_equal(model.components_[-2:], 0.0)
    np.testing.assert_array_equal(model.eigenvalues_[-2:], 1.0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_threads", [1, 3])
@pytest.mark.parametrize("tile_columns", [16, 1024])
def test_one_pass_search_is_exact_with_ties_blocks_and_threads(
    monkeypatch, dtype, n_threads, tile_columns
):
    # Integer points: many exact ties, which must go to the smaller index
    # whatever the blocking, the column tiles and the number of threads.
    import linmetric._kernels.dmlmj as kernel

    monkeypatch.setattr(kernel, "kernel_threads", lambda *args: n_threads)
    monkeypatch.setattr(kernel, "_TILE_COLUMNS", tile_columns)
    rng = np.random.RandomState(3)
    y = rng.randint(0, 5, 160)
    y[:2] = 5  # a class of two members
    X = rng.randint(-3, 4, (160, 3)).astype(dtype)
    X[10] = X[11]  # a duplicate row
    similar, dissimilar = neighbor_pairs(X.astype(np.float64), y, 4)
    for memory in (None, 2e-3):
        same, other = kernel.class_neighbors(X, y, 4, working_memory=memory)
        found = [
            sorted((i, j) for i, row in enumerate(lists) for j in row if j < y.size)
            for lists in (same, other)
        ]
        assert found == [sorted(similar), sorted(dissimilar)]


def test_auto_n_components_is_validated_and_fits_with_it(labelled):
    from linmetric._dmlmj import candidate_sizes

    X, y = labelled
    # ten noise features: the first directions carry the classes
    X = np.column_stack((X, np.random.RandomState(4).standard_normal((y.size, 10))))
    auto = DMLMJ().fit(X, y)
    assert auto.n_components_ in candidate_sizes(15)
    fixed = DMLMJ(n_components=auto.n_components_).fit(X, y)
    np.testing.assert_allclose(auto.components_, fixed.components_, rtol=1e-12)
    assert auto.n_components_ < 15
    assert candidate_sizes(13) == [1, 2, 3, 4, 6, 8, 12, 13]
    assert candidate_sizes(13, smallest=5) == [5, 6, 8, 12, 13]
    assert candidate_sizes(4, smallest=9) == [4]
    # four classes: never fewer than three directions
    assert DMLMJ().fit(X[:, :5], y).n_components_ >= 3


@pytest.mark.parametrize("scale", [1.0, 2.0**50])
def test_search_of_float64_rows_below_float32_resolution(scale):
    # Float64 rows are multiplied in float32 (below 2**40), in float64
    # beyond: either way, pairs whose distances differ only far below
    # float32's resolution are still ranked exactly.
    import linmetric._kernels.dmlmj as kernel

    rng = np.random.RandomState(5)
    base = rng.standard_normal((6, 4))
    X = np.repeat(base, 12, axis=0) + 1e-9 * rng.standard_normal((72, 4))
    X *= scale
    y = np.tile([0, 1, 2], 24)
    similar, dissimilar = neighbor_pairs(X, y, 3)
    same, other = kernel.class_neighbors(X, y, 3)
    found = [
        sorted((i, j) for i, row in enumerate(lists) for j in row if j < y.size)
        for lists in (same, other)
    ]
    assert found == [sorted(similar), sorted(dissimilar)]
