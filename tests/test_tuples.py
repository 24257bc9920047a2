"""Tests of the tuple estimators: pairs, triplets and quadruplets as samples."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.utils import estimator_checks

from linmetric import (
    GMML,
    ITML,
    KISSME,
    LSML,
    MMC,
    SCML,
    SDML,
    MetricLearner,
    PairsClassifier,
    QuadrupletsClassifier,
    TripletsClassifier,
    Whitening,
)
from linmetric._itml import sample_label_pairs
from linmetric._tuples import best_threshold


class FeatureWeights(MetricLearner):
    """A stand-in learner from triplets or quadruplets: a diagonal metric.

    Each feature is weighted by the inverse mean squared difference of the
    first pair of each tuple, raised to ``power``.
    """

    def __init__(self, power=1.0):
        self.power = power

    def _fit_first_pairs(self, tuples, weights=None):
        tuples = np.asarray(tuples, dtype=float)
        self.n_features_in_ = tuples.shape[2]
        spread = np.average((tuples[:, 0] - tuples[:, 1]) ** 2, axis=0, weights=weights)
        self.components_ = np.diag((spread + 1e-3) ** (-self.power / 2))
        self.weights_ = weights
        return self

    def fit(self, X, y=None):
        raise NotImplementedError

    def fit_triplets(self, triplets):
        return self._fit_first_pairs(triplets)

    def fit_quadruplets(self, quadruplets, weights=None):
        return self._fit_first_pairs(quadruplets, weights)


@pytest.fixture(scope="module")
def index_pairs(iris):
    """Labelled index pairs into iris: 150 to train, 150 held out."""
    _, y = iris
    rows, cols, labels = sample_label_pairs(y, 300, np.random.RandomState(0))
    return np.stack([rows, cols], axis=1), labels.astype(int)


def _triplets(y, n, seed):
    """Index triplets (a, b, c) with b in a's class and c in another."""
    rng = np.random.RandomState(seed)
    a = rng.randint(y.shape[0], size=n)
    b = np.array(
        [rng.choice(np.flatnonzero((y == y[i]) & (np.arange(y.size) != i))) for i in a]
    )
    c = np.array([rng.choice(np.flatnonzero(y != y[i])) for i in a])
    return np.stack([a, b, c], axis=1)


# --- pairs ----------------------------------------------------------------------


@pytest.mark.parametrize("learner", [ITML(random_state=0), MMC(), MMC(diagonal=True)])
def test_pairs_in_cross_val_score(learner, iris, index_pairs):
    X, _ = iris
    pairs, labels = index_pairs
    points = X[pairs]
    scores = cross_val_score(PairsClassifier(learner), points, labels, cv=3)
    assert scores.mean() > 0.85
    # The index form gives the same folds, fits and scores.
    indexed = cross_val_score(
        PairsClassifier(learner, preprocessor=X), pairs, labels, cv=3
    )
    np.testing.assert_allclose(indexed, scores)
    auc = cross_val_score(
        PairsClassifier(learner), points, labels, cv=3, scoring="roc_auc"
    )
    assert auc.mean() > 0.9


def test_index_and_point_forms_agree(iris, index_pairs):
    X, _ = iris
    pairs, labels = index_pairs
    by_points = PairsClassifier(MMC()).fit(X[pairs], labels)
    by_index = PairsClassifier(MMC(), preprocessor=X).fit(pairs, labels)
    by_callable = PairsClassifier(MMC(), preprocessor=X.__getitem__).fit(pairs, labels)
    expected = by_points.decision_function(X[pairs])
    for model in (by_index, by_callable):
        np.testing.assert_allclose(model.decision_function(pairs), expected)
        # Points are accepted too when a preprocessor is set.
        np.testing.assert_allclose(model.decision_function(X[pairs]), expected)
        assert model.threshold_ == by_points.threshold_
    np.testing.assert_allclose(expected, -by_points.learner_.pair_distance(X[pairs]))


def test_grid_search_over_the_learner(iris, index_pairs):
    X, _ = iris
    pairs, labels = index_pairs
    search = GridSearchCV(
        PairsClassifier(MMC(), preprocessor=X),
        {"learner__diagonal": [False, True], "threshold": ["auto", -1.0]},
        cv=3,
    ).fit(pairs, labels)
    assert set(search.best_params_) == {"learner__diagonal", "threshold"}
    assert search.best_score_ > 0.85
    assert (
        search.best_estimator_.learner_.diagonal
        == search.best_params_["learner__diagonal"]
    )


