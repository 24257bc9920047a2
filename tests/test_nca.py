"""Tests of linmetric._nca, its kernels and its NumPy reference."""

import re
import warnings

import numpy as np
import pytest
from scipy.optimize import check_grad
from sklearn.datasets import load_iris, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.neighbors import KNeighborsClassifier, NeighborhoodComponentsAnalysis
from sklearn.preprocessing import StandardScaler

import linmetric._nca
from linmetric import NCA
from linmetric._kernels.nca import (
    candidate_search,
    reselect_candidates,
    scale_losses,
)
from linmetric._nca import find_candidates, nca_loss_grad, truncated_loss_grad
from linmetric.reference import nca as reference


def make_problem(seed, n_samples=30, n_features=5, n_components=3, n_classes=3):
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n_samples, n_features))
    y = np.arange(n_samples) % n_classes
    rng.shuffle(y)
    X += y[:, None] * 0.5  # classes that overlap, so every p_ij matters
    components = 0.5 * rng.standard_normal((n_components, n_features))
    return X, y.astype(np.intp), components


@pytest.fixture(scope="module")
def wine():
    X, y = load_wine(return_X_y=True)
    return StandardScaler().fit_transform(X), y


# -- objective ---------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_reference_gradient_matches_finite_differences(seed):
    X, y, components = make_problem(seed)
    shape = components.shape

    def loss(flat):
        return reference.loss(flat.reshape(shape), X, y)

    def grad(flat):
        return reference.loss_grad(flat.reshape(shape), X, y)[1].ravel()

    error = check_grad(loss, grad, components.ravel())
    assert error < 1e-6 * max(1.0, np.linalg.norm(grad(components.ravel())))


@pytest.mark.parametrize("seed", range(3))
def test_reference_matches_scikit_learn_up_to_its_sign(seed):
    # scikit-learn returns sign * (sum_i p_i, its gradient); fit uses sign=-1.
    X, y, components = make_problem(seed)
    sk = NeighborhoodComponentsAnalysis()
    sk.n_iter_, sk.verbose = 1, 0
    same_class = y[:, None] == y[None, :]
    sk_loss, sk_grad = sk._loss_grad_lbfgs(components.ravel(), X, same_class, -1.0)
    loss, grad = reference.loss_grad(components, X, y)
    assert loss == pytest.approx(sk_loss, rel=1e-12)
    np.testing.assert_allclose(grad.ravel(), sk_grad, rtol=1e-10, atol=1e-12)


# The loss is float64-exact for float64 data; the gradient's weight products
# run in float32 GEMMs (relative error ~1e-6).
@pytest.mark.parametrize(
    "dtype, loss_rtol, grad_rtol", [(np.float64, 1e-10, 1e-5), (np.float32, 1e-4, 1e-3)]
)
@pytest.mark.parametrize("working_memory", [None, 1e-3])
def test_blocked_loss_grad_equals_reference(
    dtype, loss_rtol, grad_rtol, working_memory
):
    # working_memory=1e-3 MiB gives blocks of a few rows.
    X, y, components = make_problem(0, n_samples=60)
    X = X.astype(dtype)
    loss, grad, p_correct = nca_loss_grad(
        components, X, y, working_memory=working_memory
    )
    ref_loss, ref_grad = reference.loss_grad(components, X.astype(np.float64), y)
    assert loss == pytest.approx(ref_loss, rel=loss_rtol)
    np.testing.assert_allclose(
        grad, ref_grad, rtol=grad_rtol, atol=grad_rtol * np.abs(ref_grad).max()
    )
    assert -p_correct.sum() == pytest.approx(loss)


@pytest.mark.parametrize("seed", range(3))
def test_blocked_gradient_matches_finite_differences(seed):
    X, y, components = make_problem(seed)
    shape = components.shape

    def loss(flat):
        return nca_loss_grad(flat.reshape(shape), X, y)[0]

    def grad(flat):
        return nca_loss_grad(flat.reshape(shape), X, y)[1].ravel()

    # The weights pass through float32 GEMMs: relative precision ~1e-6.
    error = check_grad(loss, grad, components.ravel())
    assert error < 1e-5 * max(1.0, np.linalg.norm(grad(components.ravel())))


