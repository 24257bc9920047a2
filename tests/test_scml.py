"""Tests of SCML: features and RDA against the NumPy reference, the estimator."""

import numpy as np
import pytest
from sklearn.base import clone

import linmetric._kernels._chunking as chunking
import linmetric._scml as scml_module
from linmetric import SCML
from linmetric._constraints import sample_triplets
from linmetric._kernels.scml import (
    class_sums,
    feature_rows,
    permute_columns,
    rda_steps,
)
from linmetric._optimize import IterationLog
from linmetric._scml import (
    TripletFeatures,
    distinct_rows,
    lda_basis,
    rda,
    triplet_difference_basis,
)
from linmetric._threads import limit_threads
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
    features = TripletFeatures.from_points(X.astype(np.float64), basis, index)
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


def test_distinct_rows_keep_the_first_row_of_each_group():
    # 0.0 and -0.0 compare equal: the row kept is the group's first, in
    # the order of the rows, whatever the order of the sort among ties
    rng = np.random.RandomState(0)
    rows = np.zeros((500, 3))
    rows[:, 1] = rng.randint(0, 5, size=500)
    rows[:, 0] = np.where(rng.rand(500) < 0.5, -0.0, 0.0)
    points, inverse = distinct_rows(rows)
    assert points.shape[0] == 5
    for group in range(5):
        first = np.flatnonzero(inverse == group)[0]
        assert np.signbit(points[group, 0]) == np.signbit(rows[first, 0])


def _rda(features, output_iter, n_steps=400, beta=1e-3, batch_size=7):
    return rda(
        features,
        beta=beta,
        gamma=5e-3,
        max_iter=n_steps,
        output_iter=output_iter,
        batch_size=batch_size,
        tol=-np.inf,  # every window
        random_state=np.random.RandomState(5),
        log=IterationLog("SCML", columns=("n_nonzero",)),
        components=None,
    )