def test_learner_is_cloned_and_metric_api_delegated(iris, index_pairs):
    X, _ = iris
    pairs, labels = index_pairs
    learner = MMC()
    model = PairsClassifier(learner, preprocessor=X).fit(pairs, labels)
    assert not hasattr(learner, "components_")
    assert model.learner_ is not learner
    L = model.learner_.components_
    np.testing.assert_array_equal(model.components_, L)
    np.testing.assert_allclose(model.transform(X[:5]), X[:5] @ L.T)
    np.testing.assert_allclose(model.get_mahalanobis_matrix(), L.T @ L)
    np.testing.assert_allclose(
        model.pair_distance(pairs[:5]),
        np.linalg.norm((X[pairs[:5, 0]] - X[pairs[:5, 1]]) @ L.T, axis=1),
    )
    np.testing.assert_allclose(
        model.pair_score(X[pairs[:5]]), -model.pair_distance(pairs[:5])
    )
    metric = model.get_metric()
    assert metric(X[0], X[1]) == pytest.approx(np.linalg.norm(L @ (X[0] - X[1])))


def test_clone_params_and_pickle(iris, index_pairs):
    X, _ = iris
    pairs, labels = index_pairs
    model = PairsClassifier(MMC(max_iter=50), preprocessor=X, threshold=-0.5)
    params = model.get_params()
    assert params["learner__max_iter"] == 50 and params["threshold"] == -0.5
    model.set_params(learner__diagonal=True, threshold="auto")
    assert model.learner.diagonal is True
    copy = clone(model)
    assert copy.learner is not model.learner and copy.learner.diagonal is True
    model.fit(pairs, labels)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict(pairs), model.predict(pairs))
    assert restored.threshold_ == model.threshold_


# scikit-learn's estimator checks feed 2-D samples, which these estimators do
# not take (their samples are tuples), so parametrize_with_checks skips them;
# the checks that need no data apply and run here.
_DATA_FREE_CHECKS = [
    "check_estimator_cloneable",
    "check_estimator_repr",
    "check_no_attributes_set_in_init",
    "check_get_params_invariance",
    "check_set_params",
    "check_do_not_raise_errors_in_init_or_set_params",
    "check_valid_tag_types",
]


@pytest.mark.parametrize("check_name", _DATA_FREE_CHECKS)
@pytest.mark.parametrize(
    "estimator",
    [
        PairsClassifier(ITML()),
        TripletsClassifier(FeatureWeights()),
        QuadrupletsClassifier(FeatureWeights()),
    ],
    ids=["pairs", "triplets", "quadruplets"],
)
def test_sklearn_checks_that_apply(estimator, check_name):
    check = getattr(estimator_checks, check_name, None)
    if check is None:
        pytest.skip(f"{check_name} is not in this scikit-learn")
    check(type(estimator).__name__, estimator)


@pytest.mark.parametrize(
    ("estimator", "tuples"),
    [
        (PairsClassifier(MMC()), np.zeros((2, 2, 3))),
        (TripletsClassifier(FeatureWeights()), np.zeros((2, 3, 3))),
        (QuadrupletsClassifier(FeatureWeights()), np.zeros((2, 4, 3))),
    ],
)
def test_not_fitted_is_a_clear_error(estimator, tuples):
    for method in ("decision_function", "predict", "transform"):
        with pytest.raises(NotFittedError):
            getattr(estimator, method)(tuples)
    with pytest.raises(NotFittedError):
        estimator.components_  # noqa: B018


# --- threshold and calibration ----------------------------------------------------


def _rates(scores, labels, threshold):
    predicted = scores >= threshold
    positive = labels > 0
    tp = np.sum(predicted & positive)
    fp = np.sum(predicted & ~positive)
    fn = np.sum(~predicted & positive)
    tn = np.sum(~predicted & ~positive)
    return tp, fp, fn, tn


def _strategy_value(scores, labels, threshold, strategy, min_rate, beta):
    tp, fp, fn, tn = _rates(scores, labels, threshold)
    tpr, tnr = tp / (tp + fn), tn / (tn + fp)
    if strategy == "accuracy":
        return (tp + tn) / labels.size
    if strategy == "f_beta":
        b2 = beta**2
        denominator = (1 + b2) * tp + b2 * fn + fp
        return (1 + b2) * tp / denominator if denominator else 0.0
    if strategy == "max_tpr":
        return tpr if tnr >= min_rate else -1.0
    return tnr if tpr >= min_rate else -1.0


