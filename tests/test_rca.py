import numpy as np
import pytest

from linmetric import RCA
from linmetric._rca import chunklet_covariance, draw_chunklets
from linmetric.reference import rca as reference


@pytest.fixture
def chunked():
    rng = np.random.RandomState(0)
    X = rng.standard_normal((60, 4)) @ rng.standard_normal((4, 4)) + 3.0
    chunks = np.repeat(np.arange(20), 3)
    chunks[::7] = -1  # some points in no chunklet
    chunks[-3:-1] = [50, 51]  # and two chunklets of a single point
    return X, chunks


@pytest.mark.parametrize(
    ("dtype", "rtol"), [(np.float64, 1e-12), (np.float32, 1e-5)], ids=["f64", "f32"]
)
def test_covariance_matches_reference(chunked, dtype, rtol):
    X, chunks = chunked
    covariance, n_points = chunklet_covariance(X.astype(dtype), chunks)
    expected = reference.chunklet_covariance(X, chunks)
    np.testing.assert_allclose(covariance, expected, rtol=rtol, atol=rtol * 1e-3)
    _, counts = np.unique(chunks[chunks >= 0], return_counts=True)
    assert n_points == counts[counts >= 2].sum() == 48
    # chunklets all of one size (as drawn from labels), in shuffled order
    equal = np.random.RandomState(1).permutation(np.repeat(np.arange(20), 3))
    covariance, n_points = chunklet_covariance(X.astype(dtype), equal)
    expected = reference.chunklet_covariance(X, equal)
    np.testing.assert_allclose(covariance, expected, rtol=rtol, atol=rtol * 1e-3)
    assert n_points == 60


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_components", [None, 2])
def test_metric_matches_reference(chunked, dtype, n_components):
    X, chunks = chunked
    rca = RCA(n_components=n_components).fit_chunklets(X.astype(dtype), chunks)
    L = reference.rca(X, chunks, n_components)
    assert rca.components_.dtype == dtype
    tol = 1e-9 if dtype == np.float64 else 1e-4
    M = L.T @ L
    np.testing.assert_allclose(
        rca.get_mahalanobis_matrix(), M, rtol=0, atol=tol * np.abs(M).max()
    )
    if n_components is None:
        np.testing.assert_allclose(
            rca.get_mahalanobis_matrix(),
            np.linalg.inv(reference.chunklet_covariance(X, chunks)),
            rtol=tol,
        )


def test_invariances(chunked):
    X, chunks = chunked
    base = RCA(n_components=3).fit_chunklets(X, chunks)
    shifted = RCA(n_components=3).fit_chunklets(X - 50.0, chunks)
    np.testing.assert_allclose(shifted.components_, base.components_, rtol=1e-7)
    scaled = RCA(n_components=3).fit_chunklets(X * 1e3, chunks)
    np.testing.assert_allclose(scaled.components_ * 1e3, base.components_, rtol=1e-7)
    order = np.random.RandomState(2).permutation(X.shape[0])
    renamed = np.where(chunks >= 0, chunks + 7, -1)
    permuted = RCA(n_components=3).fit_chunklets(X[order], renamed[order])
    np.testing.assert_allclose(permuted.components_, base.components_, rtol=1e-7)


def test_rank_deficient_covariance_is_restricted_to_its_range():
    rng = np.random.RandomState(0)
    X = rng.standard_normal((6, 5))
    chunks = np.array([0, 0, 1, 1, 2, 2])  # 3 degrees of freedom in 5-d
    with pytest.warns(UserWarning, match="rank 3 < n_features=5"):
        rca = RCA().fit_chunklets(X, chunks)
    assert rca.rank_ == 3 and rca.components_.shape == (3, 5)
    C = chunklet_covariance(X, chunks)[0]
    np.testing.assert_allclose(
        rca.get_mahalanobis_matrix(), np.linalg.pinv(C), rtol=1e-8, atol=1e-8
    )
    with pytest.raises(ValueError, match="n_components=4 is out of range"):
        RCA(n_components=4).fit_chunklets(X, chunks)


