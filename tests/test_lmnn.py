import numpy as np
import pytest
from scipy.optimize import check_grad
from sklearn.exceptions import ConvergenceWarning
from sklearn.neighbors import KNeighborsClassifier

from linmetric import LMNN
from linmetric._kernels import find_impostors, weighted_outer_sum
from linmetric._kernels.lmnn import (
    impostors_of_rows,
    lmnn_outer_sum,
    push_terms,
    ratios_by_group,
    scale_losses,
    streamed_push_terms,
)
from linmetric._lmnn import (
    _minimize_checked,
    _target_sq,
    _transform,
    _working_set_objective,
    lmnn_loss_grad,
)
from linmetric._lmnn_impostors import ImpostorSet
from linmetric._optimize import IterationLog, OptimizeResult, minimize_lbfgs
from linmetric.reference import lmnn as reference

LOSSES = ["squared_hinge", "hinge"]


def make_blobs_data(seed, n_samples=45, n_features=4, n_classes=3):
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n_samples, n_features))
    y = np.arange(n_samples) % n_classes
    X[:, 0] += y  # some class structure, with plenty of impostors
    return X, y


def make_impostors(X, y, memory=None):
    X = X - X.mean(axis=0)
    return ImpostorSet(y, np.sqrt((X**2).sum(axis=1)), None, memory)


def make_objective(X, y, *, mu=0.5, loss="squared_hinge", memory=None):
    """LMNN's objective over its working set of candidate impostors."""
    targets = reference.target_neighbors(X, y, 3)
    impostors = make_impostors(X, y, memory)
    objective = _working_set_objective(X, targets, impostors, mu=mu, loss=loss)
    return objective, targets, impostors


def other_class_pairs(y):
    rows, cols = np.nonzero(y[:, None] != y[None, :])
    return np.column_stack([rows, cols])


def stretched_classes(seed, n_per_class=20):
    """Two classes 1 apart along x0, spread 20 wide along x1.

    Euclidean neighbours are mostly decided by the noisy x1; the answer is
    a map that keeps x0 and shrinks x1.
    """
    rng = np.random.RandomState(seed)
    y = np.repeat([0, 1], n_per_class)
    X = np.column_stack(
        [y + 0.05 * rng.standard_normal(y.shape), 10 * rng.standard_normal(y.shape)]
    )
    return X, y


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_objective_equals_reference(loss, seed):
    X, y = make_blobs_data(seed)
    rng = np.random.RandomState(seed)
    L = rng.standard_normal((3, 4))
    objective, targets, _ = make_objective(X, y, mu=0.3, loss=loss)
    value, grad, extras = objective(L.ravel())
    ref_value, ref_grad, ref_active = reference.loss_grad(
        L, X, y, targets, mu=0.3, loss=loss
    )
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    np.testing.assert_allclose(
        grad.reshape(L.shape), ref_grad, rtol=1e-10, atol=1e-10 * abs(ref_grad).max()
    )
    assert extras["active_impostors"] == ref_active


def test_fast_objective_float32_close_to_reference():
    X, y = make_blobs_data(3)
    L = np.random.RandomState(3).standard_normal((4, 4))
    objective, targets, _ = make_objective(X.astype(np.float32), y)
    value, grad, _ = objective(L.ravel())
    ref_value, ref_grad, _ = reference.loss_grad(L, X, y, targets)
    np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    np.testing.assert_allclose(
        grad.reshape(L.shape), ref_grad, rtol=1e-4, atol=1e-4 * abs(ref_grad).max()
    )


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pure_loss_equals_reference(loss, seed):
    # every pair of points of different classes: the pairs outside the
    # margin add nothing, so this is the loss over all impostors
    X, y = make_blobs_data(seed)
    L = np.random.RandomState(seed).standard_normal((3, 4))
    targets = reference.target_neighbors(X, y, 3)
    value, grad = lmnn_loss_grad(
        L, X, targets, other_class_pairs(y), push_weight=0.3, loss=loss
    )
    ref_value, ref_grad, _ = reference.loss_grad(L, X, y, targets, mu=0.3, loss=loss)
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    np.testing.assert_allclose(
        grad, ref_grad, rtol=1e-10, atol=1e-10 * abs(ref_grad).max()
    )


