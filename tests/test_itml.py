"""Tests of ITML: the Bregman kernel against the NumPy reference, the estimator."""

import warnings

import numpy as np
import pytest
from scipy.spatial.distance import pdist
from sklearn.base import clone
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import Pipeline

from linmetric import ITML
from linmetric._itml import (
    interleaved_order,
    sample_label_pairs,
    squared_distance_bounds,
)
from linmetric._kernels.bregman import bregman_sweep
from linmetric.reference.itml import bregman_projection, itml


def _random_spd(rng, n_features):
    A = rng.standard_normal((n_features, n_features))
    return A @ A.T + n_features * np.eye(n_features)


def _constraint_problem(seed, n_samples=30, n_features=5, n_pairs=40):
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n_samples, n_features))
    pairs = np.empty((n_pairs, 2), dtype=np.intp)
    pairs[:, 0] = rng.randint(n_samples, size=n_pairs)
    pairs[:, 1] = (pairs[:, 0] + 1 + rng.randint(n_samples - 1, size=n_pairs)) % (
        n_samples
    )
    labels = np.where(rng.random_sample(n_pairs) < 0.5, 1, -1).astype(np.int8)
    sq = ((X[pairs[:, 0]] - X[pairs[:, 1]]) ** 2).sum(axis=1)
    bounds = np.percentile(sq, [30.0, 70.0])
    return X, pairs, labels, bounds


# --- one projection --------------------------------------------------------


@pytest.mark.parametrize("delta", [1, -1])
@pytest.mark.parametrize("gamma", [np.inf, 1.0, 0.1])
def test_projection_enforces_its_constraint(delta, gamma):
    rng = np.random.RandomState(0)
    M = _random_spd(rng, 4)
    v = rng.standard_normal(4)
    p = v @ M @ v
    xi = p / 3 if delta == 1 else 3 * p  # violated either way
    M_new, xi_new, lam_new = bregman_projection(M, v, delta, xi, 0.0, gamma)
    # The new squared distance equals the new target: the constraint holds
    # with equality (and the target did not move for hard constraints).
    assert v @ M_new @ v == pytest.approx(xi_new, rel=1e-12)
    if np.isinf(gamma):
        assert xi_new == xi
    else:  # the slack moved the target toward the current distance
        assert min(xi, p) < xi_new < max(xi, p)
    assert lam_new > 0
    np.testing.assert_allclose(M_new, M_new.T, rtol=1e-13)
    assert np.linalg.eigvalsh(M_new)[0] > 0


@pytest.mark.parametrize("delta", [1, -1])
def test_projection_leaves_a_satisfied_constraint_alone(delta):
    rng = np.random.RandomState(1)
    M = _random_spd(rng, 3)
    v = rng.standard_normal(3)
    p = v @ M @ v
    xi = 2 * p if delta == 1 else p / 2  # satisfied
    M_new, xi_new, lam_new = bregman_projection(M, v, delta, xi, 0.0, 1.0)
    np.testing.assert_array_equal(M_new, M)
    assert (xi_new, lam_new) == (xi, 0.0)


def test_kernel_projection_matches_reference():
    rng = np.random.RandomState(2)
    M = _random_spd(rng, 7)
    diffs = rng.standard_normal((1, 7))
    p = diffs[0] @ M @ diffs[0]
    for delta, xi in [(1, p / 4), (-1, 4 * p)]:
        expected, xi_ref, lam_ref = bregman_projection(M, diffs[0], delta, xi, 0, 0.5)
        metric, slack, duals = M.copy(), np.array([xi]), np.zeros(1)
        n_updates = bregman_sweep(
            metric, diffs, np.array([delta], dtype=np.int8), slack, duals, 0.5
        )
        assert n_updates == 1
        np.testing.assert_allclose(metric, expected, rtol=1e-12, atol=1e-12)
        assert slack[0] == pytest.approx(xi_ref, rel=1e-13)
        assert duals[0] == pytest.approx(lam_ref, rel=1e-13)
        np.testing.assert_array_equal(metric, metric.T)  # exactly symmetric


