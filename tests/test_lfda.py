import numpy as np
import pytest

from linmetric import LFDA
from linmetric._kernels import lfda as kernels
from linmetric._kernels.distances import error_factor
from linmetric._lfda import (
    _block_sq_distances,
    _kth_distance,
    _rows_sq_scales,
    fix_signs,
    local_scatter_matrices,
)
from linmetric._validation import _label_codes
from linmetric.reference import lfda as reference


@pytest.fixture
def small():
    rng = np.random.RandomState(0)
    X = rng.standard_normal((45, 4)) * np.array([1.0, 2.0, 0.5, 3.0]) + 5.0
    y = rng.randint(0, 3, 45)
    return X, y


@pytest.mark.parametrize(
    ("dtype", "rtol"), [(np.float64, 1e-12), (np.float32, 1e-5)], ids=["f64", "f32"]
)
@pytest.mark.parametrize("k", [1, 7, 30])
@pytest.mark.parametrize(
    ("method", "working_memory"),
    # a tiny budget forces many blocks per class
    [("blocks", 2e-4), ("blocks", None), ("triangle", None), ("rows", None)],
    ids=["many-blocks", "one-block", "triangle", "rows"],
)
def test_scatter_matrices_match_reference(
    small, dtype, rtol, k, method, working_memory
):
    X, y = small
    within, between = local_scatter_matrices(
        X.astype(dtype), y, k, working_memory=working_memory, method=method
    )
    ref_within, ref_between = reference.scatter_matrices(X, y, k)
    scale = np.abs(ref_between).max()
    np.testing.assert_allclose(within, ref_within, rtol=0, atol=rtol * scale)
    np.testing.assert_allclose(between, ref_between, rtol=0, atol=rtol * scale)


@pytest.mark.parametrize(
    ("dtype", "rtol"), [(np.float64, 1e-10), (np.float32, 1e-5)], ids=["f64", "f32"]
)
@pytest.mark.parametrize("method", ["blocks", "triangle", "rows"])
@pytest.mark.parametrize("n_features", [1, 2])
def test_scatter_matrices_beside_a_far_outlier(dtype, rtol, method, n_features):
    # One point 1e20 times farther out than the rest of its class. About the
    # class mean, which it drags away, the other points' differences lost
    # every digit (the within-class scatter came out negative); as products
    # of x_i x_i^T that cancel, its own terms swamped the others; in float32
    # the squares of the others' distances left the normal range. Each
    # matrix is held to the reference relative to itself.
    rng = np.random.RandomState(1)
    y = np.arange(32) % 2
    X = rng.standard_normal((32, n_features)) + y[:, None]
    X[0] *= 1e20
    within, between = local_scatter_matrices(X.astype(dtype), y, 7, method=method)
    ref_within, ref_between = reference.scatter_matrices(X, y, 7)
    for got, expected in ((within, ref_within), (between, ref_between)):
        np.testing.assert_allclose(
            got, expected, rtol=0, atol=rtol * np.abs(expected).max()
        )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_single_feature_in_a_large_class(dtype):
    # Classes of TRIANGLE_MIN_CLASS_SIZE points or more take the triangle
    # path, where a single feature's points (C- and Fortran-ordered at once)
    # were both TRMM's input and its output. The rows path (held to the
    # reference above) gives the same matrices.
    rng = np.random.RandomState(0)
    y = np.arange(1100) % 2
    X = (rng.standard_normal((1100, 1)) + y[:, None]).astype(dtype)
    auto = local_scatter_matrices(X, y, 7)
    rows = local_scatter_matrices(X, y, 7, method="rows")
    rtol = 1e-10 if dtype == np.float64 else 1e-5
    for got, expected in zip(auto, rows, strict=True):
        np.testing.assert_allclose(got, expected, rtol=rtol)