@pytest.mark.parametrize(
    ("strategy", "min_rate", "beta"),
    [
        ("accuracy", None, 1.0),
        ("f_beta", None, 1.0),
        ("f_beta", None, 0.3),
        ("f_beta", None, 3.0),
        ("max_tpr", 0.9, 1.0),
        ("max_tnr", 0.95, 1.0),
        ("max_tpr", 0.0, 1.0),
        ("max_tnr", 1.0, 1.0),
    ],
)
def test_calibration_is_best_by_brute_force(
    strategy, min_rate, beta, iris, index_pairs
):
    X, _ = iris
    pairs, labels = index_pairs
    model = PairsClassifier(MMC(diagonal=True), preprocessor=X)
    model.fit(pairs[:150], labels[:150])
    held_out, held_labels = pairs[150:], labels[150:]
    model.calibrate_threshold(
        held_out, held_labels, strategy=strategy, min_rate=min_rate, beta=beta
    )
    scores = model.decision_function(held_out)
    candidates = np.concatenate([scores, [np.inf, -np.inf]])
    best = max(
        _strategy_value(scores, held_labels, t, strategy, min_rate, beta)
        for t in candidates
    )
    got = _strategy_value(
        scores, held_labels, model.threshold_, strategy, min_rate, beta
    )
    assert got == pytest.approx(best)
    assert got >= 0  # the rate constraint holds
    predicted = model.predict(held_out)
    np.testing.assert_array_equal(predicted > 0, scores >= model.threshold_)
    if strategy == "accuracy":
        assert model.score(held_out, held_labels) == pytest.approx(best)


def test_threshold_lies_between_scores():
    scores = np.array([-0.1, -0.5, -0.5, -2.0])
    labels = np.array([1, 1, -1, -1])
    # Cuts: none similar, {-0.1}, {-0.1, -0.5, -0.5}, all; ties stay together.
    assert best_threshold(scores, labels, "accuracy") == pytest.approx(-0.3)
    assert best_threshold(scores, labels, "max_tpr", 1.0) == pytest.approx(-0.3)
    assert best_threshold(scores[:2], np.array([-1, 1]), "max_tpr", 1.0) == np.inf
    assert best_threshold(scores, labels, "max_tnr", 1.0) == pytest.approx(-1.25)
    assert (
        best_threshold(np.array([-1.0, -2.0]), np.array([-1, 1]), "accuracy") == np.inf
    )


def test_fixed_and_missing_threshold(iris, index_pairs):
    X, _ = iris
    pairs, labels = index_pairs
    fixed = PairsClassifier(MMC(), preprocessor=X, threshold=-1.0).fit(pairs, labels)
    assert fixed.threshold_ == -1.0
    np.testing.assert_array_equal(
        fixed.predict(pairs), np.where(fixed.decision_function(pairs) >= -1.0, 1, -1)
    )
    model = PairsClassifier(MMC(), preprocessor=X, threshold=None).fit(pairs, labels)
    assert model.threshold_ is None
    with pytest.raises(ValueError, match=r"no threshold.*calibrate_threshold"):
        model.predict(pairs)
    with pytest.raises(ValueError, match="no threshold"):
        model.score(pairs, labels)
    model.calibrate_threshold(pairs, labels)
    assert model.score(pairs, labels) > 0.85
    # Refitting with threshold='auto' calibrates on the training pairs.
    auto = clone(model).set_params(threshold="auto").fit(pairs, labels)
    assert auto.threshold_ == model.threshold_


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"strategy": "precision"}, "strategy must be one of"),
        ({"strategy": "max_tpr"}, "needs min_rate, a float in \\[0, 1\\]; got None"),
        ({"strategy": "max_tnr", "min_rate": 1.5}, "got 1.5"),
        ({"strategy": "f_beta", "beta": 0}, "beta must be a positive float; got 0"),
    ],
)
def test_bad_calibration_arguments(kwargs, match, iris, index_pairs):
    X, _ = iris
    pairs, labels = index_pairs
    model = PairsClassifier(MMC(), preprocessor=X).fit(pairs, labels)
    with pytest.raises(ValueError, match=match):
        model.calibrate_threshold(pairs, labels, **kwargs)