def test_pure_loss_checks_its_indices():
    X, y = make_blobs_data(0)
    targets = reference.target_neighbors(X, y, 3)
    kwargs = {"push_weight": 0.5, "loss": "hinge"}
    with pytest.raises(ValueError, match="impostor_pairs must index rows"):
        lmnn_loss_grad(np.eye(4), X, targets, [[0, X.shape[0]]], **kwargs)
    with pytest.raises(ValueError, match="targets must index rows"):
        lmnn_loss_grad(np.eye(4), X, targets - 1, [[0, 1]], **kwargs)
    with pytest.raises(ValueError, match="targets must have shape"):
        lmnn_loss_grad(np.eye(4), X, targets[:3], [[0, 1]], **kwargs)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_matches_finite_differences(loss, seed):
    # At a random map no triplet sits exactly on its hinge, so both losses
    # are differentiable there.
    X, y = make_blobs_data(seed, n_samples=30, n_features=3)
    L = np.random.RandomState(seed).standard_normal((3, 3))
    targets = reference.target_neighbors(X, y, 3)
    pairs = other_class_pairs(y)

    def loss_grad(x):
        return lmnn_loss_grad(
            x.reshape(L.shape), X, targets, pairs, push_weight=0.5, loss=loss
        )

    fast = check_grad(
        lambda x: loss_grad(x)[0],
        lambda x: loss_grad(x)[1].ravel(),
        L.ravel(),
        seed=seed,
    )
    slow = check_grad(
        lambda x: reference.loss_grad(x.reshape(L.shape), X, y, targets, loss=loss)[0],
        lambda x: reference.loss_grad(x.reshape(L.shape), X, y, targets, loss=loss)[
            1
        ].ravel(),
        L.ravel(),
        seed=seed,
    )
    scale = np.linalg.norm(loss_grad(L.ravel())[1])
    assert fast < 1e-5 * scale
    assert slow < 1e-5 * scale


def test_push_terms_by_hand():
    # Row 0: target at squared distance 2, impostor at 2.25: margin 3,
    # z = 1 + 2 - 2.25 = 0.75.
    indptr = np.array([0, 1, 1])
    for squared, push, slope in [(False, 0.75, 1.0), (True, 0.5625, 1.5)]:
        value, pair_w, target_w, n_active = push_terms(
            indptr, np.array([2.25]), np.array([[2.0], [1.0]]), mu=0.5, squared=squared
        )
        assert value == pytest.approx(push)
        assert pair_w.tolist() == [-0.5 * slope]
        assert target_w[:, 0].tolist() == [0.5 * slope, 0.0]
        assert n_active == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [1, 3])
@pytest.mark.parametrize("tile", [(2, 7), (512, 4096)])
def test_impostors_of_rows_matches_full_search(dtype, n_threads, tile, monkeypatch):
    # Tiles of any shape, on any number of threads, give the full search's
    # pairs of the rows asked for, in (row, col) order.
    import linmetric._kernels.impostors as impostors_module
    from linmetric._threads import limit_threads

    monkeypatch.setattr(impostors_module, "_TILE_ROWS", tile[0])
    monkeypatch.setattr(impostors_module, "_TILE_COLS", tile[1])
    X, y = make_blobs_data(4, n_samples=60)
    Z = X.astype(dtype)
    radii = np.random.RandomState(0).uniform(1, 4, size=60)
    rows, cols, _ = find_impostors(Z, y, radii)
    subset = np.array([0, 5, 6, 17, 30, 59])
    with limit_threads(kernels=n_threads):
        sub_rows, sub_cols = impostors_of_rows(Z, y, subset, radii)
        keep = np.isin(rows, subset)
        assert impostors_of_rows(Z, y, subset, radii, max_pairs=keep.sum() - 1) is None
    np.testing.assert_array_equal(sub_rows, rows[keep])
    np.testing.assert_array_equal(sub_cols, cols[keep])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [1, 3])
@pytest.mark.parametrize("working_memory", [0.01, None])
def test_target_neighbors_on_threads_match_the_reference(
    dtype, n_threads, working_memory
):
    # Blocks of rows taken by threads in turn give the reference's targets.
    from linmetric._kernels import target_neighbors
    from linmetric._threads import limit_threads

    X, y = make_blobs_data(7, n_samples=300)
    X = X.astype(dtype)
    with limit_threads(kernels=n_threads):
        got = target_neighbors(X, y, 3, working_memory=working_memory)
    np.testing.assert_array_equal(got, reference.target_neighbors(X, y, 3))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [1, 3])
@pytest.mark.parametrize("tile", [(7, 13), (512, 4096)])
def test_full_search_tiles_give_the_brute_force_pairs(
    dtype, n_threads, tile, monkeypatch
):
    # Tiles of any shape, taken by any number of threads, give every pair
    # inside its row's radius, and the same float32 / float64 distances.
    import linmetric._kernels.impostors as impostors_module
    from linmetric._threads import limit_threads

    monkeypatch.setattr(impostors_module, "_TILE_ROWS", tile[0])
    monkeypatch.setattr(impostors_module, "_TILE_COLS", tile[1])
    X, y = make_blobs_data(5, n_samples=90)
    Z = X.astype(dtype)
    radii = np.random.RandomState(5).uniform(1, 4, size=90)
    D = ((X[:, None, :] - X[None, :, :]) ** 2).sum(axis=2)
    expected = np.nonzero((D < radii[:, None]) & (y[:, None] != y[None, :]))
    with limit_threads(kernels=n_threads):
        rows, cols, sq_dists = find_impostors(Z, y, radii, exact_distances=True)
    np.testing.assert_array_equal(rows, expected[0])
    np.testing.assert_array_equal(cols, expected[1])
    assert sq_dists.dtype == dtype
    np.testing.assert_allclose(sq_dists, D[expected], rtol=1e-5)
    with limit_threads(kernels=n_threads):
        assert find_impostors(Z, y, radii, max_pairs=rows.shape[0] - 1) is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [1, 3])