def test_softmax_is_stable_when_all_points_are_far():
    # exp(-d) underflows to 0 for every pair: a naive softmax gives 0/0.
    X, y, components = make_problem(1)
    far = components * 100.0
    loss, grad, p_correct = nca_loss_grad(far, X, y)
    ref_loss, ref_grad = reference.loss_grad(far, X, y)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    assert loss == pytest.approx(ref_loss, rel=1e-9)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-5, atol=1e-8)
    assert set(np.unique(p_correct)) <= {0.0, 1.0}


# -- truncated objective -----------------------------------------------------


def test_candidates_are_the_nearest_points():
    X, _, components = make_problem(2, n_samples=50)
    Z = X @ components.T
    sq_dist = ((Z[:, None] - Z[None]) ** 2).sum(axis=2)
    candidates, dropped = find_candidates(components, X, 7, working_memory=1e-3)
    np.fill_diagonal(sq_dist, np.inf)
    expected = np.sort(sq_dist, axis=1)[:, :7]
    kept = np.take_along_axis(sq_dist, candidates, axis=1)
    np.testing.assert_allclose(kept, expected, rtol=1e-5)
    p = reference.soft_neighbors(components, X)
    kept_mass = np.take_along_axis(p, candidates, axis=1).sum(axis=1)
    np.testing.assert_allclose(dropped, 1.0 - kept_mass, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_candidate_search_on_ties_and_duplicates(dtype):
    # squared distances [[0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 0, 4], [1, 1, 4, 0]]
    Z = np.array([[0, 0], [0, 0], [1, 0], [-1, 0]], dtype=dtype)
    index, dropped = candidate_search(Z, 2)
    assert index.tolist() == [[1, 2], [0, 2], [0, 1], [0, 1]]
    np.testing.assert_allclose(dropped[:2], np.exp(-1) / (1 + 2 * np.exp(-1)))
    np.testing.assert_allclose(dropped[2:], np.exp(-3) / (2 + np.exp(-3)))


def test_truncated_objective_with_all_candidates_is_exact():
    X, y, components = make_problem(3)
    candidates, dropped = find_candidates(components, X, X.shape[0] - 1)
    loss, grad, _ = truncated_loss_grad(components, X, y, candidates)
    ref_loss, ref_grad = reference.loss_grad(components, X, y)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dropped, 0.0, atol=1e-12)


@pytest.mark.parametrize("n_candidates", [3, 10])
def test_truncated_loss_is_within_the_dropped_mass_of_the_exact_loss(n_candidates):
    # |p_i(truncated) - p_i(exact)| <= the softmax mass outside i's candidates.
    X, y, components = make_problem(4, n_samples=80)
    candidates, dropped = find_candidates(components, X, n_candidates)
    _, _, p_truncated = truncated_loss_grad(components, X, y, candidates)
    p_exact = nca_loss_grad(components, X, y)[2]
    assert np.all(np.abs(p_truncated - p_exact) <= dropped + 1e-6)
    assert dropped.max() > 1e-3  # the bound is exercised, not vacuous


def test_truncated_gradient_matches_finite_differences():
    X, y, components = make_problem(5, n_samples=40)
    candidates, _ = find_candidates(components, X, 6)
    shape = components.shape

    def loss(flat):
        return truncated_loss_grad(flat.reshape(shape), X, y, candidates)[0]

    def grad(flat):
        return truncated_loss_grad(flat.reshape(shape), X, y, candidates)[1].ravel()

    error = check_grad(loss, grad, components.ravel())
    assert error < 1e-6 * max(1.0, np.linalg.norm(grad(components.ravel())))


# -- estimator ---------------------------------------------------------------


def test_fit_follows_scikit_learn(wine):
    # Same objective, start and L-BFGS-B settings: the same optimum. (An
    # array init is used as given; a named one is rescaled first.)
    X, y = wine
    start = np.linalg.svd(X - X.mean(axis=0), full_matrices=False)[2][:3]
    ours = NCA(n_components=3, init=start).fit(X, y)
    theirs = NeighborhoodComponentsAnalysis(n_components=3, init=start).fit(X, y)
    ref_loss = reference.loss(theirs.components_, X, y)
    assert ours.loss_curve_[-1] == pytest.approx(ref_loss, rel=1e-3)
    np.testing.assert_allclose(
        np.abs(ours.transform(X)), np.abs(theirs.transform(X)), atol=0.05 * X.std()
    )