def test_calibration_needs_both_labels(iris, index_pairs):
    X, _ = iris
    pairs, labels = index_pairs
    model = PairsClassifier(MMC(), preprocessor=X).fit(pairs, labels)
    with pytest.raises(ValueError, match="both similar"):
        model.calibrate_threshold(pairs[labels > 0], labels[labels > 0])


def test_degenerate_pairs_score_highest(iris, index_pairs):
    X, _ = iris
    pairs, labels = index_pairs
    model = PairsClassifier(MMC(), preprocessor=X).fit(pairs, labels)
    self_pairs = np.array([[3, 3], [7, 7]])
    np.testing.assert_array_equal(model.decision_function(self_pairs), [0.0, 0.0])
    np.testing.assert_array_equal(model.predict(self_pairs), [1, 1])


# --- bad input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make_pairs", "labels", "preprocessor", "match"),
    [
        (
            lambda X: X[:6].reshape(2, 3, 4),
            [1, -1],
            None,
            r"pairs must have shape \(n_pairs, 2, n_features\)",
        ),
        (lambda X: X[:6], [1, -1, 1, -1, 1, -1], None, "shape"),
        (
            lambda X: np.array([[0, 1], [2, 3]]),
            [1, -1],
            None,
            "no preprocessor was given",
        ),
        (
            lambda X: np.array([[0, 1], [2, 150]]),
            [1, -1],
            "X",
            r"in \[0, 149\]; got values from 0 to 150",
        ),
        (lambda X: np.array([[0, 1], [-1, 3]]), [1, -1], "X", r"got values from -1"),
        (
            lambda X: np.array([[0.0, 1.0], [2.0, 3.0]]),
            [1, -1],
            "X",
            "must hold integers",
        ),
        (
            lambda X: X[:4].reshape(2, 2, 4),
            [1, 0],
            None,
            r"must be \+1 \(similar\) or -1",
        ),
        (
            lambda X: X[:4].reshape(2, 2, 4),
            [1, -1, 1],
            None,
            r"pair_labels must have shape \(2,\)",
        ),
        (
            lambda X: np.where(np.arange(8).reshape(2, 2, 2) == 3, np.nan, 1.0),
            [1, -1],
            None,
            "NaN",
        ),
    ],
    ids=[
        "triplet-shaped",
        "2d-points",
        "no-preprocessor",
        "out-of-range",
        "negative",
        "float-indices",
        "label-0",
        "label-count",
        "nan",
    ],
)
def test_bad_pairs_are_clear_errors(make_pairs, labels, preprocessor, match, iris):
    X, _ = iris
    preprocessor = X if preprocessor == "X" else preprocessor
    with pytest.raises(ValueError, match=match):
        PairsClassifier(MMC(), preprocessor=preprocessor).fit(make_pairs(X), labels)


def test_bad_estimator_arguments(iris, index_pairs):
    X, _ = iris
    pairs, labels = index_pairs
    with pytest.raises(
        ValueError,
        match="'learner' parameter of PairsClassifier must be a metric learner with a fit_pairs method",
    ):
        PairsClassifier(Whitening(), preprocessor=X).fit(pairs, labels)
    with pytest.raises(ValueError, match="fit_triplets"):
        TripletsClassifier(MMC(), preprocessor=X).fit(_triplets(iris[1], 5, 0))
    with pytest.raises(ValueError, match="'threshold' parameter"):
        PairsClassifier(MMC(), preprocessor=X, threshold="best").fit(pairs, labels)
    with pytest.raises(ValueError, match="needs y"):
        PairsClassifier(MMC(), preprocessor=X).fit(pairs, None)
    model = PairsClassifier(MMC()).fit(X[pairs], labels)
    with pytest.raises(
        ValueError, match="pairs have 3 features, but the estimator was fitted with 4"
    ):
        model.predict(X[pairs][:, :, :3])
    with pytest.raises(ValueError, match="returned 2"):
        PairsClassifier(MMC(), preprocessor=lambda idx: X[:2]).fit(pairs, labels)


# --- triplets and quadruplets --------------------------------------------------------


