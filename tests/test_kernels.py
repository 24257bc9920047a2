"""Kernels against their NumPy references (linmetric.reference.kernels).

Tolerances. Values computed through the GEMM expansion
``||a||^2 + ||b||^2 - 2 a.b`` may differ from the exact squared distance by
``(2 d + 8) u (||a||^2 + ||b||^2)`` with ``u`` the unit roundoff of the dtype
(see linmetric._kernels.distances); ``expansion_tolerance`` gives that bound.
Values the kernels recompute exactly (float64 sums of squared differences)
are compared with ``rtol=1e-6`` in float32 (one rounding to float32) and
``1e-12`` in float64 (summation order). Index results (target neighbours,
impostor pairs) must be identical.
"""

import tracemalloc

import numpy as np
import pytest
import sklearn

from linmetric._kernels import (
    find_impostors,
    row_norms_sq,
    rows_per_chunk,
    sort_pairs,
    sq_distance_blocks,
    sq_distances_of_pairs,
    target_neighbors,
    weighted_outer_sum,
)
from linmetric._kernels._chunking import get_working_memory, split_range
from linmetric.reference import kernels as reference

DTYPES = [np.float32, np.float64]
EXACT_RTOL = {np.float32: 1e-6, np.float64: 1e-12}


def expansion_tolerance(A, B, dtype):
    norms_a = np.sum(np.asarray(A, dtype=np.float64) ** 2, axis=1)
    norms_b = np.sum(np.asarray(B, dtype=np.float64) ** 2, axis=1)
    u = np.finfo(dtype).eps / 2
    return (2 * A.shape[1] + 8) * u * (norms_a[:, None] + norms_b[None, :])