@pytest.mark.parametrize("method", ["auto", "blocks", "triangle"])
def test_float32_class_of_two_distant_clusters(method):
    # Each class is two clusters 1e6 apart, of 600 points: about any centre
    # half the points sit 1e6 away from their neighbours, beyond what
    # float32 products resolve (the within-class scatter came out 6e6
    # times too large). Such a class is done in float64, from the points
    # before their rounding to float32: the float64 data's matrices exactly.
    rng = np.random.RandomState(0)
    y = np.arange(1200) % 2
    X = rng.standard_normal((1200, 2)) + y[:, None]
    X[:600] += 1e6
    X32 = X.astype(np.float32)
    single = local_scatter_matrices(X32, y, 7, method=method)
    double = local_scatter_matrices(X32.astype(np.float64), y, 7, method=method)
    for got, expected in zip(single, double, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_map_matches_reference(small, dtype):
    X, y = small
    lfda = LFDA(n_components=3).fit(X.astype(dtype), y)
    T, eigenvalues = reference.lfda(X, y, 3)
    assert lfda.components_.dtype == dtype
    tol = 1e-10 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(lfda.eigenvalues_, eigenvalues, rtol=tol)
    np.testing.assert_allclose(
        lfda.components_, fix_signs(T.T).T, atol=tol * np.abs(T).max()
    )


def test_embeddings(small):
    X, y = small
    plain = LFDA(embedding="plain").fit(X, y)
    weighted = LFDA(embedding="weighted").fit(X, y)
    ortho = LFDA(embedding="orthonormalized").fit(X, y)
    scales = np.sqrt(np.maximum(plain.eigenvalues_, 0))
    np.testing.assert_allclose(
        weighted.components_, plain.components_ * scales[:, None], atol=1e-12
    )
    np.testing.assert_allclose(
        ortho.components_ @ ortho.components_.T, np.eye(4), atol=1e-12
    )


def test_invariances(small):
    X, y = small
    base = LFDA(n_components=2).fit(X, y)
    shifted = LFDA(n_components=2).fit(X + 100.0, y)
    np.testing.assert_allclose(shifted.components_, base.components_, rtol=1e-6)
    scaled = LFDA(n_components=2).fit(X * 10.0, y)
    np.testing.assert_allclose(scaled.components_ * 10.0, base.components_, rtol=1e-8)
    order = np.random.RandomState(1).permutation(X.shape[0])
    permuted = LFDA(n_components=2).fit(X[order], y[order])
    np.testing.assert_allclose(permuted.components_, base.components_, rtol=1e-8)


def test_multimodal_class_keeps_its_clusters_apart():
    # Class 0 has two far clusters on either side of class 1, along x0; x1 is
    # noise. LFDA keeps x0 (it separates the classes locally); LDA cannot.
    rng = np.random.RandomState(0)
    x0 = np.r_[rng.normal(-10, 1, 50), rng.normal(10, 1, 50), rng.normal(0, 1, 50)]
    x1 = rng.normal(0, 3, 150)
    X = np.c_[x0, x1]
    y = np.r_[np.zeros(100), np.ones(50)]
    direction = LFDA(n_components=1, embedding="orthonormalized").fit(X, y)
    assert abs(direction.components_[0, 0]) > 0.99


def test_singular_within_scatter_gives_finite_map():
    rng = np.random.RandomState(0)
    X = rng.standard_normal((12, 30))  # more features than points
    X[:, 5] = 3.0  # and a constant feature
    y = np.repeat([0, 1, 2], 4)
    lfda = LFDA(n_components=2).fit(X, y)
    assert np.all(np.isfinite(lfda.components_))
    Z = lfda.transform(X)
    assert np.all(np.isfinite(Z))


@pytest.mark.parametrize("method", ["blocks", "triangle", "rows"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("k", [1, 3])
def test_local_scales_are_exact_despite_rounding(method, dtype, k):
    # Near points far from the origin (their GEMM distances are mostly
    # rounding) and exact duplicates: the scales are still the exact k-th
    # neighbour distances.
    rng = np.random.RandomState(0)
    X = np.repeat(rng.standard_normal((6, 3)) * 100.0, 8, axis=0)
    # sq. distances near the GEMM rounding: the order of near points is noise
    X += rng.standard_normal(X.shape) * (1e-2 if dtype == np.float32 else 1e-6)
    X[::5] = X[1::5][: X[::5].shape[0]]
    X = X.astype(dtype)
    X64 = X.astype(np.float64)
    sq = ((X64[:, None, :] - X64[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(sq, np.inf)
    expected = np.sort(sq, axis=1)[:, k - 1]
    norms = np.einsum("ij,ij->i", X64, X64)
    factor = error_factor(dtype, X.shape[1])
    n = X.shape[0]
    if method == "blocks":
        distances = _block_sq_distances(X, norms, 0, n)
        slack = factor * (norms + norms.max())
        selves = np.arange(n)
        scales = _kth_distance(distances, X64, X64, 0 * selves, selves, k, slack)
    elif method == "rows":  # float64 products, as the rows path has
        distances = np.maximum(norms[:, None] + norms - 2 * X64 @ X64.T, 0.0)
        np.fill_diagonal(distances, 0.0)
        scratch = np.empty_like(distances)
        scales = _rows_sq_scales(-distances / 2, scratch, X64, norms, k, factor)
    else:
        T = (X @ X.T).astype(dtype)
        scales = np.empty(X.shape[0])
        kernels.triangle_kth_distance(T, X, norms, k, factor, scales)
    np.testing.assert_allclose(scales, expected, rtol=1e-12, atol=0)
    assert k > 1 or np.sum(expected == 0) > 0  # the duplicates' scales


@pytest.mark.parametrize("n_threads", [1, 3])
def test_threads_and_paths_agree(n_threads):
    rng = np.random.RandomState(0)
    X = rng.standard_normal((300, 5))
    y = rng.randint(0, 4, 300)
    blocks = local_scatter_matrices(X, y, 7, method="blocks")
    triangle = local_scatter_matrices(X, y, 7, method="triangle", n_threads=n_threads)
    rows = local_scatter_matrices(X, y, 7, method="rows", n_threads=n_threads)
    pairs = [
        *zip(blocks, triangle, strict=True),
        *zip(blocks, rows, strict=True),
    ]
    for a, b in pairs:
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-11 * np.abs(a).max())


def test_small_classes_and_duplicates():
    X = np.array([[0.0, 0], [0, 0], [1, 0], [5, 5], [5, 6], [9, 9]])
    y = np.array([0, 0, 0, 1, 1, 2])  # k=7 exceeds every class; a singleton
    lfda = LFDA(k=7).fit(X, y)
    assert np.all(np.isfinite(lfda.components_))


def test_bad_parameters_are_named():
    X = np.random.RandomState(0).standard_normal((20, 3))
    y = np.repeat([0, 1], 10)
    with pytest.raises(ValueError, match="embedding"):
        LFDA(embedding="sqrt").fit(X, y)
    with pytest.raises(ValueError, match="'k'"):
        LFDA(k=0).fit(X, y)
    with pytest.raises(ValueError, match="n_components=4"):
        LFDA(n_components=4).fit(X, y)


def test_fast_validation_matches_the_full_one():
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(0)
    X = rng.standard_normal((30, 3))
    y = np.repeat([3, 7, 9], 10)
    lfda = LFDA().fit(pd.DataFrame(X, columns=["a", "b", "c"]), y)
    assert list(lfda.feature_names_in_) == ["a", "b", "c"]
    from_frame = lfda.components_.copy()
    lfda.fit(X, y)  # the fast path forgets the names, as validate_data does
    assert not hasattr(lfda, "feature_names_in_") and lfda.n_features_in_ == 3
    np.testing.assert_array_equal(lfda.components_, from_frame)
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        LFDA().fit(X, y)
    with pytest.raises(ValueError, match="one class"):
        LFDA().fit(X[1:10], y[1:10])


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int64, np.uint64])
def test_label_codes_match_unique(dtype):
    rng = np.random.RandomState(0)
    low = 0 if np.dtype(dtype).kind == "u" else -128
    for values in (rng.randint(0, 5, 50), rng.randint(0, 256, 50), [3, 3, 1]):
        y = (np.asarray(values) + low).astype(dtype)
        classes, codes = _label_codes(y)
        expected_classes, expected_codes = np.unique(y, return_inverse=True)
        np.testing.assert_array_equal(classes, expected_classes)
        np.testing.assert_array_equal(codes, expected_codes)
    y = np.array([0, 10**9, 5], dtype=dtype if dtype in (np.int64, np.uint64) else int)
    np.testing.assert_array_equal(_label_codes(y)[1], [0, 2, 1])