def test_fit_improves_nearest_neighbours():
    X, y = load_iris(return_X_y=True)
    nca = NCA(n_components=2, init="random", random_state=0, max_iter=100).fit(X, y)
    assert nca.loss_curve_[-1] < nca.loss_curve_[0]
    assert nca.history_["expected_accuracy"][-1] > 0.95
    knn = KNeighborsClassifier(3).fit(nca.transform(X), y)
    assert knn.score(nca.transform(X), y) > 0.95


def test_driver_attributes_callback_and_verbose(wine, capsys):
    X, y = wine
    calls = []

    def callback(components, n_iter):
        calls.append((components.shape, n_iter))

    nca = NCA(n_components=2, max_iter=200, callback=callback, verbose=1)
    nca.fit(X, y)
    assert nca.solver_ == "exact"
    assert nca.n_iter_ == len(nca.loss_curve_) == len(calls) >= 2
    assert calls == [((2, X.shape[1]), i + 1) for i in range(nca.n_iter_)]
    assert set(nca.history_) == {"loss", "expected_accuracy", "seconds"}
    np.testing.assert_allclose(
        nca.history_["expected_accuracy"], -nca.loss_curve_ / X.shape[0]
    )
    out = capsys.readouterr().out
    assert re.search(r"\[NCA\] +Iteration +Loss +Expected accuracy", out)
    assert len(re.findall(r"^\[NCA\] +\d+ ", out, flags=re.M)) == nca.n_iter_
    assert "converged after" in out


@pytest.mark.parametrize("solver", ["exact", "truncated"])
@pytest.mark.parametrize("verbose", [0, 1])
def test_convergence_warning_whenever_max_iter_is_reached(wine, solver, verbose):
    X, y = wine
    nca = NCA(solver=solver, max_iter=3, n_candidates=5, verbose=verbose)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "NCA's truncated objective", UserWarning)
        with pytest.warns(ConvergenceWarning, match="NCA did not converge"):
            nca.fit(X, y)
    assert nca.n_iter_ == 3


