import warnings

import numpy as np
import pytest
from scipy.optimize import check_grad
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning

from linmetric import MultiMetricLMNN
from linmetric._kernels.mm_lmnn import bipartite_push_terms
from linmetric._mm_lmnn import (
    BYTES_PER_PAIR,
    _ClassImpostors,
    _margins,
    candidate_loss_grad,
    mm_lmnn_loss_grad,
)
from linmetric.reference import lmnn as lmnn_reference
from linmetric.reference import mm_lmnn as reference

LOSSES = ["squared_hinge", "hinge"]


def make_data(seed, n_samples=36, n_features=3, n_classes=3):
    rng = np.random.RandomState(seed)
    y = np.arange(n_samples) % n_classes
    X = rng.standard_normal((n_samples, n_features))
    X[:, 0] += 0.7 * y  # overlapping classes: many impostors
    return X, y


def random_maps(seed, n_classes=3, n_components=2, n_features=3):
    return np.random.RandomState(seed).standard_normal(
        (n_classes, n_components, n_features)
    )


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_and_gradient_equal_the_reference(loss, seed):
    X, y = make_data(seed)
    targets = reference.target_neighbors(X, y, 3)
    Ls = random_maps(seed)
    value, grad, n_active = mm_lmnn_loss_grad(
        Ls, X, y, targets, push_weight=0.3, loss=loss, working_memory=0.001
    )
    expected, expected_grad, expected_active = reference.loss_grad(
        Ls, X, y, targets, mu=0.3, loss=loss
    )
    np.testing.assert_allclose(value, expected, rtol=1e-10)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-8, atol=1e-8)
    assert n_active == expected_active


def test_float32_loss_is_held_to_the_reference():
    X, y = make_data(3)
    targets = reference.target_neighbors(X, y, 3)
    Ls = random_maps(3)
    value, grad, _ = mm_lmnn_loss_grad(
        Ls, X.astype(np.float32), y, targets, push_weight=0.5, loss="squared_hinge"
    )
    expected, expected_grad, _ = reference.loss_grad(Ls, X, y, targets)
    np.testing.assert_allclose(value, expected, rtol=1e-4)
    np.testing.assert_allclose(
        grad, expected_grad, rtol=1e-3, atol=1e-4 * abs(expected_grad).max()
    )