def test_triplets(iris):
    X, y = iris
    triplets = _triplets(y, 120, 1)
    model = TripletsClassifier(FeatureWeights(), preprocessor=X).fit(triplets)
    L = model.components_

    def d(i, j):
        return np.linalg.norm((X[triplets[:, i]] - X[triplets[:, j]]) @ L.T, axis=1)

    expected = d(0, 2) - d(0, 1)
    np.testing.assert_allclose(model.decision_function(triplets), expected)
    np.testing.assert_allclose(model.decision_function(X[triplets]), expected)
    np.testing.assert_array_equal(
        model.predict(triplets), np.where(expected > 0, 1, -1)
    )
    assert model.score(triplets) == pytest.approx(np.mean(expected > 0))
    assert model.score(triplets) > 0.9
    # Triplets carry no labels: cross-validation and grid search without y.
    scores = cross_val_score(
        TripletsClassifier(FeatureWeights(), preprocessor=X), triplets, cv=3
    )
    assert scores.mean() > 0.85
    search = GridSearchCV(
        TripletsClassifier(FeatureWeights(), preprocessor=X),
        {"learner__power": [0.0, 1.0]},
        cv=3,
    ).fit(triplets)
    assert search.best_params_ == {"learner__power": 1.0}
    # A triplet (a, b, b) is never satisfied.
    assert model.predict(np.array([[0, 5, 5]])).tolist() == [-1]
    with pytest.raises(ValueError, match=r"shape \(n_triplets, 3, n_features\)"):
        model.predict(X[:8].reshape(2, 4, 4))


def test_quadruplets_pass_weights_and_weight_the_score(iris):
    X, y = iris
    triplets = _triplets(y, 60, 2)
    quadruplets = np.concatenate([triplets[:, :2], triplets[:, [0, 2]]], axis=1)
    weights = np.random.RandomState(0).uniform(0, 2, 60)
    model = QuadrupletsClassifier(FeatureWeights(), preprocessor=X)
    model.fit(quadruplets, sample_weight=weights)
    np.testing.assert_array_equal(model.learner_.weights_, weights)
    L = model.components_

    def d(i, j):
        return np.linalg.norm(
            (X[quadruplets[:, i]] - X[quadruplets[:, j]]) @ L.T, axis=1
        )

    expected = d(2, 3) - d(0, 1)
    np.testing.assert_allclose(model.decision_function(quadruplets), expected)
    assert model.score(quadruplets, sample_weight=weights) == pytest.approx(
        np.average(expected > 0, weights=weights)
    )
    assert cross_val_score(clone(model), quadruplets, cv=3).mean() > 0.85
    with pytest.raises(ValueError, match="sample_weight must hold 60 non-negative"):
        model.fit(quadruplets, sample_weight=-weights)


# --- the real learners of each tuple kind -----------------------------------------


@pytest.mark.parametrize("learner", [SDML(), KISSME(), GMML()], ids=repr)
def test_pair_learners_in_cross_val_score(learner, iris, index_pairs):
    X, _ = iris
    pairs, labels = index_pairs
    auc = cross_val_score(
        PairsClassifier(learner, preprocessor=X),
        pairs,
        labels,
        cv=3,
        scoring="roc_auc",
    )
    assert auc.mean() > 0.85


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_scml_learns_from_triplets_through_the_wrapper(iris):
    X, y = iris
    triplets = _triplets(y, 150, 3)
    learner = SCML(random_state=0, max_iter=2000)
    scores = cross_val_score(
        TripletsClassifier(learner, preprocessor=X), triplets, cv=3
    )
    assert scores.mean() > 0.85
    model = TripletsClassifier(learner, preprocessor=X).fit(triplets)
    expected = clone(learner).fit_triplets(X[triplets]).components_
    np.testing.assert_allclose(model.components_, expected)


def test_lsml_learns_from_quadruplets_through_the_wrapper(iris):
    X, y = iris
    rows, cols, labels = sample_label_pairs(y, 200, np.random.RandomState(4))
    similar = np.stack([rows, cols], axis=1)[labels > 0]
    dissimilar = np.stack([rows, cols], axis=1)[labels < 0]
    n = min(similar.shape[0], dissimilar.shape[0])
    quadruplets = np.concatenate([similar[:n], dissimilar[:n]], axis=1)
    euclidean = np.linalg.norm(
        X[quadruplets[:, 2]] - X[quadruplets[:, 3]], axis=1
    ) > np.linalg.norm(X[quadruplets[:, 0]] - X[quadruplets[:, 1]], axis=1)
    model = QuadrupletsClassifier(LSML(), preprocessor=X)
    scores = cross_val_score(model, quadruplets, cv=3)
    assert scores.mean() >= euclidean.mean() - 0.02
    assert model.fit(quadruplets).score(quadruplets) > euclidean.mean()