@pytest.mark.parametrize("n_features", [1, 6, 9])
def test_kernel_sweep_matches_reference_on_sparse_differences(n_features):
    # Pair differences with many exact zeros, as in image data; feature
    # counts that are and are not multiples of the kernel's block of four.
    rng = np.random.RandomState(n_features)
    diffs = rng.standard_normal((25, n_features))
    diffs[rng.random_sample(diffs.shape) < 0.5] = 0.0
    signs = np.where(rng.random_sample(25) < 0.5, 1, -1).astype(np.int8)
    M = _random_spd(rng, n_features)
    sq = np.einsum("ij,jk,ik->i", diffs, M, diffs)
    u, l = np.percentile(sq[sq > 0], [40, 60])
    slack = np.where(signs > 0, u, l)
    metric, duals = M.copy(), np.zeros(25)
    expected, expected_slack = M, slack.copy()
    expected_duals = np.zeros(25)
    for _ in range(3):
        bregman_sweep(metric, diffs, signs, slack, duals, 2.0)
        for c in range(25):
            expected, expected_slack[c], expected_duals[c] = bregman_projection(
                expected, diffs[c], signs[c], expected_slack[c], expected_duals[c], 2.0
            )
    np.testing.assert_allclose(metric, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(slack, expected_slack, rtol=1e-10)
    np.testing.assert_allclose(duals, expected_duals, rtol=1e-9, atol=1e-14)


def test_kernel_skips_pairs_of_identical_points():
    metric = np.eye(3)
    n_updates = bregman_sweep(
        metric, np.zeros((2, 3)), np.array([1, -1], np.int8), np.ones(2), np.zeros(2), 1
    )
    assert n_updates == 0
    np.testing.assert_array_equal(metric, np.eye(3))


# --- whole fits against the reference -----------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("gamma", [1.0, 10.0, np.inf])
def test_fit_matches_reference(seed, gamma):
    X, pairs, labels, bounds = _constraint_problem(seed)
    rng = np.random.RandomState(seed + 10)
    prior = _random_spd(rng, X.shape[1]) / X.shape[1]
    estimator = ITML(gamma=gamma, bounds=bounds, prior=prior, max_iter=300, tol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(X, pairs=pairs, pair_labels=labels)
        M_ref, n_iter_ref, _ = itml(
            X[pairs[:, 0]] - X[pairs[:, 1]],
            labels,
            bounds,
            prior,
            gamma,
            max_iter=300,
            tol=1e-6,
        )
    assert estimator.n_iter_ == n_iter_ref
    np.testing.assert_allclose(
        estimator.get_mahalanobis_matrix(), M_ref, rtol=1e-8, atol=1e-10
    )


@pytest.mark.parametrize("seed", [0, 3])
def test_metric_stays_symmetric_positive_definite(seed):
    X, pairs, labels, bounds = _constraint_problem(seed, n_features=6, n_pairs=80)
    diffs = X[pairs[:, 0]] - X[pairs[:, 1]]
    metric = np.eye(6)
    slack = np.where(labels > 0, bounds[0] / 10, bounds[1] * 10)
    duals = np.zeros(len(labels))
    for _ in range(50):
        bregman_sweep(metric, diffs, labels, slack, duals, np.inf)
        np.testing.assert_array_equal(metric, metric.T)
        assert np.linalg.eigvalsh(metric)[0] > 0
    assert np.all(duals >= 0)


def test_hard_constraints_hold_after_convergence():
    X, pairs, labels, bounds = _constraint_problem(4, n_features=8, n_pairs=20)
    estimator = ITML(gamma=np.inf, bounds=bounds, tol=1e-10, max_iter=5000)
    estimator.fit(X, pairs=pairs, pair_labels=labels)
    sq = estimator.pair_distance(X[pairs]) ** 2
    assert np.all(sq[labels > 0] <= bounds[0] * (1 + 1e-6))
    assert np.all(sq[labels < 0] >= bounds[1] * (1 - 1e-6))


@pytest.mark.parametrize("prior", ["identity", "array"])
def test_no_violated_constraint_keeps_the_prior(prior):
    X, pairs, labels, _ = _constraint_problem(5)
    if prior == "array":
        prior = _random_spd(np.random.RandomState(5), X.shape[1])
        M0 = prior
    else:
        M0 = np.eye(X.shape[1])
    # Every similar pair is closer than u and every dissimilar pair farther
    # than l: nothing to project.
    estimator = ITML(bounds=(1e9, 1e-9), prior=prior).fit(
        X, pairs=pairs, pair_labels=labels
    )
    assert estimator.n_iter_ == 1
    assert estimator.history_["n_updates"][0] == 0
    np.testing.assert_allclose(estimator.get_mahalanobis_matrix(), M0, rtol=1e-12)


# --- constraints and bounds -------------------------------------------------------


def test_label_pairs_are_half_similar_half_dissimilar():
    y = np.repeat([0, 1, 2, 3], [5, 1, 8, 6])
    rows, cols, signs = sample_label_pairs(y, 501, np.random.RandomState(0))
    assert rows.shape == cols.shape == signs.shape == (501,)
    assert np.all(rows != cols)
    np.testing.assert_array_equal(y[rows] == y[cols], signs == 1)
    assert (signs == 1).sum() == 250
    assert not np.any(y[rows[signs == 1]] == 1)  # the singleton class has no pair
    # Every class takes part in dissimilar pairs, on both sides.
    assert set(y[rows[signs == -1]]) == set(y[cols[signs == -1]]) == {0, 1, 2, 3}


def test_label_pairs_without_any_class_of_two():
    y = np.arange(5)
    rows, cols, signs = sample_label_pairs(y, 10, np.random.RandomState(0))
    assert np.all(signs == -1)
    assert np.all(rows != cols)


def test_default_number_of_constraints_is_twenty_c_squared():
    X, y = load_iris(return_X_y=True)
    estimator = ITML(max_iter=1, random_state=0)
    with pytest.warns(ConvergenceWarning):
        estimator.fit(X, y)
    assert estimator.history_["n_updates"][0] <= 20 * 3**2


def test_bounds_are_percentiles_of_squared_prior_distances():
    rng = np.random.RandomState(0)
    X = rng.standard_normal((40, 3))
    X[1] = X[0]  # a duplicate: its zero distance is left out
    prior = _random_spd(rng, 3)
    bounds = squared_distance_bounds(X, prior, np.random.RandomState(0))
    L = np.linalg.cholesky(prior).T
    sq = pdist(X @ L.T, metric="sqeuclidean")
    np.testing.assert_allclose(bounds, np.percentile(sq[sq > 0], [5, 95]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fitted = ITML(prior=prior, max_iter=2).fit(X, np.arange(40) % 2)
    np.testing.assert_allclose(fitted.bounds_, bounds)


def test_bounds_on_large_data_come_from_a_sample():
    rng = np.random.RandomState(0)
    X = rng.standard_normal((300, 2))  # 44,850 pairs: sampled
    bounds = squared_distance_bounds(X, np.eye(2), np.random.RandomState(0))
    expected = np.percentile(pdist(X, "sqeuclidean"), [5, 95])
    np.testing.assert_allclose(bounds, expected, rtol=0.1)


def test_bounds_of_identical_points():
    bounds = squared_distance_bounds(np.ones((4, 2)), np.eye(2), None)
    np.testing.assert_array_equal(bounds, [1.0, 1.0])


# --- the estimator ------------------------------------------------------------------


def test_fit_is_reproducible_and_keeps_float32():
    X, y = load_iris(return_X_y=True)
    first = ITML(random_state=3).fit(X, y)
    second = ITML(random_state=3).fit(X, y)
    np.testing.assert_array_equal(first.components_, second.components_)
    fitted32 = ITML(random_state=3).fit(X.astype(np.float32), y)
    assert fitted32.components_.dtype == np.float32
    assert fitted32.transform(X.astype(np.float32)).dtype == np.float32


def test_learned_metric_pulls_classes_together():
    X, y = load_iris(return_X_y=True)
    estimator = ITML(random_state=0).fit(X, y)
    Z = estimator.transform(X)

    def within_over_between(points):
        sq = pdist(points, "sqeuclidean")
        same = pdist(y[:, None], lambda a, b: a[0] == b[0]).astype(bool)
        return sq[same].mean() / sq[~same].mean()

    assert within_over_between(Z) < 0.7 * within_over_between(X)


def test_fit_pairs_equals_fit_with_index_pairs():
    X, pairs, labels, bounds = _constraint_problem(6)
    by_index = ITML(bounds=bounds).fit(X, pairs=pairs, pair_labels=labels)
    by_points = ITML(bounds=bounds).fit_pairs(X[pairs], labels)
    np.testing.assert_allclose(
        by_points.components_, by_index.components_, rtol=1e-12, atol=1e-12
    )
    assert by_points.n_features_in_ == X.shape[1]


def test_sweeps_interleave_similar_and_dissimilar_pairs():
    # Pairs listed in blocks of one kind are swept interleaved: the fit is
    # the same as on the pairs given already interleaved.
    X, pairs, labels, bounds = _constraint_problem(8)
    blocks = np.argsort(-labels, kind="stable")
    interleaved = blocks[interleaved_order(labels[blocks])]
    assert set(labels[interleaved][: len(labels) // 4].tolist()) == {-1, 1}
    fits = [
        ITML(bounds=bounds, max_iter=5).fit_pairs(X[pairs[order]], labels[order])
        for order in (blocks, interleaved)
    ]
    np.testing.assert_array_equal(fits[0].components_, fits[1].components_)


def test_pairs_through_a_pipeline_with_clone():
    X, pairs, labels, _ = _constraint_problem(7)
    pipe = clone(Pipeline([("itml", ITML(random_state=0))]))
    pipe.fit(X, itml__pairs=pairs, itml__pair_labels=labels)
    direct = ITML(random_state=0).fit(X, pairs=pairs, pair_labels=labels)
    np.testing.assert_allclose(pipe.transform(X), direct.transform(X))


def test_convergence_warning_and_history():
    X, y = load_iris(return_X_y=True)
    estimator = ITML(max_iter=3, tol=0.0, random_state=0)
    with pytest.warns(ConvergenceWarning, match="ITML did not converge"):
        estimator.fit(X, y)
    assert estimator.n_iter_ == 3
    for name in ("loss", "metric_change", "dual_change", "n_updates", "seconds"):
        assert estimator.history_[name].shape == (3,)
    np.testing.assert_array_equal(estimator.loss_curve_, estimator.history_["loss"])
    assert np.all(np.isfinite(estimator.loss_curve_))


def test_verbose_prints_one_row_per_sweep(capsys):
    X, y = load_iris(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ITML(max_iter=2, verbose=1, random_state=0).fit(X, y)
    out = capsys.readouterr().out
    assert out.count("[ITML]") == 2 + 2 + 1  # header, rule, two rows, summary


def test_callback_receives_the_factor_of_m():
    X, y = load_iris(return_X_y=True)
    seen = []

    def callback(components, n_iter):
        seen.append((n_iter, components.T @ components))

    estimator = ITML(max_iter=4, callback=callback, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(X, y)
    assert [n for n, _ in seen] == list(range(1, estimator.n_iter_ + 1))
    np.testing.assert_allclose(
        seen[-1][1], estimator.get_mahalanobis_matrix(), rtol=1e-10, atol=1e-12
    )


@pytest.mark.parametrize("prior", ["covariance", "random"])
def test_string_priors(prior):
    X, y = load_iris(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator = ITML(prior=prior, max_iter=1, random_state=0).fit(X, y)
    M0 = np.linalg.inv(np.cov(X, rowvar=False)) if prior == "covariance" else None
    if M0 is not None:  # the bounds come from squared distances under M0
        expected = squared_distance_bounds(X, M0, np.random.RandomState(0))
        assert estimator.bounds_[1] == pytest.approx(expected[1], rel=0.2)
    assert np.linalg.eigvalsh(estimator.get_mahalanobis_matrix())[0] > 0


# --- bad input ------------------------------------------------------------------


def test_one_class_is_an_error():
    X, _ = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match="only one class"):
        ITML().fit(X, np.zeros(len(X)))


@pytest.mark.parametrize("bad", [0, 2, 0.5])
def test_pair_labels_other_than_plus_minus_one(bad):
    X, pairs, labels, _ = _constraint_problem(8)
    labels = labels.astype(float)
    labels[3] = bad
    with pytest.raises(ValueError, match=r"pair_labels must be \+1"):
        ITML().fit(X, pairs=pairs, pair_labels=labels)
    with pytest.raises(ValueError, match=r"pair_labels must be \+1"):
        ITML().fit_pairs(X[pairs], labels)


def test_pairs_of_the_wrong_shape():
    X, pairs, labels, _ = _constraint_problem(9)
    with pytest.raises(ValueError, match=r"shape \(n_pairs, 2\)"):
        ITML().fit(X, pairs=pairs[:, :1], pair_labels=labels)
    with pytest.raises(ValueError, match=r"use fit_pairs"):
        ITML().fit(X, pairs=X[pairs], pair_labels=labels)
    with pytest.raises(ValueError, match=r"shape \(n_pairs, 2, n_features\)"):
        ITML().fit_pairs(X[pairs][:, :1], labels)
    with pytest.raises(ValueError, match=r"shape \(n_pairs, 2, n_features\)"):
        ITML().fit_pairs(X[pairs[:, 0]], labels)
    with pytest.raises(ValueError, match="one label per pair"):
        ITML().fit(X, pairs=pairs, pair_labels=labels[:-1])
    with pytest.raises(ValueError, match=r"index rows of X, in \[0, 29\]"):
        ITML().fit(X, pairs=pairs + 30, pair_labels=labels)
    with pytest.raises(ValueError, match="integer row indices"):
        ITML().fit(X, pairs=pairs.astype(float), pair_labels=labels)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_input(value):
    X, pairs, labels, _ = _constraint_problem(10)
    y = np.arange(len(X)) % 2
    X_bad = X.copy()
    X_bad[2, 1] = value
    with pytest.raises(ValueError, match=r"NaN|infinity"):
        ITML().fit(X_bad, y)
    with pytest.raises(ValueError, match=r"NaN|infinity"):
        ITML().fit(X_bad, pairs=pairs, pair_labels=labels)
    pair_points = X[pairs]
    pair_points[0, 1, 0] = value
    with pytest.raises(ValueError, match=r"NaN|infinity"):
        ITML().fit_pairs(pair_points, labels)


def test_y_and_pairs_together_or_neither():
    X, pairs, labels, _ = _constraint_problem(11)
    y = np.arange(len(X)) % 2
    with pytest.raises(ValueError, match="not both"):
        ITML().fit(X, y, pairs=pairs, pair_labels=labels)
    with pytest.raises(ValueError, match="requires y to be passed"):
        ITML().fit(X)
    with pytest.raises(ValueError, match="without pairs"):
        ITML().fit(X, y, pair_labels=labels)
    with pytest.raises(ValueError, match="need pair_labels"):
        ITML().fit(X, pairs=pairs)
    with pytest.raises(ValueError, match="needs pair_labels"):
        ITML().fit_pairs(X[pairs], None)


@pytest.mark.parametrize(
    ("prior", "message"),
    [
        (np.diag([1.0, 1.0, -1.0, 1.0]), "prior must be positive definite"),
        (np.diag([1.0, 1.0, 0.0, 1.0]), "prior must be positive definite"),
        (np.triu(np.ones((4, 4))) + 3 * np.eye(4), "prior must be symmetric"),
        (np.eye(3), r"prior must have shape \(4, 4\)"),
        ("euclidean", "The 'prior' parameter of ITML must be"),
    ],
)
def test_bad_prior(prior, message):
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match=message):
        ITML(prior=prior).fit(X, y)


def test_covariance_prior_needs_an_invertible_covariance():
    X, y = load_iris(return_X_y=True)
    X = np.hstack([X, X[:, :1]])  # collinear features
    with pytest.raises(ValueError, match="prior='covariance' needs an invertible"):
        ITML(prior="covariance").fit(X, y)


@pytest.mark.parametrize("bounds", [(1.0,), (0.0, 1.0), (1.0, -2.0), (1, 2, 3)])
def test_bad_bounds(bounds):
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match="bounds must be two positive"):
        ITML(bounds=bounds).fit(X, y)


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"gamma": 0.0}, "gamma"),
        ({"n_constraints": 0}, "n_constraints"),
        ({"max_iter": 0}, "max_iter"),
        ({"tol": -1.0}, "tol"),
    ],
)
def test_bad_parameters(params, name):
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match=f"The '{name}' parameter of ITML"):
        ITML(**params).fit(X, y)


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("outlier", [1e150, 1e160])
def test_pairs_beyond_float64s_squared_range(outlier):
    # One point `outlier` times farther out than the others: up to about
    # 1e150 the squared distances of all pairs fit in float64 and the fit
    # converges, quietly, though M's entries pass 1e154 (its change is
    # measured in units of its largest entry); beyond, a projection can
    # overflow M, which is a clear error instead of NaN reaching SciPy.
    outcomes = []
    for seed in range(10):
        rng = np.random.RandomState(seed)
        X = rng.standard_normal((14, 6))
        X[0] *= outlier
        index = rng.randint(0, 14, size=(26, 2))
        labels = np.where(rng.rand(26) < 0.5, 1, -1)
        labels[:2] = [1, -1]
        try:
            model = ITML(random_state=0).fit_pairs(X[index], labels)
        except ValueError as error:
            assert "overflowed in a Bregman projection" in str(error)
            outcomes.append("error")
            continue
        assert np.all(np.isfinite(model.components_))
        assert model.n_iter_ < model.max_iter
        outcomes.append("fit")
    assert ("error" in outcomes) == (outlier > 1e155)