@pytest.mark.parametrize("beta", [1e-3, 0.0])
def test_rda_with_a_full_table_is_exact(iris, monkeypatch, beta):
    # The feature rows are kept in a table of bounded size; a row that does
    # not fit is computed again at each draw, from the same expression: the
    # weights do not depend on the table's size, bit for bit, and are those
    # of the reference.
    X, y = iris
    index = _triplets(X, y)
    basis = lda_basis(X, y, 40, np.random.RandomState(0))
    features = TripletFeatures.from_points(X, basis, index)
    kept, n_iter, _ = _rda(features, output_iter=40, beta=beta)
    assert n_iter == 400
    for n_rows in (0, 1, 9, len(features) - 1):
        # (the table also holds one scratch row per triplet of a batch)
        entries = (n_rows + 7) * basis.shape[0]
        monkeypatch.setattr(scml_module, "TABLE_ENTRIES", entries)
        np.testing.assert_array_equal(
            _rda(features, output_iter=40, beta=beta)[0], kept
        )
    replay = np.random.RandomState(5)
    batches = [replay.randint(len(features), size=7) for _ in range(400)]
    expected = reference.rda(
        features.rows(np.arange(len(features))), batches, beta, 5e-3
    )
    np.testing.assert_allclose(kept, expected, rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_scale_is_the_mean_squared_projected_difference(iris, dtype):
    X, y = iris
    X = X.astype(dtype)
    index = _triplets(X, y)
    X64 = X.astype(np.float64)
    basis = triplet_difference_basis(X64, index, 30, np.random.RandomState(0))
    features = TripletFeatures.from_points(X64, basis, index)
    np.testing.assert_allclose(features.projections, X64 @ basis.T, rtol=1e-14)
    projections = X64 @ basis.T
    differences = np.concatenate(
        [X64[index[:, 0]] - X64[index[:, 1]], X64[index[:, 0]] - X64[index[:, 2]]]
    )
    expected = np.mean((differences @ basis.T) ** 2)
    assert features.scale == pytest.approx(expected, rel=1e-12)
    # beyond 2000 triplets, every other one
    many = np.random.RandomState(0).permutation(np.tile(index, (20, 1)))[:2500]
    sample = many[::2]
    near = projections[sample[:, 0]] - projections[sample[:, 1]]
    far = projections[sample[:, 0]] - projections[sample[:, 2]]
    expected = (np.sum(near**2) + np.sum(far**2)) / (2 * near.size)
    scale = TripletFeatures.from_points(X64, basis, many).scale
    assert scale == pytest.approx(expected, rel=1e-12)
    assert TripletFeatures(projections, index, 2.5).scale == 2.5
    # a basis orthogonal to every difference: no scale, 1
    flat = np.column_stack([X64[:, :3], np.zeros(X.shape[0])])
    unit = np.array([[0.0, 0.0, 0.0, 1.0]])
    assert TripletFeatures.from_points(flat, unit, index).scale == 1.0


def test_fit_is_the_same_on_one_thread_and_on_several(iris, monkeypatch):
    # The projections and the kept feature rows are split by rows over the
    # kernel threads: any split gives the same fit, bit for bit.
    X, y = iris
    model = SCML(n_basis=40, output_iter=40, max_iter=400, random_state=0)
    with limit_threads(kernels=1):
        serial = clone(model).fit(X, y)
    monkeypatch.setattr(chunking, "MIN_WORK_PER_THREAD", 1)
    monkeypatch.setattr(chunking, "MIN_ROWS_PER_THREAD", 1)
    for n_threads in (2, 3, 7):
        monkeypatch.setattr(
            chunking, "kernel_threads", lambda n, m, k=n_threads: max(1, min(k, n))
        )
        split = clone(model).fit(X, y)
        np.testing.assert_array_equal(split.weights_, serial.weights_)
        np.testing.assert_array_equal(split.components_, serial.components_)


def test_rda_step_weights_at_the_threshold():
    # -gsum / t just above, just below and well above beta: the weights of
    # the closed form (no triplet moves gsum: z = 0 here)
    beta, gamma, delta, t = 1e-3, 5e-3, 1e-8, 7
    gradient_sum = -beta * t * np.array([1 + 1e-9, 1 - 1e-9, 1.2, 0.0, -1.0])
    squared_sum = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    expected_sum, expected_squares = gradient_sum.copy(), squared_sum.copy()
    weights = np.zeros(5)
    projections = np.ones((3, 5))
    triplets = np.array([[0, 1, 2]], dtype=np.intp)
    batches = np.zeros((1, 1), dtype=np.intp)
    rda_steps(
        projections, triplets, batches, 1.0, weights, gradient_sum, squared_sum,
        t - 1, beta, gamma, delta, np.empty((1, 5)), np.arange(5),
    )  # fmt: skip
    # computed as gamma max(0, -gsum - beta t) / (delta + sqrt(H2)) ...
    computed = np.maximum(-expected_sum - beta * t, 0.0)
    computed *= gamma / (delta + np.sqrt(expected_squares))
    np.testing.assert_allclose(weights, computed, rtol=1e-15, atol=0)
    # ... the paper's form, whose -gsum / t - beta loses digits to
    # cancellation just above the threshold
    shrunk = -expected_sum / t - beta
    size = gamma * t / (delta + np.sqrt(expected_squares))
    paper = np.where(shrunk > 0, size * shrunk, 0.0)
    np.testing.assert_allclose(weights, paper, rtol=1e-6, atol=0)
    np.testing.assert_array_equal(weights > 0, [True, False, True, False, False])


def test_class_sums_add_in_row_order():
    rng = np.random.RandomState(0)
    X = rng.standard_normal((50, 3)) * 10.0 ** rng.randint(-8, 8, size=(50, 1))
    codes = rng.randint(0, 4, size=50).astype(np.intp)
    expected = np.zeros((4, 3))
    np.add.at(expected, codes, X)
    np.testing.assert_array_equal(class_sums(X, codes, 4), expected)


def _plain_rda_steps(rows, batches, beta, gamma, delta):
    """RDA steps written plainly, each sum in the compiled kernel's order."""
    batch_size = batches.shape[1]
    n_basis = rows.shape[1]
    weights, gradient_sum, squared_sum = (np.zeros(n_basis) for _ in range(3))
    total, counts = 0.0, set()
    for step, batch in enumerate(batches):
        nonzero = np.flatnonzero(weights)
        l1 = 0.0
        for k in nonzero:  # increasing k
            l1 += weights[k]
        hinge, positive = 0.0, []
        for r in batch:
            margin = 1.0
            for k in nonzero:
                margin += rows[r, k] * weights[k]
            if margin > 0.0:
                hinge += margin
                positive.append(r)
        total += hinge / batch_size + beta * l1
        counts.add(min(len(positive), 4))
        if positive:
            gradient = rows[positive[0]].copy()
            for r in positive[1:]:
                gradient += rows[r]
            gradient *= 1.0 / batch_size
            gradient_sum += gradient
            squared_sum += gradient * gradient
        shrunk = -gradient_sum - beta * (step + 1)
        with np.errstate(invalid="ignore"):
            weights = np.where(
                shrunk > 0.0, gamma * shrunk / (delta + np.sqrt(squared_sum)), 0.0
            )
    return weights, gradient_sum, squared_sum, total, counts


@pytest.mark.parametrize("batch_size", [7, 10, 13])
@pytest.mark.parametrize("layout", ["in order", "reordered"])
def test_rda_steps_are_the_plain_steps_bit_for_bit(iris, batch_size, layout):
    # Steps with no positive hinge revisit only the non-zero weights, up to
    # three positive rows are added in one pass, sum(w) is added beside the
    # hinge arguments, the table's columns may be reordered between windows,
    # the rows not kept are computed at each draw: none of it may change a
    # rounding.
    X, y = iris
    index = _triplets(X, y)
    basis = triplet_difference_basis(X, index, 30, np.random.RandomState(0))
    n_basis = basis.shape[0]
    features = TripletFeatures.from_points(X, basis, index)
    rows = features.rows(np.arange(len(features)))
    batches = np.random.RandomState(3).randint(len(index), size=(300, batch_size))
    beta, gamma, delta = 1e-3, 0.05, 1e-8
    weights, gradient_sum, squared_sum, total, counts = _plain_rda_steps(
        rows, batches, beta, gamma, delta
    )
    assert counts == {0, 1, 2, 3, 4}  # every path of the kernel is taken
    got = [np.zeros(n_basis) for _ in range(3)]
    n_kept = len(index) - 5  # the last five at each draw
    table = np.empty((n_kept + batch_size, n_basis))
    feature_rows(
        0, n_kept, features.projections, features.triplets, features.scale, table
    )
    order = np.arange(n_basis)
    loss = 0.0
    for start in range(0, 300, 70):  # in windows, as in a fit
        if layout == "reordered" and start > 0:
            # from the current order to another one
            change = np.random.RandomState(start).permutation(n_basis)
            permute_columns(0, n_kept, table, change)
            order = order[change]
        loss += rda_steps(
            features.projections, features.triplets, batches[start : start + 70],
            features.scale, *got, start, beta, gamma, delta, table, order,
        )  # fmt: skip
    for array, expected in zip(got, (weights, gradient_sum, squared_sum), strict=True):
        np.testing.assert_array_equal(array, expected)
    assert np.count_nonzero(weights) > 0
    # the loss is summed over windows here, over all steps there
    assert loss == pytest.approx(total, rel=1e-12)


def test_fit_is_the_same_with_the_columns_reordered(iris, monkeypatch):
    # Once the weights are sparse, the kept rows' columns are reordered: the
    # fit must not depend on the order.
    X, y = iris
    model = SCML(n_basis=40, output_iter=40, max_iter=400, tol=0, random_state=0)
    model.set_params(n_constraints=300)  # few enough to be kept
    monkeypatch.setattr(scml_module, "_packed_order", lambda *args: None)
    in_order = clone(model).fit(X, y)
    orders = []

    def reversed_order(weights, *args):
        orders.append(np.arange(weights.shape[0])[::-1].copy())
        return orders[-1]

    monkeypatch.setattr(scml_module, "_packed_order", reversed_order)
    reordered = clone(model).fit(X, y)
    assert len(orders) == 1  # once, after the first window
    np.testing.assert_array_equal(reordered.weights_, in_order.weights_)
    np.testing.assert_array_equal(reordered.loss_curve_, in_order.loss_curve_)


def test_packed_order_puts_the_likely_elements_first():
    n_basis, t, beta = 12, 100, 1e-3
    weights = np.zeros(n_basis)
    weights[[2, 9]] = 0.5
    squared_sum = np.full(n_basis, 1e-2)  # sqrt(H2 / t) = 0.01
    gradient_sum = np.full(n_basis, 1.0)  # far below the threshold
    gradient_sum[[2, 9]] = -1.0
    # -gsum within 30 typical steps (0.3) of beta t = 0.1, and just beyond
    gradient_sum[5] = -0.1 + 0.29
    gradient_sum[7] = -0.1 + 0.31
    order = scml_module._packed_order(weights, gradient_sum, squared_sum, beta, t)
    np.testing.assert_array_equal(order[:3], [2, 5, 9])
    np.testing.assert_array_equal(np.sort(order), np.arange(n_basis))
    assert list(order[3:]) == sorted(order[3:])
    # more than a quarter non-zero, or more than half likely: no reordering
    dense = weights.copy()
    dense[:4] = 0.1
    assert scml_module._packed_order(dense, gradient_sum, squared_sum, beta, t) is None
    near = np.full(n_basis, -0.1 + 0.1)
    assert scml_module._packed_order(weights, near, squared_sum, beta, t) is None