def test_drawn_chunklets_are_disjoint_and_inside_one_class():
    labels = np.repeat([0, 1, 2], [7, 10, 5])
    rng = np.random.RandomState(0)
    chunks = draw_chunklets(labels, None, 3, rng)
    ids = np.unique(chunks[chunks >= 0])
    assert ids.size == 2 + 3 + 1
    for chunk_id in ids:
        members = chunks == chunk_id
        assert members.sum() == 3 and np.unique(labels[members]).size == 1
    assert np.sum(draw_chunklets(labels, 4, 2, rng) >= 0) == 8
    with pytest.raises(ValueError, match="n_chunks=20"):
        draw_chunklets(labels, 20, 2, rng)


def test_fit_from_labels_is_reproducible_and_separates_classes():
    rng = np.random.RandomState(0)
    X = rng.standard_normal((200, 2)) * [5.0, 0.2]
    y = (X[:, 1] > 0).astype(int)  # the class lies in the small direction
    a = RCA(n_chunks=30, random_state=0).fit(X, y)
    b = RCA(n_chunks=30, random_state=0).fit(X, y)
    np.testing.assert_array_equal(a.components_, b.components_)
    M = a.get_mahalanobis_matrix()
    assert M[1, 1] > 100 * M[0, 0]  # the relevant direction is stretched


def test_bad_chunklets_are_clear_errors():
    X = np.arange(12.0).reshape(6, 2)
    with pytest.raises(ValueError, match="No chunklet has two or more points"):
        RCA().fit_chunklets(X, np.array([0, 1, 2, -1, -1, 3]))
    with pytest.raises(ValueError, match="one chunklet id"):
        RCA().fit_chunklets(X, np.array([0, 0, 1]))
    with pytest.raises(ValueError, match="integer chunklet ids"):
        RCA().fit_chunklets(X, np.array([0, 0, 1, 1, -2, -1]))
    with pytest.raises(ValueError, match="identical points"):
        RCA().fit_chunklets(np.ones((4, 2)), np.array([0, 0, 1, 1]))
    with pytest.raises(ValueError, match="chunk_size"):
        RCA(chunk_size=1).fit(X, [0, 0, 0, 1, 1, 1])


def test_drawn_chunklets_do_not_depend_on_the_order_of_the_samples():
    rng = np.random.RandomState(0)
    X = rng.standard_normal((40, 3)) * [3.0, 1.0, 0.3]
    y = np.arange(40) % 2
    order = rng.permutation(40)
    base = RCA(random_state=0).fit(X, y)
    permuted = RCA(random_state=0).fit(X[order], y[order])
    np.testing.assert_allclose(permuted.components_, base.components_, rtol=1e-10)
    # and the same after a shift, a rescaling and a permutation of features
    moved = RCA(random_state=0).fit((X[:, ::-1] + 5.0) * 8.0, y)
    np.testing.assert_allclose(
        moved.components_[:, ::-1] * 8.0, base.components_, rtol=1e-8, atol=1e-10
    )


@pytest.mark.parametrize("scale", [1e-200, 1e200])
def test_drawn_chunklets_do_not_depend_on_the_scale(scale):
    rng = np.random.RandomState(0)
    X = rng.standard_normal((40, 3)) * [3.0, 1.0, 0.3]
    y = np.arange(40) % 2
    base = RCA(random_state=0).fit(X, y)
    scaled = RCA(random_state=0).fit(X * scale, y)
    np.testing.assert_allclose(scaled.components_ * scale, base.components_, rtol=1e-8)


def test_int_seed_draws_as_a_new_random_state():
    rng = np.random.RandomState(0)
    X = rng.standard_normal((50, 3))
    y = np.arange(50) % 3
    for seed in (0, 7, np.int64(7)):
        fitted = RCA(n_chunks=10, random_state=seed).fit(X, y)
        fresh = RCA(n_chunks=10, random_state=np.random.RandomState(seed)).fit(X, y)
        np.testing.assert_array_equal(fitted.components_, fresh.components_)