def test_truncated_solver_fit(wine):
    X, y = wine
    nca = NCA(
        n_components=3,
        solver="truncated",
        n_candidates=10,
        refresh_every=5,
        max_iter=100,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        nca.fit(X, y)
    assert nca.solver_ == "truncated"
    history = nca.history_
    assert set(history) == {"loss", "expected_accuracy", "dropped_mass", "seconds"}
    assert nca.n_iter_ == len(nca.loss_curve_)
    dropped = history["dropped_mass"]
    assert np.all((dropped >= 0) & (dropped <= 1)) and dropped[-1] < 0.5
    # The exact objective at the result: its attribute, and the largest mass
    # left out of a candidate set there, over all points.
    X_centered = X - X.mean(axis=0)
    assert nca.exact_loss_ == pytest.approx(
        reference.loss(nca.components_, X_centered, y), rel=1e-5
    )
    p = reference.soft_neighbors(nca.components_, X_centered)
    kept = np.sort(p, axis=1)[:, ::-1][:, :10].sum(axis=1)
    assert nca.dropped_mass_ == pytest.approx((1.0 - kept).max(), abs=1e-5)
    assert nca.exact_loss_ - nca.loss_curve_[-1] <= 1e-2 * abs(nca.exact_loss_)
    # The exact objective at the truncated optimum is close to the exact fit's.
    exact = NCA(n_components=3, random_state=0).fit(X, y)
    truncated_exact_loss = reference.loss(nca.components_, X, y)
    assert truncated_exact_loss < reference.loss(np.eye(3, X.shape[1]), X, y)
    assert truncated_exact_loss == pytest.approx(exact.loss_curve_[-1], rel=0.05)


def test_truncated_solver_with_every_candidate_reaches_the_exact_optimum(wine):
    X, y = wine
    exact = NCA(n_components=2, random_state=0).fit(X, y)
    truncated = NCA(
        n_components=2,
        solver="truncated",
        n_candidates=X.shape[0],
        refresh_every=1000,
        random_state=0,
    ).fit(X, y)
    # The same iterates up to rounding, which may end either run an
    # iteration or two earlier.
    n_common = min(truncated.n_iter_, exact.n_iter_)
    assert n_common >= 5
    np.testing.assert_allclose(
        truncated.loss_curve_[:n_common], exact.loss_curve_[:n_common], rtol=1e-6
    )
    assert truncated.exact_loss_ == pytest.approx(exact.exact_loss_, rel=1e-4)
    assert truncated.dropped_mass_ == pytest.approx(0.0, abs=1e-12)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_auto_solver_switches_on_the_number_of_samples(wine, monkeypatch):
    X, y = wine
    assert NCA(max_iter=2).fit(X, y).solver_ == "exact"
    monkeypatch.setattr(linmetric._nca, "AUTO_EXACT_MAX_SAMPLES", X.shape[0] - 1)
    assert NCA(max_iter=2).fit(X, y).solver_ == "truncated"


def test_float32_is_kept(wine):
    X, y = wine
    nca = NCA(n_components=2, random_state=0).fit(X.astype(np.float32), y)
    assert nca.components_.dtype == np.float32
    assert nca.transform(X.astype(np.float32)).dtype == np.float32
    reference_fit = NCA(n_components=2, random_state=0).fit(X, y)
    assert nca.loss_curve_[-1] == pytest.approx(reference_fit.loss_curve_[-1], rel=1e-2)


def test_working_memory_does_not_change_the_result(wine):
    X, y = wine
    small = NCA(n_components=2, random_state=0, working_memory=0.01).fit(X, y)
    default = NCA(n_components=2, random_state=0).fit(X, y)
    np.testing.assert_allclose(small.components_, default.components_, rtol=1e-5)


def test_singleton_class_is_allowed_and_never_correct():
    X, y, _ = make_problem(6, n_samples=31)
    y[0] = 7  # a class of one sample
    nca = NCA(n_components=2, max_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        nca.fit(X, y)
    p_correct = nca_loss_grad(nca.components_, X, np.unique(y, return_inverse=True)[1])[
        2
    ]
    assert p_correct[0] == 0.0


@pytest.mark.parametrize(
    "X, y, message",
    [
        (np.ones((4, 2)), [0, 0, 0, 0], "only one class"),
        (np.eye(3), [0, 1, 2], "single sample"),
        (np.array([[0.0, np.nan], [1, 2], [3, 4]]), [0, 0, 1], "NaN"),
        (np.array([[0.0, np.inf], [1, 2], [3, 4]]), [0, 0, 1], "infinity"),
    ],
)
def test_bad_input_raises_clear_errors(X, y, message):
    with pytest.raises(ValueError, match=message):
        NCA().fit(X, y)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"solver": "sgd"}, "'solver' parameter"),
        ({"max_iter": 0}, "'max_iter' parameter"),
        ({"n_candidates": 0}, "'n_candidates' parameter"),
        ({"working_memory": -1}, "'working_memory' parameter"),
        ({"init": "bogus"}, "'init' parameter"),
    ],
)
def test_bad_parameters_raise(params, message):
    X, y, _ = make_problem(0)
    with pytest.raises(ValueError, match=message):
        NCA(**params).fit(X, y)


def test_init_shape_is_checked():
    X, y, _ = make_problem(0)
    with pytest.raises(ValueError, match="init has shape"):
        NCA(n_components=2, init=np.eye(3)).fit(X, y)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reselect_candidates_picks_the_nearest_of_each_pool(dtype):
    rng = np.random.RandomState(7)
    Z = rng.standard_normal((40, 6)).astype(dtype)
    pool = np.array(
        [rng.permutation(np.delete(np.arange(40), i))[:12] for i in range(40)]
    )
    out = np.empty((40, 4), dtype=np.intp)
    reselect_candidates(Z, pool, out)
    Z64 = Z.astype(np.float64)
    for i in range(40):
        sq_dist = ((Z64[pool[i]] - Z64[i]) ** 2).sum(axis=1)
        assert (
            out[i].tolist() == pool[i][np.argsort(sq_dist, kind="stable")[:4]].tolist()
        )