def test_lmnn_and_general_gradient_sums_agree(dtype, n_threads):
    # LMNN's own outer-product sum, split over threads by rows or not, in
    # either dtype, gives the matrix of the general one.
    from linmetric._threads import limit_threads

    X, y = make_blobs_data(6, n_samples=60)
    X = X.astype(dtype)
    targets = reference.target_neighbors(X, y, 3)
    rows, cols = np.nonzero(y[:, None] != y[None, :])
    indptr = np.searchsorted(rows, np.arange(61))
    Z = X @ np.random.RandomState(6).standard_normal((4, 4)).T
    pair_sq = ((Z[rows] - Z[cols]) ** 2).sum(axis=1)
    target_sq = ((Z[:, None, :] - Z[targets]) ** 2).sum(axis=2)
    _, pair_w, target_w, _ = push_terms(
        indptr, pair_sq, target_sq, mu=0.5, squared=True
    )
    target_w += 0.5
    with limit_threads(kernels=n_threads):
        serial = lmnn_outer_sum(X, targets, target_w, indptr, cols, pair_w)
    general = weighted_outer_sum(
        X,
        np.concatenate([np.repeat(np.arange(60), 3), rows]),
        np.concatenate([targets.ravel(), cols]),
        np.concatenate([target_w.ravel(), pair_w]),
    )
    assert np.any(pair_w != 0)
    np.testing.assert_allclose(serial, general, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("squared", [True, False])
def test_scale_losses_match_the_loss_of_scaled_maps(squared):
    X, y = make_blobs_data(7, n_samples=40)
    targets = reference.target_neighbors(X, y, 3)
    L = np.random.RandomState(7).standard_normal((4, 4))
    scales = np.array([0.01, 0.3, 1.0, 4.0])
    loss = scale_losses(
        X @ L.T, y, targets, np.arange(40), scales, mu=0.4, squared=squared
    )
    expected = [
        reference.loss_grad(
            np.sqrt(t) * L,
            X,
            y,
            targets,
            mu=0.4,
            loss="squared_hinge" if squared else "hinge",
        )[0]
        for t in scales
    ]
    np.testing.assert_allclose(loss, expected, rtol=1e-10)


@pytest.mark.parametrize("n_groups", [1, 3])
def test_ratios_by_group_match_numpy(n_groups):
    rng = np.random.RandomState(8)
    pair_sq, ref_sq = rng.uniform(0, 2, 50), rng.uniform(0, 2, 50)
    ref_sq[[4, 8]] = 0.0  # taken by the stride, and dropped
    rows = np.sort(rng.randint(0, 10, 50))
    target_sq, target_ref = rng.uniform(0, 2, (10, 2)), rng.uniform(0, 2, (10, 2))
    group_of = rng.randint(0, n_groups, 10)
    ratios, bounds = ratios_by_group(
        pair_sq, ref_sq, rows, 2, target_sq, target_ref, group_of, n_groups
    )
    with np.errstate(divide="ignore"):
        all_ratios = np.concatenate(
            [pair_sq[::2] / ref_sq[::2], (target_sq / target_ref).ravel()]
        )
    groups = np.concatenate([group_of[rows[::2]], np.repeat(group_of, 2)])
    assert bounds[0] == 0 and bounds[-1] == ratios.shape[0]
    for group in range(n_groups):
        members = all_ratios[(groups == group) & np.isfinite(all_ratios)]
        np.testing.assert_array_equal(
            np.sort(ratios[bounds[group] : bounds[group + 1]]), np.sort(members)
        )


@pytest.mark.parametrize("guaranteed", [False, True])
def test_candidates_stay_complete_along_a_path(guaranteed):
    # After every evaluation along a path of maps that shrinks distances,
    # the candidates hold every impostor of the current map, under the
    # estimated staleness test as under the guaranteed one.
    X, y = make_blobs_data(5, n_samples=90)
    objective, targets, impostors = make_objective(X, y)
    impostors.reset(guaranteed=guaranteed)
    rng = np.random.RandomState(5)
    L = np.eye(4)
    for step in range(12):
        L = L + 0.3 * rng.standard_normal((4, 4)) * (step % 3 == 0)
        L = L * 0.8
        objective(L.ravel())
        Z = _transform(X, L)
        assert not impostors.missed(Z, _target_sq(Z, targets).max(axis=1) + 1.0)
    # the candidates were refreshed on the way, not only at the start
    assert impostors.n_partial_searches + impostors.n_searches > 12 + 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("squared", [True, False])
def test_streamed_push_terms_match_the_stored_pairs(dtype, squared):
    X, y = make_blobs_data(11, n_samples=50)
    X = X.astype(dtype)
    targets = reference.target_neighbors(X, y, 3)
    Z = X @ np.random.RandomState(11).standard_normal((4, 4)).astype(dtype)
    target_sq = _target_sq(Z, targets)
    pairs = other_class_pairs(y)
    pair_sq = ((Z[pairs[:, 0]] - Z[pairs[:, 1]]).astype(np.float64) ** 2).sum(1)
    indptr = np.searchsorted(pairs[:, 0], np.arange(51))
    push, pair_w, target_w, n_active = push_terms(
        indptr, pair_sq, target_sq, mu=0.5, squared=squared
    )
    expected_C = weighted_outer_sum(
        X.astype(np.float64), pairs[:, 0], pairs[:, 1], pair_w
    )
    got = streamed_push_terms(
        X,
        Z,
        y,
        target_sq,
        mu=0.5,
        squared=squared,
        candidate_scale=1.5,
        working_memory=0.002,  # blocks of a few rows
    )
    rtol = 1e-4 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(got[0], push, rtol=rtol)
    np.testing.assert_allclose(
        got[1], expected_C, rtol=rtol, atol=rtol * abs(expected_C).max()
    )
    np.testing.assert_allclose(got[2], target_w, rtol=rtol, atol=rtol)
    assert got[3] == n_active
    margins = target_sq.max(axis=1) + 1.0
    assert got[4] == np.count_nonzero(pair_sq < 1.5 * margins[pairs[:, 0]])


@pytest.mark.parametrize("memory", [None, 2e-3, 1e-5])
def test_every_budget_gives_the_reference_loss(memory):
    # The full set, the narrow candidates (2e-3 MiB holds ~20 pairs here)
    # and the streamed loss (1e-5 MiB holds none) are the same objective.
    X, y = make_blobs_data(12, n_samples=45)
    objective, targets, impostors = make_objective(X, y, memory=memory)
    rng = np.random.RandomState(12)
    for _ in range(4):
        L = rng.standard_normal((4, 4))
        loss, grad, extras = objective(L.ravel())
        expected, expected_grad, n_active = reference.loss_grad(L, X, y, targets)
        np.testing.assert_allclose(loss, expected, rtol=1e-10)
        np.testing.assert_allclose(
            grad.reshape(4, 4), expected_grad, rtol=1e-8, atol=1e-8
        )
        assert extras["active_impostors"] == n_active
        assert impostors.nbytes <= impostors.max_pairs * 96
    if memory == 1e-5:
        assert impostors.n_streamed == 4 and impostors.streaming
    assert check_grad(
        lambda x: objective(x)[0], lambda x: objective(x)[1], L.ravel()
    ) < 1e-5 * np.linalg.norm(expected_grad)


def test_candidates_stay_within_the_budget_where_unbounded_ones_would_not():
    # 400 points of two overlapping classes: the unbounded candidates of a
    # shrunken map hold ~80,000 pairs (7.3 MiB); under a 1 MiB budget the
    # set holds at most 1 MiB, the traced peak of an evaluation stays near
    # it, and the loss is unchanged.
    import tracemalloc

    rng = np.random.RandomState(13)
    y = np.arange(400) % 2
    X = rng.standard_normal((400, 5)) + 0.1 * y[:, None]
    L = 0.05 * np.eye(5)
    unbounded, _, free_set = make_objective(X, y, memory=100.0)
    expected = unbounded(L.ravel())[0]
    assert free_set.nbytes > 4 * 2**20
    bounded, _, impostors = make_objective(X, y, memory=1.0)
    tracemalloc.start()
    try:
        for factor in (1.0, 0.9, 1.1, 20.0, 1.0):
            value = bounded((factor * L).ravel())[0]
            assert impostors.nbytes <= 2**20
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert impostors.n_streamed > 0
    np.testing.assert_allclose(value, expected, rtol=1e-10)
    # budget + one distance block (working_memory is sklearn's 1 GiB, but a
    # block of 400 x 400 float64 is 1.25 MiB) + small arrays
    assert peak < 1 * 2**20 + 4 * 400 * 400 * 8


def test_a_tiny_budget_fits_as_well_as_an_unbounded_one():
    X, y = make_blobs_data(14, n_samples=120)
    free = LMNN(random_state=0).fit(X, y)
    tight = LMNN(random_state=0, impostor_memory=1e-5).fit(X, y)
    assert free.n_streamed_evaluations_ == 0
    assert tight.n_streamed_evaluations_ > 0
    assert tight.converged_
    np.testing.assert_allclose(tight.loss_curve_[-1], free.loss_curve_[-1], rtol=0.05)


def test_impostor_set_reset_forgets_the_candidates():
    X, y = make_blobs_data(5, n_samples=30)
    objective, _, impostors = make_objective(X, y)
    objective(np.eye(4).ravel())
    assert impostors.rows is not None and not impostors.guaranteed
    impostors.reset(guaranteed=True)
    assert impostors.rows is None and impostors.references == []
    assert impostors.guaranteed
    objective(np.eye(4).ravel())
    assert impostors.rows is not None


def test_toy_problem_learns_the_informative_direction():
    X, y = stretched_classes(0)
    X_test, y_test = stretched_classes(1)
    euclidean = KNeighborsClassifier(3).fit(X, y).score(X_test, y_test)
    lmnn = LMNN(n_neighbors=3, random_state=0).fit(X, y)
    M = lmnn.get_mahalanobis_matrix()
    assert M[0, 0] > 100 * M[1, 1]
    knn = KNeighborsClassifier(3).fit(lmnn.transform(X), y)
    assert knn.score(lmnn.transform(X_test), y_test) == 1.0
    assert euclidean < 0.8
    assert lmnn.converged_


@pytest.mark.parametrize("loss", LOSSES)
def test_loss_never_increases_and_history(loss):
    X, y = make_blobs_data(6, n_samples=60)
    lmnn = LMNN(loss=loss, random_state=0, max_iter=300).fit(X, y)
    curve = lmnn.loss_curve_
    assert curve.shape == (lmnn.n_iter_,)
    assert np.all(np.diff(curve) <= 1e-12 * np.abs(curve[:-1]))
    assert set(lmnn.history_) == {"loss", "active_impostors", "seconds"}
    for values in lmnn.history_.values():
        assert values.shape == (lmnn.n_iter_,)
    np.testing.assert_array_equal(lmnn.history_["loss"], curve)
    assert lmnn.converged_
    assert lmnn.n_impostor_searches_ >= 2  # the first and the final check


def test_a_rising_loss_sends_the_optimiser_back():
    # L-BFGS never accepts a step that raises an exact loss: a recorded rise
    # means the candidates had missed impostors at some evaluation, so the
    # stopping rule was met on wrong losses, even if the final search at the
    # returned map finds nothing missing.
    X, y = make_blobs_data(8)
    objective, targets, impostors = make_objective(X, y)
    guaranteed = []

    def minimize(fun, x0, **kwargs):
        guaranteed.append(impostors.guaranteed)
        if len(guaranteed) > 1:
            return minimize_lbfgs(fun, x0, tol=0.0, ftol=1e-5, **kwargs)
        loss = fun(x0.ravel())[0]
        return OptimizeResult(x0, loss, 2, True, "", loss, loss_rose=True)

    log = IterationLog("LMNN", columns=("active_impostors",))
    _, converged, _ = _minimize_checked(
        minimize,
        objective,
        0.3 * np.eye(4),
        X,
        targets,
        impostors,
        max_iter=100,
        log=log,
        shape=(4, 4),
    )
    assert guaranteed == [False, True]
    assert converged and log.n_iter > 0
    assert log.loss_curve[-1] < objective((0.3 * np.eye(4)).ravel())[0]


def test_missed_impostors_are_not_reported_as_converged():
    # a run that stops at a map whose candidates miss impostors is resumed;
    # when no iterations are left it must not report convergence
    X, y = make_blobs_data(8)
    objective, targets, impostors = make_objective(X, y)

    def minimize(fun, x0, **kwargs):
        impostors.reset(guaranteed=False)
        impostors.update(x0, _transform(X, x0), np.zeros((X.shape[0], 3)))
        return OptimizeResult(x0, 0.0, 0, True, "")

    _, converged, message = _minimize_checked(
        minimize,
        objective,
        np.eye(4),
        X,
        targets,
        impostors,
        max_iter=0,
        log=IterationLog("LMNN", columns=("active_impostors",)),
        shape=(4, 4),
    )
    assert not converged and "impostors" in message


@pytest.mark.parametrize("loss", LOSSES)
def test_convergence_warning_when_stopped_early(loss):
    X, y = make_blobs_data(7)
    with pytest.warns(ConvergenceWarning, match="LMNN did not converge"):
        lmnn = LMNN(loss=loss, max_iter=1).fit(X, y)
    assert not lmnn.converged_
    assert lmnn.n_iter_ == 1


def test_verbose_table_and_callback(capsys):
    X, y = make_blobs_data(8)
    seen = []
    lmnn = LMNN(
        verbose=1, callback=lambda L, n_iter: seen.append((L.shape, n_iter))
    ).fit(X, y)
    out = capsys.readouterr().out
    assert "Active impostors" in out
    assert "[LMNN] converged after" in out
    assert seen == [((4, 4), i + 1) for i in range(lmnn.n_iter_)]


def test_warm_start_resumes_from_previous_solution():
    X, y = make_blobs_data(9, n_samples=60)
    lmnn = LMNN(warm_start=True, random_state=0).fit(X, y)
    first = lmnn.components_.copy()
    lmnn.fit(X, y)
    assert lmnn.n_iter_ <= 3
    np.testing.assert_allclose(lmnn.components_, first, rtol=1e-2, atol=1e-3)


def test_rectangular_map_and_float32():
    X, y = make_blobs_data(10, n_samples=60, n_features=5)
    lmnn = LMNN(n_components=2, random_state=0).fit(X.astype(np.float32), y)
    assert lmnn.components_.shape == (2, 5)
    assert lmnn.components_.dtype == np.float32
    assert lmnn.transform(X.astype(np.float32)).dtype == np.float32


def test_target_neighbors_fixed_and_exposed():
    X, y = make_blobs_data(11)
    lmnn = LMNN(n_neighbors=2).fit(X, y)
    np.testing.assert_array_equal(
        lmnn.target_neighbors_, reference.target_neighbors(X, y, 2)
    )


def test_second_pass_chooses_targets_under_the_first_map():
    X, y = make_blobs_data(15, n_samples=60)
    first = LMNN(random_state=0).fit(X, y)
    two = LMNN(n_passes=2, random_state=0).fit(X, y)
    assert two.n_passes_ == 2
    expected = reference.target_neighbors(X @ first.components_.T, y, 3)
    assert not np.array_equal(expected, first.target_neighbors_)
    np.testing.assert_array_equal(
        np.sort(two.target_neighbors_, axis=1), np.sort(expected, axis=1)
    )
    # the second pass starts from the first map and only goes on from there
    assert two.n_iter_ > first.n_iter_
    np.testing.assert_allclose(two.loss_curve_[: first.n_iter_], first.loss_curve_)
    assert two.converged_


def test_passes_stop_when_targets_no_longer_change():
    # on one feature every map keeps the order of distances, so the second
    # pass would find the same target neighbours
    rng = np.random.RandomState(16)
    y = np.arange(40) % 2
    X = (rng.standard_normal(40) + 2.0 * y)[:, None]
    lmnn = LMNN(n_passes=3, random_state=0).fit(X, y)
    assert lmnn.n_passes_ == 1
    assert lmnn.converged_


def test_converged_only_when_every_pass_converged():
    X, y = make_blobs_data(15, n_samples=60)
    outcomes = []

    def minimize(fun, x0, **kwargs):
        result = minimize_lbfgs(fun, x0, tol=0.0, ftol=1e-5, **kwargs)
        if not outcomes:  # the first pass reports a failed line search
            result.converged, result.message = False, "line search failed"
        outcomes.append(result.converged)
        return result

    lmnn = LMNN(n_passes=2, random_state=0)
    targets = reference.target_neighbors(X, y, 3)
    log = IterationLog("LMNN", columns=("active_impostors",))
    _, _, n_passes, converged, message = lmnn._passes(
        X, y, targets, np.eye(4), make_impostors(X, y), log, minimize
    )
    assert outcomes == [False, True] and n_passes == 2
    assert converged is False and message == "line search failed"
    with pytest.warns(ConvergenceWarning, match="line search failed"):
        log.finish(converged, message)


def test_passes_share_max_iter():
    X, y = make_blobs_data(17, n_samples=60)
    with pytest.warns(ConvergenceWarning):
        lmnn = LMNN(n_passes=3, max_iter=4, random_state=0).fit(X, y)
    assert lmnn.n_iter_ <= 4
    assert not lmnn.converged_


def test_small_class_gets_fewer_targets_with_a_warning():
    X, y = make_blobs_data(12, n_samples=30)
    y = y.copy()
    y[y == 2] = 1
    y[:3] = 2  # class 2 has 3 members
    y[3] = 3  # class 3 has one
    with pytest.warns(UserWarning, match="n_neighbors=3 members or fewer"):
        lmnn = LMNN(n_neighbors=3, random_state=0).fit(X, y)
    targets = lmnn.target_neighbors_
    # the two others of class 2, then the point itself in place of a third
    for i in range(3):
        assert sorted(targets[i, :2]) == sorted({0, 1, 2} - {i})
        assert targets[i, 2] == i
    np.testing.assert_array_equal(targets[3], [3, 3, 3])
    large = np.flatnonzero(y < 2)
    np.testing.assert_array_equal(
        targets[large], large[reference.target_neighbors(X[large], y[large], 3)]
    )
    assert np.all(np.isfinite(lmnn.components_))


def test_fit_is_invariant_to_a_shift_of_the_data():
    X, y = make_blobs_data(18, n_samples=60)
    expected = LMNN(random_state=0).fit(X, y).components_
    for shift in (1e6, 1e10):
        shifted = LMNN(random_state=0).fit(X + shift, y).components_
        np.testing.assert_allclose(
            shifted, expected, rtol=1e-4, atol=1e-4 * abs(expected).max()
        )


def test_default_start_with_fewer_samples_than_features():
    rng = np.random.RandomState(19)
    y = np.arange(12) % 2
    X = rng.standard_normal((12, 30)) + 2.0 * y[:, None]
    lmnn = LMNN(n_neighbors=2, random_state=0).fit(X, y)
    assert lmnn.components_.shape == (30, 30)
    assert np.all(np.isfinite(lmnn.components_))
    assert (
        KNeighborsClassifier(1).fit(lmnn.transform(X), y).score(lmnn.transform(X), y)
        == 1.0
    )


def test_float32_fit_computes_in_float32():
    # Fitted on the same values, a float32 fit computed in float64 would
    # return exactly the float64 fit's map rounded to float32.
    X, y = make_blobs_data(20, n_samples=60)
    X32 = X.astype(np.float32)
    fit32 = LMNN(random_state=0, max_iter=30).fit(X32, y).components_
    fit64 = LMNN(random_state=0, max_iter=30).fit(X32.astype(np.float64), y).components_
    assert fit32.dtype == np.float32
    assert not np.array_equal(fit32, fit64.astype(np.float32))
    np.testing.assert_allclose(fit32, fit64, rtol=1e-2, atol=1e-3 * abs(fit64).max())


def test_bad_inputs():
    X, y = make_blobs_data(13)
    with pytest.raises(ValueError, match="only one class"):
        LMNN().fit(X, np.zeros(X.shape[0]))
    for bad in (np.nan, np.inf):
        X_bad = X.copy()
        X_bad[0, 0] = bad
        with pytest.raises(ValueError, match=r"NaN|infinity"):
            LMNN().fit(X_bad, y)
    for n_components in (0, 5):
        with pytest.raises(ValueError, match="n_components"):
            LMNN(n_components=n_components).fit(X, y)
    with pytest.raises(ValueError, match="push_weight"):
        LMNN(push_weight=1.5).fit(X, y)
    with pytest.raises(ValueError, match="loss"):
        LMNN(loss="log").fit(X, y)
    with pytest.raises(ValueError, match="n_passes"):
        LMNN(n_passes=0).fit(X, y)


def test_verbose_goes_to_stdout_only_when_asked(capsys):
    X, y = make_blobs_data(14)
    LMNN().fit(X, y)
    assert capsys.readouterr().out == ""


def test_verbose_notes_each_new_pass(capsys):
    X, y = make_blobs_data(15, n_samples=60)
    lmnn = LMNN(n_passes=2, verbose=1, random_state=0).fit(X, y)
    out = capsys.readouterr().out
    assert "[LMNN] pass 2: target neighbours of " in out
    assert out.count("[LMNN] converged after") == 1  # one report for all passes
    assert lmnn.n_passes_ == 2


@pytest.mark.parametrize("factor", [255.0, 2.0**-10])
def test_fit_does_not_depend_on_the_units_of_the_input(factor):
    # Pixels in 0..255 or in [0, 1]: the same targets, the same path (so
    # the same iterations and impostor searches) and a map scaled by the
    # inverse factor.
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    # noise breaks the exact ties of integer pixels, which rounding decides
    X = X[:400] / 16.0 + 1e-3 * np.random.RandomState(0).standard_normal((400, 64))
    y = y[:400]
    unit = LMNN(random_state=0, max_iter=40).fit(X, y)
    scaled = LMNN(random_state=0, max_iter=40).fit(X * factor, y)
    np.testing.assert_array_equal(scaled.target_neighbors_, unit.target_neighbors_)
    assert scaled.n_iter_ == unit.n_iter_
    assert scaled.n_impostor_searches_ == unit.n_impostor_searches_
    np.testing.assert_allclose(
        scaled.components_ * factor,
        unit.components_,
        rtol=1e-6,
        atol=1e-6 * abs(unit.components_).max(),
    )
    np.testing.assert_allclose(scaled.loss_curve_, unit.loss_curve_, rtol=1e-6)


def test_objective_along_small_steps_equals_reference():
    # Along a path of small and large steps, with candidates refreshed on
    # the way, the loss, the gradient and the active count stay those of
    # the reference.
    X, y = make_blobs_data(22, n_samples=90)
    objective, targets, _ = make_objective(X, y)
    rng = np.random.RandomState(22)
    L = np.eye(4) + 0.1 * rng.standard_normal((4, 4))
    for step in range(8):
        L = L + 10.0 ** -(step % 4 + 1) * rng.standard_normal((4, 4))
        value, grad, extras = objective(L.ravel())
        expected, expected_grad, n_active = reference.loss_grad(L, X, y, targets)
        np.testing.assert_allclose(value, expected, rtol=1e-12)
        np.testing.assert_allclose(
            grad.reshape(L.shape), expected_grad, rtol=1e-9, atol=1e-9
        )
        assert extras["active_impostors"] == n_active


def test_final_check_searches_only_points_no_bound_clears():
    X, y = make_blobs_data(23, n_samples=90)
    objective, targets, impostors = make_objective(X, y)
    L = np.eye(4)
    objective(L.ravel())
    n_searches = impostors.n_searches
    # a tiny move: every point is cleared, nothing is searched
    near = L * (1 + 1e-6)
    Z = _transform(X, near)
    margins = _target_sq(Z, targets).max(axis=1) + 1.0
    assert not impostors.unproven(near, margins).any()
    assert not impostors.missed(Z, margins, near)
    assert impostors.n_searches == n_searches
    # far moves: the answer is that of a full search, whatever is searched
    rng = np.random.RandomState(23)
    for size in (0.05, 0.3, 1.0):
        far = L + size * rng.standard_normal((4, 4))
        Z = _transform(X, far)
        margins = _target_sq(Z, targets).max(axis=1) + 1.0
        assert impostors.missed(Z, margins, far) == impostors.missed(Z, margins)
    # a point the bounds clear has no impostor outside its candidates
    for size in (1e-4, 1e-3):
        far = L * (1 - size) + size * rng.standard_normal((4, 4))
        Z = _transform(X, far)
        margins = _target_sq(Z, targets).max(axis=1) + 1.0
        cleared = ~impostors.unproven(far, margins)
        assert cleared.any()
        rows, cols, _ = find_impostors(Z, y, margins)
        held = set(zip(impostors.rows.tolist(), impostors.cols.tolist(), strict=True))
        for i, l in zip(rows.tolist(), cols.tolist(), strict=True):
            assert not cleared[i] or (i, l) in held


def test_low_quantile_matches_numpy():
    from linmetric._kernels.lmnn import low_quantile

    rng = np.random.RandomState(24)
    for size in (1, 2, 3, 57, 1000, 5001):
        for values in (
            rng.standard_normal(size),
            rng.randint(0, 4, size).astype(np.float64),  # ties
            np.sort(rng.standard_normal(size))[::-1].copy(),  # every value enters
        ):
            before = values.copy()
            ordered = np.sort(values)
            for q in (0.0, 0.01, 0.3, 0.5, 1.0):
                found = low_quantile(values, q)
                np.testing.assert_allclose(found, np.quantile(values, q), rtol=1e-14)
                # the order statistics themselves, exactly
                position = q * (size - 1)
                low = int(position)
                high = min(low + 1, size - 1)
                expected = ordered[low] + (ordered[high] - ordered[low]) * (
                    position - low
                )
                assert found == expected
            np.testing.assert_array_equal(values, before)


def test_each_group_shrink_is_the_quantile_of_its_own_ratios():
    # A small group (its shrink from all the ratios) before a large one: the
    # large group's quantile sees its own ratios only, whatever the small
    # group's computation did.
    from linmetric import _lmnn_impostors

    rng = np.random.RandomState(3)
    n_samples, per_row = 400, 10
    impostors = ImpostorSet.__new__(ImpostorSet)
    impostors.rows = np.repeat(np.arange(n_samples, dtype=np.intp), per_row)
    impostors.ref_sq = rng.uniform(1.0, 2.0, impostors.rows.shape[0])
    impostors.reference_of = (np.arange(n_samples) >= 5).astype(np.intp)
    impostors.references = [None, None]
    impostors.target_ref = rng.uniform(1.0, 2.0, (n_samples, 2))
    target_sq = impostors.target_ref * rng.uniform(0.5, 1.0, (n_samples, 2))
    # the small group's distances grew, the large group's shrank
    grown = impostors.reference_of[impostors.rows] == 0
    pair_sq = impostors.ref_sq * np.where(grown, 5.0, rng.uniform(0.5, 1.0, grown.size))
    target_sq[:5] = impostors.target_ref[:5] * 5.0
    shrink = impostors._shrink(pair_sq, target_sq)
    ratios = np.concatenate(
        [pair_sq / impostors.ref_sq, (target_sq / impostors.target_ref).ravel()]
    )
    groups = np.concatenate(
        [impostors.reference_of[impostors.rows], np.repeat(impostors.reference_of, 2)]
    )
    assert np.count_nonzero(groups == 0) < _lmnn_impostors.MIN_GROUP_SAMPLE
    q = _lmnn_impostors.SHRINK_QUANTILE
    np.testing.assert_allclose(shrink[0], np.quantile(ratios, q), rtol=1e-14)
    np.testing.assert_allclose(
        shrink[1], np.quantile(ratios[groups == 1], q), rtol=1e-14
    )