def test_identical_maps_give_the_single_metric_loss():
    X, y = make_data(4)
    targets = reference.target_neighbors(X, y, 3)
    L = random_maps(4)[0]
    value, grad, _ = mm_lmnn_loss_grad(
        np.repeat(L[None], 3, axis=0), X, y, targets, push_weight=0.5, loss="hinge"
    )
    expected, expected_grad, _ = lmnn_reference.loss_grad(
        L, X, y, targets, loss="hinge"
    )
    np.testing.assert_allclose(value, expected, rtol=1e-10)
    # the single map's gradient is the sum of the class maps' gradients
    np.testing.assert_allclose(grad.sum(axis=0), expected_grad, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_matches_finite_differences(seed):
    X, y = make_data(seed + 10)
    targets = reference.target_neighbors(X, y, 3)
    shape = (3, 2, 3)

    def fun(x):
        return mm_lmnn_loss_grad(
            x.reshape(shape), X, y, targets, push_weight=0.5, loss="squared_hinge"
        )[0]

    def grad(x):
        return mm_lmnn_loss_grad(
            x.reshape(shape), X, y, targets, push_weight=0.5, loss="squared_hinge"
        )[1].ravel()

    x0 = random_maps(seed + 10).ravel()
    error = check_grad(fun, grad, x0, epsilon=1e-7)
    assert error < 1e-5 * max(1.0, np.linalg.norm(grad(x0)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bipartite_push_terms_by_enumeration(dtype):
    rng = np.random.RandomState(5)
    X_rows, X_cols = rng.standard_normal((7, 3)), rng.standard_normal((9, 3))
    L = rng.standard_normal((2, 3))
    target_sq = rng.uniform(0, 3, (7, 2))
    push, C, target_w, n_active = bipartite_push_terms(
        X_rows.astype(dtype),
        (X_rows @ L.T).astype(dtype),
        X_cols.astype(dtype),
        (X_cols @ L.T).astype(dtype),
        target_sq,
        mu=0.5,
        squared=True,
        working_memory=1e-4,  # blocks of one or two rows
    )
    expected_push, expected_C = 0.0, np.zeros((3, 3))
    expected_w = np.zeros((7, 2))
    for i in range(7):
        for l in range(9):
            diff = X_rows[i] - X_cols[l]
            d = ((L @ diff) ** 2).sum()
            z = np.maximum(1.0 + target_sq[i] - d, 0.0)
            expected_push += (z**2).sum()
            expected_w[i] += 0.5 * 2 * z
            expected_C -= 0.5 * (2 * z).sum() * np.outer(diff, diff)
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(push, expected_push, rtol=rtol)
    np.testing.assert_allclose(C, expected_C, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(target_w, expected_w, rtol=rtol, atol=rtol)
    margins = target_sq.max(axis=1) + 1.0
    D = (((X_rows[:, None] - X_cols[None]) @ L.T) ** 2).sum(-1)
    assert n_active == np.count_nonzero(D < margins[:, None])


def test_predict_equals_the_reference_rule():
    X, y = make_data(6, n_samples=60)
    X_test, _ = make_data(7, n_samples=30)
    clf = MultiMetricLMNN(random_state=0, max_iter=20, init="identity").fit(X, y)
    expected = reference.predict(clf.components_, X, y, X_test, 3)
    np.testing.assert_array_equal(clf.predict(X_test), clf.classes_[expected])
    distances, indices = clf.kneighbors(X_test)
    own = clf.components_[y[indices]]  # (n_test, k, n_components, n_features)
    diff = X_test[:, None, :] - X[indices]
    np.testing.assert_allclose(
        distances, np.sqrt((np.einsum("tkpf,tkf->tkp", own, diff) ** 2).sum(-1))
    )
    proba = clf.predict_proba(X_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_fit_lowers_the_loss_of_the_lmnn_start_and_classifies():
    X, y = load_iris(return_X_y=True)
    clf = MultiMetricLMNN(random_state=0).fit(X, y)
    assert clf.converged_
    # the loss over the candidates can rise only when a check adds impostors;
    # at the end it is the loss over all pairs
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    value, _, _ = mm_lmnn_loss_grad(
        clf.components_,
        X,
        y,
        clf.target_neighbors_,
        push_weight=0.5,
        loss="squared_hinge",
    )
    np.testing.assert_allclose(clf.loss_curve_[-1], value, rtol=1e-9)
    assert clf.components_.shape == (3, 4, 4)
    assert clf.score(X, y) > 0.95
    assert clf.history_["active_impostors"].shape == (clf.n_iter_,)


def test_fit_does_not_depend_on_the_units_of_the_input():
    X, y = make_data(8, n_samples=60)
    unit = MultiMetricLMNN(random_state=0, max_iter=15).fit(X, y)
    scaled = MultiMetricLMNN(random_state=0, max_iter=15).fit(X * 255.0, y)
    assert scaled.n_iter_ == unit.n_iter_
    np.testing.assert_allclose(
        scaled.components_ * 255.0, unit.components_, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(scaled.predict(X * 255.0), unit.predict(X))


def test_float32_in_float32_out():
    X, y = make_data(9, n_samples=45)
    clf = MultiMetricLMNN(random_state=0, max_iter=10).fit(X.astype(np.float32), y)
    assert clf.components_.dtype == np.float32
    assert clf.embedding_.dtype == np.float32


def test_string_labels_and_array_init():
    X, y = make_data(10, n_samples=45)
    labels = np.array(["a", "b", "c"])[y]
    start = np.repeat(np.eye(3)[None], 3, axis=0)
    clf = MultiMetricLMNN(init=start, max_iter=5).fit(X, labels)
    assert set(clf.predict(X)) <= {"a", "b", "c"}
    with pytest.raises(ValueError, match="init must have shape"):
        MultiMetricLMNN(init=np.eye(3)).fit(X, labels)


def test_bad_parameters_are_named():
    X, y = make_data(11)
    with pytest.raises(ValueError, match="push_weight"):
        MultiMetricLMNN(push_weight=0.0).fit(X, y)
    with pytest.raises(ValueError, match="only one class"):
        MultiMetricLMNN().fit(X, np.zeros(X.shape[0]))
    with pytest.raises(ValueError, match="n_neighbors"):
        MultiMetricLMNN(n_neighbors=0).fit(X, y)


def _candidates(X, y, targets, Ls, memory=None):
    candidates = _ClassImpostors(X, y, targets, Ls.shape[0], None, memory)
    found = candidates.gather(Ls, _margins(X, y, targets, Ls))
    return candidates, found


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("loss", LOSSES)
def test_candidate_evaluation_equals_all_pairs(dtype, loss):
    X, y = make_data(12, n_samples=60)
    X = X.astype(dtype)
    targets = reference.target_neighbors(X, y, 3)
    Ls = random_maps(12)
    candidates, found = _candidates(X, y, targets, Ls)
    assert found
    # fewer candidates than pairs of different classes: the set is sparse
    assert candidates.rows.shape[0] < np.count_nonzero(y[:, None] != y[None, :])
    value, grad, n_active = candidate_loss_grad(
        Ls, X, candidates, push_weight=0.4, loss=loss
    )
    expected, expected_grad, expected_active = mm_lmnn_loss_grad(
        Ls, X, y, targets, push_weight=0.4, loss=loss
    )
    rtol = 1e-5 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(value, expected, rtol=rtol)
    np.testing.assert_allclose(
        grad, expected_grad, rtol=rtol, atol=rtol * abs(expected_grad).max()
    )
    assert n_active == expected_active
    assert not candidates.missed(Ls, _margins(X, y, targets, Ls))


def test_candidate_gradient_matches_finite_differences():
    X, y = make_data(13)
    targets = reference.target_neighbors(X, y, 3)
    Ls = random_maps(13)
    candidates, _ = _candidates(X, y, targets, Ls)
    shape = Ls.shape

    def fun(x):
        return candidate_loss_grad(
            x.reshape(shape), X, candidates, push_weight=0.5, loss="squared_hinge"
        )[0]

    def grad(x):
        return candidate_loss_grad(
            x.reshape(shape), X, candidates, push_weight=0.5, loss="squared_hinge"
        )[1].ravel()

    error = check_grad(fun, grad, Ls.ravel(), epsilon=1e-7)
    assert error < 1e-5 * max(1.0, np.linalg.norm(grad(Ls.ravel())))


def test_search_finds_every_impostor_of_every_class_metric():
    X, y = make_data(14, n_samples=45)
    rng = np.random.RandomState(14)
    Ls = random_maps(14)
    radii = rng.uniform(0.5, 4.0, X.shape[0])
    candidates = _ClassImpostors(
        X, y, reference.target_neighbors(X, y, 3), 3, None, None
    )
    rows, cols = candidates.search(Ls, radii)
    # D[a, b] = ||L_{y_b} (x_a - x_b)||^2, by enumeration
    D = np.array(
        [
            [((Ls[y[b]] @ (X[a] - X[b])) ** 2).sum() for b in range(45)]
            for a in range(45)
        ]
    )
    expected = (D < radii[:, None]) & (y[:, None] != y[None, :])
    found = np.zeros_like(expected)
    found[rows, cols] = True
    np.testing.assert_array_equal(found, expected)
    # a set gathered at other maps misses impostors of these
    stale, _ = _candidates(X, y, candidates.targets, Ls * 3.0)
    assert stale.missed(Ls, radii)


def test_active_set_fit_equals_the_streamed_fit():
    X, y = make_data(15, n_samples=60)
    # both converge tightly: their paths differ (a trial step of the active
    # fit can leave its candidates; the check then searches again), their
    # minimum does not
    params = dict(init="identity", random_state=0, max_iter=100, tol=1e-9)
    active = MultiMetricLMNN(**params).fit(X, y)
    # a budget below one pair: every evaluation visits all pairs in blocks
    streamed = MultiMetricLMNN(impostor_memory=1e-6, **params).fit(X, y)
    assert active.n_streamed_evaluations_ == 0
    assert streamed.n_streamed_evaluations_ > 0
    assert active.n_impostor_searches_ >= 2  # gathered, then checked
    assert active.converged_ and streamed.converged_
    np.testing.assert_allclose(
        active.loss_curve_[-1], streamed.loss_curve_[-1], rtol=1e-9
    )
    np.testing.assert_allclose(active.components_, streamed.components_, atol=1e-3)


def test_candidates_stay_within_the_budget():
    X, y = make_data(16, n_samples=90)
    targets = reference.target_neighbors(X, y, 3)
    Ls = random_maps(16)
    full, _ = _candidates(X, y, targets, Ls)
    n_pairs = full.rows.shape[0]
    budget = (n_pairs // 2) * BYTES_PER_PAIR / 2**20
    bounded, found = _candidates(X, y, targets, Ls, memory=budget)
    # the pairs at the narrow margin fit, or the set is empty and streamed
    if found:
        assert bounded.rows.shape[0] <= n_pairs // 2
    else:
        assert bounded.rows is None


def _fitted(X, y, seed, **params):
    params = {"n_neighbors": 2, "max_iter": 2, "random_state": seed, **params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return MultiMetricLMNN(**params).fit(X, y)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("loss", LOSSES)
def test_energies_equal_the_reference(dtype, loss):
    X, y = make_data(0, n_samples=30)
    X = X.astype(dtype)
    X_test, _ = make_data(1, n_samples=9)
    clf = _fitted(X, y, 0, loss=loss, push_weight=0.3)
    # random maps: many active terms of every kind
    clf.components_ = random_maps(3).astype(dtype)
    expected = reference.energies(
        clf.components_,
        X,
        y,
        clf.target_neighbors_,
        X_test,
        mu=0.3,
        loss=loss,
    )
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    # a working memory of one row per block, to cross block edges
    clf.set_params(working_memory=1e-4)
    got = clf.energies(X_test.astype(dtype))
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol)
    clf.set_params(rule="energy")
    np.testing.assert_array_equal(clf.predict(X_test), np.argmin(expected, axis=1))


def test_equal_maps_give_the_single_metric_energy_rule():
    from linmetric import LMNN, EnergyClassifier

    X, y = make_data(2, n_samples=45)
    X_test, _ = make_data(3, n_samples=20)
    lmnn = LMNN(n_neighbors=3, max_iter=5, random_state=0).fit(X, y)
    single = EnergyClassifier(lmnn).fit(X, y)
    clf = _fitted(X, y, 0, n_neighbors=3, rule="energy")
    clf.components_ = np.repeat(lmnn.components_[None], 3, axis=0)
    np.testing.assert_array_equal(clf.target_neighbors_, single.target_neighbors_)
    np.testing.assert_allclose(
        clf.energies(X_test), single.energies(X_test), rtol=1e-9, atol=1e-9
    )
    np.testing.assert_array_equal(clf.predict(X_test), single.predict(X_test))


def test_energy_rule_with_small_classes():
    X, y = make_data(4, n_samples=30)
    y = y.copy()
    y[[0, 3]] = 3  # a class of two points, below n_neighbors=3
    X[[0, 3]] += 6.0
    X_test, _ = make_data(5, n_samples=8)
    with pytest.warns(UserWarning, match="fewer target neighbours"):
        clf = _fitted(X, y, 0, n_neighbors=3, rule="energy")
    expected = reference.energies(
        clf.components_, X, y, clf.target_neighbors_, X_test, mu=0.5
    )
    np.testing.assert_allclose(clf.energies(X_test), expected, rtol=1e-9)
    # near the small class's points, that class wins
    assert clf.predict(X[[0]])[0] == 3
    assert np.all(np.isfinite(clf.energies(1e6 * X_test)))


def test_energy_rule_interface_and_bad_input():
    X, y = make_data(6, n_samples=30)
    clf = _fitted(X, y, 0, rule="energy")
    assert not hasattr(clf, "predict_proba")
    assert 0.0 <= clf.score(X, y) <= 1.0
    assert hasattr(clf.set_params(rule="knn"), "predict_proba")
    with pytest.raises(ValueError, match="features"):
        clf.energies(X[:, :2])
    with pytest.raises(ValueError, match="rule"):
        clf.set_params(rule="vote").predict(X)
    with pytest.raises(ValueError, match="rule"):
        MultiMetricLMNN(rule="vote").fit(X, y)
    with pytest.raises(ValueError, match="too far"):
        clf.set_params(rule="energy").predict(np.full((1, 3), 1e200))


def test_energy_rule_passes_the_estimator_checks():
    from sklearn.utils.estimator_checks import check_estimator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_estimator(MultiMetricLMNN(rule="energy"))