def make_data(seed, n_samples=157, n_features=6, n_classes=4, dtype=np.float64):
    """Gaussian rows with duplicates (zero distances) and one tiny class.

    157 rows: a prime, so no block size divides it.
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features))
    y = rng.integers(0, n_classes, n_samples)
    X[1] = X[0]  # duplicates: exact zero distances, across classes too
    X[7] = X[5]
    X[8] = X[5]
    y[[0, 1, 5, 7]] = 0
    y[8] = 1
    y[-5:] = n_classes  # a tiny class of 5 members
    return X.astype(dtype), y


def make_grid_data(seed, n_samples=120, n_features=3, n_classes=3, dtype=np.float64):
    """Small-integer rows: many exactly tied distances, all exact in float32."""
    rng = np.random.default_rng(seed)
    X = rng.integers(-2, 3, (n_samples, n_features)).astype(dtype)
    y = rng.integers(0, n_classes, n_samples)
    return X, y


# --- chunking -------------------------------------------------------------


def test_rows_per_chunk_follows_budget():
    assert rows_per_chunk(2**20, working_memory=10) == 10
    assert rows_per_chunk(2**30, working_memory=1) == 1  # never 0
    assert rows_per_chunk(8, working_memory=1, max_rows=7) == 7
    with sklearn.config_context(working_memory=3):
        assert get_working_memory() == 3
        assert rows_per_chunk(2**20) == 3


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf")])
def test_rows_per_chunk_rejects_bad_budget(bad):
    with pytest.raises(ValueError, match="working_memory"):
        rows_per_chunk(8, working_memory=bad)
    with pytest.raises(TypeError, match="working_memory"):
        rows_per_chunk(8, working_memory="a lot")


def test_split_range_covers_range():
    assert split_range(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert split_range(2, 5) == [(0, 1), (1, 2)]


# --- distances ------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("working_memory", [0.001, 0.01, None])
def test_sq_distance_blocks_match_reference(dtype, working_memory):
    X, _ = make_data(0, dtype=dtype)
    expected = reference.sq_distances(X)
    tolerance = expansion_tolerance(X, X, dtype)
    covered = 0
    for start, stop, block in sq_distance_blocks(X, working_memory=working_memory):
        assert start == covered and block.shape == (stop - start, X.shape[0])
        assert block.dtype == dtype
        covered = stop
        assert np.all(block >= 0)
        assert np.all(np.abs(block - expected[start:stop]) <= tolerance[start:stop])
        # self-distances are exactly zero, duplicates are within the bound
        assert np.all(np.diagonal(block, offset=start) == 0)
    assert covered == X.shape[0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_sq_distance_blocks_two_sets(dtype):
    A, _ = make_data(1, n_samples=31, dtype=dtype)
    B, _ = make_data(2, n_samples=45, dtype=dtype)
    D = np.vstack([b for _, _, b in sq_distance_blocks(A, B, working_memory=0.001)])
    assert D.dtype == dtype and D.shape == (31, 45)
    assert np.all(
        np.abs(D - reference.sq_distances(A, B)) <= expansion_tolerance(A, B, dtype)
    )


def test_distances_check_inputs():
    with pytest.raises(ValueError, match="same number of columns"):
        next(sq_distance_blocks(np.ones((3, 2)), np.ones((3, 4))))
    with pytest.raises(ValueError, match="2-D"):
        next(sq_distance_blocks(np.ones(3)))
    # float32 with float64 gives float64; ints become float64
    mixed = next(sq_distance_blocks(np.ones((2, 2), np.float32), np.ones((2, 2))))
    assert mixed[2].dtype == np.float64
    assert next(sq_distance_blocks(np.ones((2, 2), int)))[2].dtype == np.float64


@pytest.mark.parametrize("dtype", DTYPES)
def test_row_norms_and_pair_distances(dtype):
    X, _ = make_data(3, dtype=dtype)
    np.testing.assert_allclose(
        row_norms_sq(X), np.sum(X.astype(np.float64) ** 2, 1), rtol=1e-12
    )
    rng = np.random.default_rng(3)
    rows = rng.integers(0, X.shape[0], 1000)
    cols = rng.integers(0, X.shape[0], 1000)
    rows[:3], cols[:3] = [0, 5, 9], [1, 8, 9]  # duplicates and a self pair: 0
    got = sq_distances_of_pairs(X, rows, cols)
    assert got.dtype == dtype
    assert np.all(got[:3] == 0)
    expected = reference.sq_distances_of_pairs(X, rows, cols)
    np.testing.assert_allclose(got, expected, rtol=EXACT_RTOL[dtype])
    # kept in float64 on request: no rounding to the dtype of X
    wide = sq_distances_of_pairs(X, rows, cols, dtype=np.float64)
    assert wide.dtype == np.float64
    np.testing.assert_allclose(wide, expected, rtol=1e-12)
    with pytest.raises(ValueError, match="cols must index"):
        sq_distances_of_pairs(X, [0], [X.shape[0]])


# --- target neighbours ----------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_neighbors", [1, 3])
@pytest.mark.parametrize("working_memory", [0.001, None])
def test_target_neighbors_match_reference(dtype, n_neighbors, working_memory):
    X, y = make_data(4, dtype=dtype)
    indices, sq_dists = target_neighbors(
        X, y, n_neighbors, working_memory=working_memory, return_distance=True
    )
    expected_indices, expected_dists = reference.target_neighbors(X, y, n_neighbors)
    assert indices.dtype == np.intp and sq_dists.dtype == dtype
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(sq_dists, expected_dists, rtol=EXACT_RTOL[dtype])
    # duplicates are each other's first neighbour, at distance exactly 0
    assert indices[0, 0] == 1 and indices[1, 0] == 0 and sq_dists[0, 0] == 0
    np.testing.assert_array_equal(
        target_neighbors(X, y, n_neighbors, working_memory=working_memory), indices
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_target_neighbors_break_ties_by_index(dtype):
    X, y = make_grid_data(5, dtype=dtype)
    indices = target_neighbors(X, y, 4, working_memory=0.002)
    np.testing.assert_array_equal(indices, reference.target_neighbors(X, y, 4)[0])


def test_target_neighbors_float32_near_points_are_exact():
    # Large norms, tiny differences: the float32 expansion cannot tell the
    # neighbours apart, the exact recheck must.
    rng = np.random.default_rng(6)
    X = (1000.0 + 1e-2 * rng.standard_normal((60, 4))).astype(np.float32)
    y = np.repeat([0, 1], 30)
    indices = target_neighbors(X, y, 3)
    np.testing.assert_array_equal(indices, reference.target_neighbors(X, y, 3)[0])


def test_target_neighbors_tiny_class_error():
    X, y = make_data(7)
    with pytest.raises(ValueError, match=r"Class 4 has 5 member\(s\).*n_neighbors=5"):
        target_neighbors(X, y, 5)
    with pytest.raises(ValueError, match="n_neighbors must be a positive integer"):
        target_neighbors(X, y, 0)
    with pytest.raises(ValueError, match="one label per row"):
        target_neighbors(X, y[:-1], 1)


# --- impostors ------------------------------------------------------------


def assert_same_pairs(got, expected, dtype, *, exact):
    rows, cols, sq_dists = got
    assert rows.dtype == np.intp and cols.dtype == np.intp and sq_dists.dtype == dtype
    np.testing.assert_array_equal(rows, expected[0])
    np.testing.assert_array_equal(cols, expected[1])
    if exact:
        np.testing.assert_allclose(sq_dists, expected[2], rtol=EXACT_RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("working_memory", [0.001, 0.02, None])
def test_find_impostors_match_reference(dtype, working_memory):
    X, y = make_data(8, dtype=dtype)
    _, target_dists = reference.target_neighbors(X, y, 3)
    radii = target_dists[:, -1] + 1.0
    expected = reference.find_impostors(X, y, radii)
    assert expected[0].size > 100  # the fixture does have impostors
    got = find_impostors(X, y, radii, working_memory=working_memory)
    assert_same_pairs(got, expected, dtype, exact=False)
    tolerance = expansion_tolerance(X, X, dtype)[expected[0], expected[1]]
    assert np.all(np.abs(got[2] - expected[2]) <= tolerance)
    exact = find_impostors(
        X, y, radii, working_memory=working_memory, exact_distances=True
    )
    assert_same_pairs(exact, expected, dtype, exact=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_find_impostors_radius_is_strict(dtype):
    # Integer rows: distances are exact, and radii equal to distances occur.
    X, y = make_grid_data(9, dtype=dtype)
    rng = np.random.default_rng(9)
    radii = rng.integers(0, 8, X.shape[0]).astype(np.float64)
    got = find_impostors(X, y, radii, working_memory=0.001)
    assert_same_pairs(got, reference.find_impostors(X, y, radii), dtype, exact=True)
    D = reference.sq_distances(X)
    assert np.any(D == radii[:, None])  # boundary cases were present


def test_find_impostors_float32_near_radius_is_exact():
    # Norms ~1e6 make the float32 expansion error (~100) dwarf the distances
    # (~1); the exact recheck decides.
    rng = np.random.default_rng(10)
    X = (1000.0 + rng.standard_normal((80, 3))).astype(np.float32)
    y = rng.integers(0, 2, 80)
    radii = np.full(80, 2.0)
    got = find_impostors(X, y, radii)
    assert_same_pairs(
        got, reference.find_impostors(X, y, radii), np.float32, exact=True
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_find_impostors_none(dtype):
    X, y = make_data(11, dtype=dtype)
    for radii in (np.zeros(X.shape[0]), np.full(X.shape[0], -1.0)):
        rows, cols, sq_dists = find_impostors(X, y, radii)
        assert rows.shape == cols.shape == sq_dists.shape == (0,)
        assert rows.dtype == np.intp and sq_dists.dtype == dtype
    # one class only: no pairs whatever the radii
    rows, _, _ = find_impostors(
        X, np.zeros(X.shape[0], int), np.full(X.shape[0], np.inf)
    )
    assert rows.size == 0


def test_find_impostors_infinite_radii_give_all_pairs():
    X, y = make_data(12, n_samples=40)
    rows, cols, _ = find_impostors(X, y, np.full(40, np.inf))
    expected_rows, expected_cols = np.nonzero(y[:, None] != y[None, :])
    np.testing.assert_array_equal(rows, expected_rows)
    np.testing.assert_array_equal(cols, expected_cols)


def test_find_impostors_check_inputs():
    X, y = make_data(13)
    with pytest.raises(ValueError, match="one radius per row"):
        find_impostors(X, y, np.ones(3))
    with pytest.raises(ValueError, match="NaN"):
        find_impostors(X, y, np.full(X.shape[0], np.nan))


def test_sort_pairs():
    rng = np.random.default_rng(15)
    rows = rng.integers(0, 20, 500)
    cols = rng.integers(0, 20, 500)
    values = rng.random(500)
    sorted_rows, sorted_cols, sorted_values = sort_pairs(rows, cols, 20, values)
    order = np.lexsort((cols, rows))
    np.testing.assert_array_equal(sorted_rows, rows[order])
    np.testing.assert_array_equal(sorted_cols, cols[order])
    np.testing.assert_array_equal(sorted_values, values[order])


# --- weighted outer sums --------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_pairs", [0, 1, 300, 20000])
@pytest.mark.parametrize("sorted_rows", [False, True])
def test_weighted_outer_sum_matches_reference(dtype, n_pairs, sorted_rows):
    X, _ = make_data(16, dtype=dtype)
    rng = np.random.default_rng(n_pairs)
    rows = rng.integers(0, X.shape[0], n_pairs)
    cols = rng.integers(0, X.shape[0], n_pairs)
    weights = rng.standard_normal(n_pairs)
    if n_pairs:
        rows[-1], cols[-1] = rows[0], cols[0]  # repeated pair
        cols[1 % n_pairs] = rows[1 % n_pairs]  # a self pair contributes 0
    if sorted_rows:
        rows = np.sort(rows)
    got = weighted_outer_sum(X, rows, cols, weights, working_memory=0.001)
    expected = reference.weighted_outer_sum(X, rows, cols, weights)
    assert got.dtype == np.float64 and got.shape == (6, 6)
    np.testing.assert_array_equal(got, got.T)
    # rounding of order 1e-16 * sum |w| (|x_a|^2 + |x_b|^2): see the docstring
    squares = np.sum(X.astype(np.float64) ** 2, axis=1)
    scale = np.sum(np.abs(weights) * (squares[rows] + squares[cols])) + 1.0
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-13 * scale)


def test_weighted_outer_sum_sorted_rows_do_not_depend_on_threads():
    import numba

    X, _ = make_data(18)
    rng = np.random.default_rng(18)
    rows = np.sort(rng.integers(0, X.shape[0], 30000))
    cols = rng.integers(0, X.shape[0], 30000)
    weights = rng.random(30000)
    many = weighted_outer_sum(X, rows, cols, weights)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        one = weighted_outer_sum(X, rows, cols, weights)
    finally:
        numba.set_num_threads(threads)
    np.testing.assert_array_equal(one, many)


def test_weighted_outer_sum_check_inputs():
    with pytest.raises(ValueError, match="one value per pair"):
        weighted_outer_sum(np.ones((3, 2)), [0, 1], [1, 2], [1.0])


# --- bounded memory -------------------------------------------------------


def test_peak_memory_is_bounded_by_the_budget():
    """On 20,000 rows the kernels stay within the budget, far from n**2.

    tracemalloc sees NumPy's allocations (and the kernels allocate their
    large buffers with NumPy). A full float32 distance matrix would take
    1.6 GB; with an 8 MiB budget the peak must stay within a few budgets
    plus a few copies of the data.
    """
    rng = np.random.default_rng(17)
    n_samples, n_features, budget = 20_000, 8, 8
    X = rng.standard_normal((n_samples, n_features)).astype(np.float32)
    y = rng.integers(0, 4, n_samples)
    radii = np.full(n_samples, 0.05)
    data_bytes = X.nbytes
    allowed = 3 * budget * 2**20 + 10 * data_bytes + 1 * 2**20
    assert allowed < n_samples**2 * 4 / 40

    # compile (or load from cache) first: the compiler's own allocations
    # are not the kernels' working memory
    target_neighbors(X[:50], y[:50] % 2, 3)
    find_impostors(X[:50], y[:50], radii[:50])

    def peak_of(function):
        tracemalloc.start()
        try:
            function()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    def consume_blocks():
        for _, _, block in sq_distance_blocks(X, working_memory=budget):
            assert block.nbytes <= budget * 2**20

    neighbors_peak = peak_of(lambda: target_neighbors(X, y, 3, working_memory=budget))
    impostors_peak = peak_of(lambda: find_impostors(X, y, radii, working_memory=budget))
    blocks_peak = peak_of(consume_blocks)
    for peak in (neighbors_peak, impostors_peak, blocks_peak):
        assert peak < allowed, (peak, allowed)


def test_searches_do_not_depend_on_the_number_of_threads():
    import numba

    X, y = make_data(19, n_samples=400, dtype=np.float32)
    radii = reference.target_neighbors(X, y, 3)[1][:, -1] * 1.5

    def run_all():
        neighbors = target_neighbors(X, y, 3, working_memory=0.01, return_distance=True)
        impostors = find_impostors(X, y, radii, working_memory=0.01)
        return (*neighbors, *impostors)

    many = run_all()
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        one = run_all()
    finally:
        numba.set_num_threads(threads)
    for a, b in zip(one, many, strict=True):
        np.testing.assert_array_equal(a, b)


def test_kernels_run_in_a_forked_child():
    import multiprocessing

    X, y = make_data(20, n_samples=300)
    expected = target_neighbors(X, y, 3)  # starts the thread pool here
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        got = pool.apply_async(target_neighbors, (X, y, 3)).get(timeout=60)
    np.testing.assert_array_equal(got, expected)


def test_limit_threads_caps_kernels_for_the_calling_thread_only():
    import threading

    from linmetric._threads import kernel_threads, limit_threads

    outside = kernel_threads()
    seen_elsewhere = []
    with limit_threads(kernels=1):
        assert kernel_threads() == 1
        other = threading.Thread(target=lambda: seen_elsewhere.append(kernel_threads()))
        other.start()
        other.join()
        with limit_threads(kernels=3):  # nested limits cap, and restore
            assert kernel_threads() == min(outside, 3)
        assert kernel_threads() == 1
    assert seen_elsewhere == [outside]
    assert kernel_threads() == outside
    with limit_threads():
        assert kernel_threads() == outside
    assert kernel_threads(10, 8) == 1  # too few items to split


def test_run_tasks_is_reentrant():
    # a task that itself runs tasks must not wait on a shared, busy pool
    from linmetric._kernels._chunking import run_tasks

    def inner(k):
        return run_tasks([(lambda a: a * k, a) for a in range(3)])

    assert run_tasks([(inner, k) for k in range(4)]) == [
        [a * k for a in range(3)] for k in range(4)
    ]


def test_run_tasks_keeps_order_nests_and_raises_after_every_task_ended():
    import threading
    import time

    from linmetric._kernels._chunking import run_tasks

    assert run_tasks([(pow, 2, k) for k in range(6)]) == [2**k for k in range(6)]
    # A task that runs tasks itself (a pool thread waiting on the pool would
    # deadlock once every pool thread waits).
    nested = [(run_tasks, [(pow, 3, k) for k in range(3)]) for _ in range(8)]
    assert run_tasks(nested) == [[1, 3, 9]] * 8

    ended = threading.Event()

    def slow():
        time.sleep(0.05)
        ended.set()

    def fail():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run_tasks([(fail,), (slow,)])
    assert ended.is_set()


def test_row_work_keeps_small_kernels_on_the_calling_thread(monkeypatch):
    import threading

    import numba

    from linmetric._kernels import _chunking

    def kernel(start, stop):
        return threading.get_ident()

    if numba.get_num_threads() < 2:
        pytest.skip("needs two numba threads")
    main = threading.get_ident()
    small = _chunking.run_on_row_ranges(kernel, 100, row_work=10)
    assert small == [main]
    large = _chunking.run_on_row_ranges(kernel, 100, row_work=10**6)
    assert len(large) >= 2 and large[0] == main
    assert len(_chunking.run_on_row_ranges(kernel, 100)) >= 2  # rows only


def test_limit_threads_limits_blas():
    from threadpoolctl import threadpool_info

    from linmetric._threads import limit_threads

    with limit_threads(blas=1):
        blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
        assert blas and all(i["num_threads"] == 1 for i in blas)


def test_nested_blas_limits_set_and_restore_the_right_numbers(monkeypatch):
    from threadpoolctl import threadpool_info

    from linmetric import _threads

    def blas_threads():
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    outside = blas_threads()
    calls = []
    controller = _threads._blas_controller()
    original = controller.limit

    def counted(**kwargs):
        calls.append(kwargs["limits"])
        return original(**kwargs)

    monkeypatch.setattr(controller, "limit", counted)
    with _threads.limit_threads(blas=1):
        with _threads.limit_threads(blas=1):  # already so: left alone
            assert blas_threads() == {1}
        assert blas_threads() == {1}
        with _threads.limit_threads(blas=2):
            assert blas_threads() == {2}
            with _threads.limit_threads(blas=1):
                assert blas_threads() == {1}
            assert blas_threads() == {2}
        assert blas_threads() == {1}
    assert blas_threads() == outside
    assert calls == [1, 2, 1]


def test_blas_scan_by_name_finds_the_libraries_of_the_full_scan(monkeypatch):
    from threadpoolctl import ThreadpoolController

    from linmetric import _threads

    full = ThreadpoolController().select(user_api="blas")
    quick = _threads._find_blas()
    paths = sorted(lib.filepath for lib in quick.lib_controllers)
    assert paths == sorted(lib.filepath for lib in full.lib_controllers)
    # a BLAS whose file name says nothing of it is still found: full scan
    monkeypatch.setattr(_threads, "_BLAS_NAME_PARTS", ("no-such-library",))
    fallback = _threads._find_blas()
    assert sorted(lib.filepath for lib in fallback.lib_controllers) == paths