def test_truncated_stages_with_every_candidate_follow_the_exact_objective(wine):
    # Several stages, so candidate sets are re-selected from the pool (here
    # the pool and the sets both hold every other point).
    X, y = wine
    nca = NCA(
        n_components=2,
        solver="truncated",
        n_candidates=X.shape[0],
        refresh_every=3,
        max_iter=12,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        nca.fit(X, y)
    assert nca.n_iter_ > 3
    X_centered = X - X.mean(axis=0)
    assert nca.loss_curve_[-1] == pytest.approx(
        reference.loss(nca.components_, X_centered, y), rel=1e-9
    )


@pytest.mark.parametrize("solver", ["exact", "truncated"])
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_float32_fit_computes_in_float32(solver):
    # Fitted on the same values, a float32 fit computed in float64 would
    # return exactly the float64 fit's map rounded to float32.
    rng = np.random.RandomState(20)
    y = np.arange(60) % 3
    X32 = (rng.standard_normal((60, 4)) + y[:, None]).astype(np.float32)
    params = {"random_state": 0, "max_iter": 3, "solver": solver, "n_candidates": 20}
    fit32 = NCA(**params).fit(X32, y).components_
    fit64 = NCA(**params).fit(X32.astype(np.float64), y).components_
    assert fit32.dtype == np.float32
    assert not np.array_equal(fit32, fit64.astype(np.float32))
    np.testing.assert_allclose(fit32, fit64, rtol=1e-2, atol=1e-3 * abs(fit64).max())


# -- scale of the start ------------------------------------------------------


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_scale_losses_equal_the_reference_at_every_scale(dtype, rtol):
    X, y, components = make_problem(3, n_samples=40)
    Z = (X @ components.T).astype(dtype)
    rows = np.array([0, 5, 17, 39], dtype=np.intp)
    scales = np.array([1e-3, 0.1, 1.0, 7.0, 1e3])
    loss = scale_losses(Z, y, rows, scales, working_memory=1e-3)
    for t, value in zip(scales, loss, strict=True):
        p = reference.soft_neighbors(np.sqrt(t) * np.eye(3), Z.astype(np.float64))
        expected = -(p[rows] * (y[rows, None] == y[None, :])).sum()
        assert value == pytest.approx(expected, rel=rtol)


def test_start_scale_does_not_depend_on_the_scale_of_the_map():
    X, y, components = make_problem(4, n_samples=50)
    rng = np.random.RandomState(0)
    scale = linmetric._nca._best_scale(X, y, components, rng, None)
    assert 0 < scale < np.inf
    for factor in (1e-3, 1e3):
        scaled = linmetric._nca._best_scale(X, y, factor * components, rng, None)
        assert scaled * factor == pytest.approx(scale, rel=1e-9)


@pytest.mark.parametrize("solver", ["exact", "truncated"])
def test_units_of_the_features_do_not_change_the_result(wine, solver):
    # Pixel values left in 0..255 used to saturate the softmax: no gradient.
    X, y = wine
    params = {"n_components": 3, "solver": solver, "n_candidates": 30}
    params["random_state"] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        unit = NCA(**params).fit(X, y)
        raw = NCA(**params).fit(255.0 * X, y)
    assert raw.n_iter_ == unit.n_iter_ > 3
    np.testing.assert_allclose(
        255.0 * raw.components_, unit.components_, rtol=1e-6, atol=1e-8
    )
    knn = KNeighborsClassifier(3)
    np.testing.assert_array_equal(
        knn.fit(raw.transform(255.0 * X), y).predict(raw.transform(255.0 * X)),
        knn.fit(unit.transform(X), y).predict(unit.transform(X)),
    )
    assert unit.exact_loss_ < -0.95 * X.shape[0]


def test_truncated_solver_warns_when_its_candidates_miss_the_exact_loss(wine):
    X, y = wine
    nca = NCA(n_components=2, solver="truncated", n_candidates=2, random_state=0)
    with pytest.warns(UserWarning, match="Increase n_candidates"):
        nca.fit(X, y)
    # With two candidates every softmax here sees its own class only: the
    # truncated loss is at its floor while the exact one is not.
    X_centered = X - X.mean(axis=0)
    assert nca.exact_loss_ == pytest.approx(
        reference.loss(nca.components_, X_centered, y), rel=1e-5
    )
    assert nca.exact_loss_ > -0.9 * X.shape[0] and nca.dropped_mass_ > 0.1


# -- small data: float32 arithmetic above 256 samples ------------------------


def _separated_classes(n_samples=400):
    # four classes 4 apart along one axis: under 2 L most points have
    # 1 - p_i below 1e-6, where float32 sums would lose 1 - p_i
    rng = np.random.RandomState(0)
    y = np.arange(n_samples) % 4
    rng.shuffle(y)
    X = rng.standard_normal((n_samples, 4))
    X[:, 0] += 4.0 * y
    return X - X.mean(axis=0), y.astype(np.intp)


@pytest.mark.parametrize("scale", [1.0, 2.0])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_float32_dense_solver_near_saturation_equals_reference(scale, dtype):
    X, y = _separated_classes()
    components = scale * np.eye(4)[:3]
    loss, grad, p_correct = linmetric._nca.dense_loss_grad(
        components, X.astype(dtype), y
    )
    ref_loss, ref_grad = reference.loss_grad(components, X, y)
    P = reference.soft_neighbors(components, X)
    p_ref = (P * (y[:, None] == y[None, :])).sum(axis=1)
    if scale == 2.0:
        assert np.median(1.0 - p_ref) < 1e-6
    assert loss == pytest.approx(ref_loss, rel=1e-7)
    np.testing.assert_allclose(p_correct, p_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad, ref_grad, atol=2e-5 * abs(ref_grad).max())


def test_float32_dense_gradient_matches_finite_differences():
    X, y = _separated_classes(300)
    rng = np.random.RandomState(1)
    x0 = np.eye(4)[:3] + 0.3 * rng.standard_normal((3, 4))
    grad = linmetric._nca.dense_loss_grad(x0, X, y)[1].ravel()
    # central differences of the float64 loss: the float32 loss varies by
    # about 1e-8 of itself from one map to a near one, too much for them
    step = 1e-3 * np.eye(x0.size)
    flat = x0.ravel()
    numeric = [
        reference.loss((flat + e).reshape(3, 4), X, y)
        - reference.loss((flat - e).reshape(3, 4), X, y)
        for e in step
    ]
    numeric = np.array(numeric) / 2e-3
    np.testing.assert_allclose(grad, numeric, atol=1e-5 * abs(numeric).max())


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_float32_dense_fit_follows_the_float64_one(monkeypatch):
    X, y = _separated_classes(300)
    X += 2.0 * np.random.RandomState(2).standard_normal(X.shape)  # overlap
    # (on this plateau the paths part after about 8 iterations)
    params = {"n_components": 3, "random_state": 0, "max_iter": 6}
    fast = NCA(**params).fit(X, y)
    monkeypatch.setattr(linmetric._nca, "DENSE_FLOAT64_MAX_SAMPLES", 10_000)
    exact = NCA(**params).fit(X, y)
    assert fast.n_iter_ == exact.n_iter_
    np.testing.assert_allclose(fast.loss_curve_, exact.loss_curve_, rtol=1e-6)
    np.testing.assert_allclose(
        fast.components_, exact.components_, atol=1e-4 * abs(exact.components_).max()
    )


# -- small data: NumPy alone -------------------------------------------------


@pytest.mark.parametrize(
    "dtype, loss_rtol, grad_rtol", [(np.float64, 1e-10, 1e-8), (np.float32, 1e-4, 1e-3)]
)
def test_dense_loss_grad_equals_reference(dtype, loss_rtol, grad_rtol):
    X, y, components = make_problem(5, n_samples=60)
    X = X.astype(dtype)
    loss, grad, p_correct = linmetric._nca.dense_loss_grad(components, X, y)
    X64 = X.astype(np.float64)
    ref_loss, ref_grad = reference.loss_grad(components, X64, y)
    assert loss == pytest.approx(ref_loss, rel=loss_rtol)
    np.testing.assert_allclose(
        grad, ref_grad, rtol=grad_rtol, atol=grad_rtol * abs(ref_grad).max()
    )
    assert p_correct.sum() == pytest.approx(-loss)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dense_scale_losses_equal_the_kernel(dtype):
    X, y, components = make_problem(6, n_samples=50)
    Z = (X @ components.T).astype(dtype)
    rows = np.arange(50, dtype=np.intp)
    scales = np.logspace(-2, 3, 6)
    np.testing.assert_allclose(
        linmetric._nca._dense_scale_losses(Z, y, rows, scales),
        scale_losses(Z, y, rows, scales),
        rtol=1e-10 if dtype == np.float64 else 1e-4,
    )


def test_dense_and_blocked_exact_solvers_give_the_same_fit(wine, monkeypatch):
    X, y = wine
    dense = NCA(n_components=3, random_state=0).fit(X, y)
    monkeypatch.setattr(linmetric._nca, "DENSE_MAX_SAMPLES", 0)
    blocked = NCA(n_components=3, random_state=0).fit(X, y)
    assert dense.n_iter_ == blocked.n_iter_
    np.testing.assert_allclose(dense.loss_curve_, blocked.loss_curve_, rtol=1e-6)
    np.testing.assert_allclose(
        dense.components_, blocked.components_, rtol=1e-4, atol=1e-4
    )


def test_small_exact_fit_loads_no_compiled_kernel():
    # Loading numba and its kernels costs about half a second per process,
    # more than a small fit.
    import subprocess
    import sys

    code = (
        "import sys, numpy as np; from linmetric import NCA; "
        "X = np.random.RandomState(0).standard_normal((60, 3)); "
        "NCA(max_iter=5).fit(X, np.arange(60) % 2); "
        "print('numba' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize(
    "dtype, n_samples, loss_rtol, grad_rtol, p_rtol",
    [
        (np.float64, 60, 1e-10, 1e-8, 1e-9),
        # above DENSE_FLOAT64_MAX_SAMPLES distances, exponentials and
        # weights are float32 (the sums float64): each p_i to float32's
        # resolution, their sum (the loss) better
        (np.float64, 300, 1e-8, 1e-5, 1e-5),
        (np.float32, 300, 1e-4, 1e-3, 1e-3),
    ],
)
@pytest.mark.parametrize("working_memory", [None, 0.05])
def test_dense_loss_grad_in_blocks_equals_reference(
    dtype, n_samples, loss_rtol, grad_rtol, p_rtol, working_memory
):
    # working_memory=0.05 MiB gives blocks of a few rows; the labels are
    # shuffled, so the data are sorted by class internally.
    X, y, components = make_problem(7, n_samples=n_samples, n_classes=4)
    X = X.astype(dtype)
    loss, grad, p_correct = linmetric._nca.dense_loss_grad(
        components, X, y, working_memory=working_memory
    )
    ref_loss, ref_grad = reference.loss_grad(components, X.astype(np.float64), y)
    assert loss == pytest.approx(ref_loss, rel=loss_rtol)
    np.testing.assert_allclose(
        grad, ref_grad, rtol=grad_rtol, atol=grad_rtol * abs(ref_grad).max()
    )
    # p_correct in the order of the input
    P = reference.soft_neighbors(components, X.astype(np.float64))
    p_ref = (P * (y[:, None] == y[None, :])).sum(axis=1)
    np.testing.assert_allclose(p_correct, p_ref, rtol=p_rtol, atol=1e-12)


def test_dense_loss_grad_does_not_depend_on_the_number_of_threads(monkeypatch):
    X, y, components = make_problem(8, n_samples=300)
    monkeypatch.setattr(linmetric._nca, "_DENSE_BLOCK_ROWS", 100)
    one = linmetric._nca.dense_loss_grad(components, X, y, working_memory=2.0)
    monkeypatch.setattr(linmetric._nca, "_cpu_count", lambda: 3)
    monkeypatch.setattr(linmetric._nca, "_DENSE_MIN_WORK_PER_THREAD", 1)
    objective = linmetric._nca._DenseLossGrad(
        X[np.argsort(y, kind="stable")], np.sort(y), 3, 2.0
    )
    assert objective.n_threads == 3 and len(objective.starts) == 3
    three = linmetric._nca.dense_loss_grad(components, X, y, working_memory=2.0)
    assert one[0] == three[0]
    np.testing.assert_array_equal(one[1], three[1])
    np.testing.assert_array_equal(one[2], three[2])


def test_dense_softmax_is_stable_when_points_are_far_or_absent():
    # Some rows have their nearest point beyond exp's range (shifted rows),
    # others not; a class code with no sample is allowed.
    X, y, components = make_problem(1, n_samples=40)
    X[:5] *= 30.0
    y = np.where(y == 2, 3, y)
    far = components * 10.0
    loss, grad, _ = linmetric._nca.dense_loss_grad(far, X, y)
    ref_loss, ref_grad = reference.loss_grad(far, X, y)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    assert loss == pytest.approx(ref_loss, rel=1e-9)
    np.testing.assert_allclose(
        grad, ref_grad, rtol=1e-5, atol=1e-8 * abs(ref_grad).max()
    )
