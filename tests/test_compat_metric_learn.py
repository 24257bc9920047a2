"""linmetric.compat.metric_learn: metric-learn 0.7.0's API on linmetric's learners.

Three parts: the names and signatures against metric-learn's documented API
(kept below), metric-learn's documented usage rewritten as tests, and
scikit-learn's estimator checks on the learners that fit samples.
"""

import inspect
import pickle
import re

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_regression
from sklearn.metrics import f1_score
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.utils.estimator_checks import parametrize_with_checks

import linmetric
import linmetric.compat.metric_learn as metric_learn
from linmetric.compat.metric_learn import constraints

# metric-learn 0.7.0's public API: the names of its __all__, then each
# class's constructor and public methods as its documentation lists them.
# Every learner also has the metric methods of MahalanobisMixin
# (METRIC_METHODS).
PUBLIC_NAMES = [
    "Constraints", "Covariance", "ITML", "ITML_Supervised", "LMNN", "LSML",
    "LSML_Supervised", "SDML", "SDML_Supervised", "NCA", "LFDA", "RCA",
    "RCA_Supervised", "MLKR", "MMC", "MMC_Supervised", "SCML",
    "SCML_Supervised", "__version__",
]  # fmt: skip
METRIC_METHODS = """
score_pairs(self, pairs)
pair_score(self, pairs)
pair_distance(self, pairs)
transform(self, X)
get_metric(self)
get_mahalanobis_matrix(self)
"""
SIGNATURES = """
Constraints.__init__(self, partial_labels)
Constraints.positive_negative_pairs(self, n_constraints, same_length=False, random_state=None, num_constraints='deprecated')
Constraints.generate_knntriplets(self, X, k_genuine, k_impostor)
Constraints.chunks(self, n_chunks=100, chunk_size=2, random_state=None, num_chunks='deprecated')
Covariance.__init__(self, preprocessor=None)
Covariance.fit(self, X, y=None)
ITML.__init__(self, gamma=1.0, max_iter=1000, tol=0.001, prior='identity', verbose=False, preprocessor=None, random_state=None, convergence_threshold='deprecated')
ITML.fit(self, pairs, y, bounds=None, calibration_params=None)
ITML.predict(self, pairs)
ITML.decision_function(self, pairs)
ITML.score(self, pairs, y)
ITML.set_threshold(self, threshold)
ITML.calibrate_threshold(self, pairs_valid, y_valid, strategy='accuracy', min_rate=None, beta=1.0)
ITML_Supervised.__init__(self, gamma=1.0, max_iter=1000, tol=0.001, n_constraints=None, prior='identity', verbose=False, preprocessor=None, random_state=None, num_constraints='deprecated', convergence_threshold='deprecated')
ITML_Supervised.fit(self, X, y, bounds=None)
LMNN.__init__(self, init='auto', n_neighbors=3, min_iter=50, max_iter=1000, learn_rate=1e-07, regularization=0.5, convergence_tol=0.001, verbose=False, preprocessor=None, n_components=None, random_state=None, k='deprecated')
LMNN.fit(self, X, y)
LSML.__init__(self, tol=0.001, max_iter=1000, prior='identity', verbose=False, preprocessor=None, random_state=None)
LSML.fit(self, quadruplets, weights=None)
LSML.predict(self, quadruplets)
LSML.decision_function(self, quadruplets)
LSML.score(self, quadruplets)
LSML_Supervised.__init__(self, tol=0.001, max_iter=1000, prior='identity', n_constraints=None, weights=None, verbose=False, preprocessor=None, random_state=None, num_constraints='deprecated')
LSML_Supervised.fit(self, X, y)
SDML.__init__(self, balance_param=0.5, sparsity_param=0.01, prior='identity', verbose=False, preprocessor=None, random_state=None)
SDML.fit(self, pairs, y, calibration_params=None)
SDML.predict(self, pairs)
SDML.decision_function(self, pairs)
SDML.score(self, pairs, y)
SDML.set_threshold(self, threshold)
SDML.calibrate_threshold(self, pairs_valid, y_valid, strategy='accuracy', min_rate=None, beta=1.0)
SDML_Supervised.__init__(self, balance_param=0.5, sparsity_param=0.01, prior='identity', n_constraints=None, verbose=False, preprocessor=None, random_state=None, num_constraints='deprecated')
SDML_Supervised.fit(self, X, y)
NCA.__init__(self, init='auto', n_components=None, max_iter=100, tol=None, verbose=False, preprocessor=None, random_state=None)
NCA.fit(self, X, y)
LFDA.__init__(self, n_components=None, k=None, embedding_type='weighted', preprocessor=None)
LFDA.fit(self, X, y)
RCA.__init__(self, n_components=None, preprocessor=None)
RCA.fit(self, X, chunks)
RCA_Supervised.__init__(self, n_components=None, n_chunks=100, chunk_size=2, preprocessor=None, random_state=None, num_chunks='deprecated')
RCA_Supervised.fit(self, X, y)
MLKR.__init__(self, n_components=None, init='auto', tol=None, max_iter=1000, verbose=False, preprocessor=None, random_state=None)
MLKR.fit(self, X, y)
MMC.__init__(self, max_iter=100, max_proj=10000, tol=0.001, init='identity', diagonal=False, diagonal_c=1.0, verbose=False, preprocessor=None, random_state=None, convergence_threshold='deprecated')
MMC.fit(self, pairs, y, calibration_params=None)
MMC.predict(self, pairs)
MMC.decision_function(self, pairs)
MMC.score(self, pairs, y)
MMC.set_threshold(self, threshold)
MMC.calibrate_threshold(self, pairs_valid, y_valid, strategy='accuracy', min_rate=None, beta=1.0)
MMC_Supervised.__init__(self, max_iter=100, max_proj=10000, tol=1e-06, n_constraints=None, init='identity', diagonal=False, diagonal_c=1.0, verbose=False, preprocessor=None, random_state=None, num_constraints='deprecated', convergence_threshold='deprecated')
MMC_Supervised.fit(self, X, y)
SCML.__init__(self, beta=1e-05, basis='triplet_diffs', n_basis=None, gamma=0.005, max_iter=10000, output_iter=500, batch_size=10, verbose=False, preprocessor=None, random_state=None)
SCML.fit(self, triplets)
SCML.predict(self, triplets)
SCML.decision_function(self, triplets)
SCML.score(self, triplets)
SCML_Supervised.__init__(self, k_genuine=3, k_impostor=10, beta=1e-05, basis='lda', n_basis=None, gamma=0.005, max_iter=10000, output_iter=500, batch_size=10, verbose=False, preprocessor=None, random_state=None)
SCML_Supervised.fit(self, X, y)
constraints.wrap_pairs(X, constraints)
"""


def _expected_signatures():
    expected = []
    for line in SIGNATURES.strip().splitlines():
        path, _, signature = line.partition("(")
        expected.append((path, "(" + signature))
        owner, _, method = path.partition(".")
        if method == "__init__" and owner != "Constraints":
            for metric_line in METRIC_METHODS.strip().splitlines():
                name, _, signature = metric_line.partition("(")
                expected.append((f"{owner}.{name}", "(" + signature))
    return expected


def test_public_names_are_metric_learns():
    assert sorted(metric_learn.__all__) == sorted(PUBLIC_NAMES)
    for name in PUBLIC_NAMES:
        assert getattr(metric_learn, name) is not None


def test_compat_classes_stay_out_of_linmetric_all():
    assert not {"ITML_Supervised", "Constraints", "MMC_Supervised"} & set(
        linmetric.__all__
    )


@pytest.mark.parametrize(("path", "signature"), _expected_signatures())
def test_signature_matches_metric_learn(path, signature):
    owner, _, name = path.partition(".")
    obj = getattr(getattr(metric_learn, owner), name)
    assert str(inspect.signature(obj)) == signature


# --- data ---------------------------------------------------------------


@pytest.fixture(scope="module")
def index_pairs(iris):
    """Index pairs into iris and their +1/-1 labels, from Constraints."""
    _, y = iris
    a, b, c, d = metric_learn.Constraints(y).positive_negative_pairs(60, random_state=0)
    pairs = np.concatenate((np.stack((a, b), 1), np.stack((c, d), 1)))
    labels = np.concatenate((np.ones(a.shape[0]), -np.ones(c.shape[0])))
    order = np.random.RandomState(0).permutation(labels.shape[0])
    return pairs[order], labels[order].astype(int)


# --- pairs --------------------------------------------------------------


def test_pairs_with_preprocessor_match_pairs_of_points(iris, index_pairs):
    X, _ = iris
    pairs, labels = index_pairs
    by_index = metric_learn.ITML(preprocessor=X, random_state=0).fit(pairs, labels)
    by_points = metric_learn.ITML(random_state=0).fit(X[pairs], labels)
    np.testing.assert_allclose(by_index.components_, by_points.components_)
    np.testing.assert_allclose(
        by_index.pair_distance(pairs), by_points.pair_distance(X[pairs])
    )
    Z = by_index.transform(X)
    np.testing.assert_allclose(
        by_index.pair_distance(pairs),
        np.linalg.norm(Z[pairs[:, 0]] - Z[pairs[:, 1]], axis=1),
        rtol=1e-6,
    )
    np.testing.assert_allclose(by_index.transform(np.arange(5)), Z[:5])
    predicted = by_index.predict(pairs)
    assert set(np.unique(predicted)) <= {-1, 1}
    assert np.mean(predicted == labels) > 0.85
    # threshold_ is a distance: similar exactly when distance <= threshold_
    distances = by_index.pair_distance(pairs)
    np.testing.assert_array_equal(
        predicted, np.where(distances <= by_index.threshold_, 1, -1)
    )
    np.testing.assert_allclose(by_index.decision_function(pairs), -distances)
    restored = pickle.loads(pickle.dumps(by_index))
    np.testing.assert_array_equal(restored.predict(pairs), predicted)


def test_index_pairs_without_preprocessor_say_so(iris, index_pairs):
    X, _ = iris
    pairs, labels = index_pairs
    model = metric_learn.MMC().fit(X[pairs], labels)
    with pytest.raises(ValueError, match="preprocessor"):
        model.pair_distance(pairs)


@pytest.mark.parametrize(
    ("learner", "params"),
    [("ITML", {}), ("MMC", {}), ("SDML", {"balance_param": 0.05})],
)
def test_cross_val_score_on_pairs_is_roc_auc(iris, index_pairs, learner, params):
    X, _ = iris
    pairs, labels = index_pairs
    model = getattr(metric_learn, learner)(preprocessor=X, **params)
    scores = cross_val_score(model, pairs, labels, cv=3)
    assert scores.mean() > 0.85
    fitted = clone(model).fit(pairs, labels)
    from sklearn.metrics import roc_auc_score

    assert fitted.score(pairs, labels) == pytest.approx(
        roc_auc_score(labels, fitted.decision_function(pairs))
    )


def _rates(model, pairs, labels):
    predicted = model.predict(pairs)
    tpr = np.mean(predicted[labels > 0] == 1)
    tnr = np.mean(predicted[labels < 0] == -1)
    return predicted, tpr, tnr


def test_calibrate_threshold_strategies(iris, index_pairs):
    X, _ = iris
    pairs, labels = index_pairs
    fit_pairs, valid_pairs = pairs[:60], pairs[60:]
    fit_labels, valid_labels = labels[:60], labels[60:]
    model = metric_learn.ITML(preprocessor=X).fit(fit_pairs, fit_labels)
    distances = model.pair_distance(valid_pairs)
    candidates = np.concatenate(([-1.0], np.sort(distances)))

    def best(measure):
        return max(measure(np.where(distances <= t, 1, -1)) for t in candidates)

    model.calibrate_threshold(valid_pairs, valid_labels, strategy="accuracy")
    predicted, _, _ = _rates(model, valid_pairs, valid_labels)
    assert np.mean(predicted == valid_labels) == pytest.approx(
        best(lambda p: np.mean(p == valid_labels))
    )
    model.calibrate_threshold(valid_pairs, valid_labels, strategy="f_beta", beta=1)
    predicted, _, _ = _rates(model, valid_pairs, valid_labels)
    assert f1_score(valid_labels, predicted) == pytest.approx(
        best(lambda p: f1_score(valid_labels, p, zero_division=0))
    )
    model.calibrate_threshold(
        valid_pairs, valid_labels, strategy="max_tpr", min_rate=0.9
    )
    _, tpr, tnr = _rates(model, valid_pairs, valid_labels)
    assert tnr >= 0.9
    model.calibrate_threshold(
        valid_pairs, valid_labels, strategy="max_tnr", min_rate=0.9
    )
    _, tpr, tnr = _rates(model, valid_pairs, valid_labels)
    assert tpr >= 0.9
    model.set_threshold(0.0)
    assert np.all(model.predict(valid_pairs) == -1)
    with pytest.raises(ValueError, match="real number"):
        model.set_threshold("1")


def test_calibration_params_in_fit(iris, index_pairs):
    X, _ = iris
    pairs, labels = index_pairs
    model = metric_learn.MMC(preprocessor=X).fit(
        pairs, labels, calibration_params={"strategy": "max_tnr", "min_rate": 0.95}
    )
    _, tpr, _ = _rates(model, pairs, labels)
    assert tpr >= 0.95
    with pytest.raises(ValueError, match="strategy"):
        metric_learn.MMC(preprocessor=X).fit(
            pairs, labels, calibration_params={"strategy": "roc"}
        )
    with pytest.raises(ValueError, match="min_rate"):
        metric_learn.MMC(preprocessor=X).fit(
            pairs, labels, calibration_params={"strategy": "max_tpr"}
        )


# --- supervised learners and the deprecated spellings ---------------------


def test_itml_supervised_and_its_squared_bounds(iris):
    X, y = iris
    model = metric_learn.ITML_Supervised(n_constraints=50, random_state=0).fit(X, y)
    knn = KNeighborsClassifier(3).fit(model.transform(X), y)
    assert knn.score(model.transform(X), y) > 0.9
    # metric-learn draws n_constraints pairs of each kind
    assert model.learner_.n_constraints == 100
    # the bounds are percentiles of squared distances: in units of X squared
    scaled = metric_learn.ITML_Supervised(n_constraints=50, random_state=0)
    scaled.fit(10 * X, y)
    np.testing.assert_allclose(scaled.bounds_, 100 * model.bounds_, rtol=1e-10)


def test_lmnn_k_is_deprecated_for_n_neighbors(iris):
    X, y = iris
    model = metric_learn.LMNN(k=2, max_iter=5, random_state=0)
    with pytest.warns(FutureWarning, match="'k'.*'n_neighbors'"):
        model.fit(X, y)
    assert model.learner_.n_neighbors == 2
    assert clone(model).k == 2  # clone keeps what the user set
    lmnn = metric_learn.LMNN(regularization=0.3, learn_rate=1e-3)
    assert lmnn._make_learner().push_weight == 0.3


@pytest.mark.parametrize(
    ("factory", "attribute", "value"),
    [
        (
            lambda: metric_learn.ITML_Supervised(num_constraints=15),
            "n_constraints",
            30,
        ),
        (
            lambda: metric_learn.MMC_Supervised(convergence_threshold=1e-2),
            "tol",
            1e-2,
        ),
        (lambda: metric_learn.ITML(convergence_threshold=1e-2), "tol", 1e-2),
        (lambda: metric_learn.SDML_Supervised(num_constraints=15), "n_constraints", 30),
        (lambda: metric_learn.LSML_Supervised(num_constraints=15), "n_constraints", 15),
        (lambda: metric_learn.RCA_Supervised(num_chunks=7), "n_chunks", 7),
    ],
)
def test_renamed_parameters_warn_and_are_used(factory, attribute, value):
    with pytest.warns(FutureWarning, match="renamed"):
        learner = factory()._make_learner(y=np.array([0, 1]))
    assert getattr(learner, attribute) == value


def test_score_pairs_is_deprecated(iris):
    X, _ = iris
    model = metric_learn.Covariance().fit(X)
    pairs = np.stack((X[:10], X[10:20]), axis=1)
    with pytest.warns(FutureWarning, match="pair_distance"):
        scores = model.score_pairs(pairs)
    np.testing.assert_allclose(scores, model.pair_distance(pairs))
    np.testing.assert_allclose(model.pair_score(pairs), -scores)


def test_get_metric_in_knn(iris):
    X, y = iris
    model = metric_learn.NCA(max_iter=20, random_state=0).fit(X, y)
    metric = model.get_metric()
    Z = model.transform(X)
    knn = KNeighborsClassifier(3, metric=metric, algorithm="brute").fit(X, y)
    np.testing.assert_array_equal(
        knn.predict(X[::5]), KNeighborsClassifier(3).fit(Z, y).predict(Z[::5])
    )
    distance = np.linalg.norm(Z[0] - Z[1])
    assert metric(X[0], X[1]) == pytest.approx(distance)
    assert metric(X[0], X[1], squared=True) == pytest.approx(distance**2)
    assert pickle.loads(pickle.dumps(metric))(X[0], X[1]) == pytest.approx(distance)


def test_nca_tol_none_is_linmetrics_default(iris):
    X, y = iris
    assert metric_learn.NCA()._make_learner().tol == linmetric.NCA().tol
    assert metric_learn.NCA(tol=1e-3)._make_learner().tol == 1e-3
    model = metric_learn.NCA(tol=None, max_iter=10, random_state=0).fit(X, y)
    assert model.components_.shape == (4, 4)


def test_rca_with_chunks(iris):
    X, y = iris
    chunks = metric_learn.Constraints(y).chunks(
        n_chunks=30, chunk_size=3, random_state=0
    )
    ids = np.unique(chunks[chunks >= 0])
    assert ids.shape[0] == 30
    for chunk in ids:
        members = np.flatnonzero(chunks == chunk)
        assert members.shape[0] == 3 and np.unique(y[members]).shape[0] == 1
    model = metric_learn.RCA().fit(X, chunks)
    expected = linmetric.RCA().fit_chunklets(X, chunks)
    np.testing.assert_allclose(
        model.get_mahalanobis_matrix(), expected.get_mahalanobis_matrix()
    )
    with pytest.warns(FutureWarning, match="num_chunks"):
        metric_learn.Constraints(y).chunks(num_chunks=5, random_state=0)
    with pytest.raises(ValueError, match="n_chunks"):
        metric_learn.Constraints(y).chunks(n_chunks=100, chunk_size=20)


def test_mlkr_regression():
    X, y = make_regression(
        n_samples=80, n_features=6, n_informative=2, noise=0.1, random_state=0
    )
    model = metric_learn.MLKR(random_state=0, max_iter=100).fit(X, y)
    before = cross_val_score(KNeighborsRegressor(5), X, y, cv=3).mean()
    after = cross_val_score(KNeighborsRegressor(5), model.transform(X), y, cv=3)
    assert after.mean() > before


def test_lfda_k_default_and_embedding(iris):
    X, y = iris
    model = metric_learn.LFDA(n_components=2, embedding_type="orthonormalized")
    model.fit(X, y)
    assert model.learner_.k == 3  # min(7, n_features - 1), as metric-learn
    L = model.components_
    np.testing.assert_allclose(L @ L.T, np.eye(2), atol=1e-8)
    with pytest.warns(UserWarning, match="k=9"):
        metric_learn.LFDA(k=9).fit(X, y)


def test_mmc_diagonal(iris):
    X, y = iris
    model = metric_learn.MMC_Supervised(diagonal=True, random_state=0).fit(X, y)
    M = model.get_mahalanobis_matrix()
    np.testing.assert_allclose(M, np.diag(np.diag(M)), atol=1e-10)
    assert np.all(np.diag(M) >= 0) and np.any(np.diag(M) > 0)


# --- triplets and quadruplets ---------------------------------------------


def test_triplets_with_scml(iris):
    X, y = iris
    triplets = metric_learn.Constraints(y).generate_knntriplets(X, 2, 3)
    assert np.all(y[triplets[:, 0]] == y[triplets[:, 1]])
    assert np.all(y[triplets[:, 0]] != y[triplets[:, 2]])
    model = metric_learn.SCML(preprocessor=X, max_iter=500, random_state=0)
    model.fit(triplets)
    assert model.score(triplets) > 0.8
    predicted = model.predict(X[triplets])
    np.testing.assert_array_equal(
        predicted, np.where(model.decision_function(triplets) > 0, 1, -1)
    )
    tie = np.stack((X[:2], X[2:4], X[2:4]), axis=1)  # b == c
    assert np.all(model.predict(tie) == -1)


def test_quadruplets_with_lsml(iris):
    X, y = iris
    a, b, c, d = metric_learn.Constraints(y).positive_negative_pairs(
        80, same_length=True, random_state=0
    )
    quadruplets = np.stack((a, b, c, d), axis=1)
    model = metric_learn.LSML(preprocessor=X).fit(quadruplets)
    assert model.score(quadruplets) > 0.85
    weighted = metric_learn.LSML().fit(
        X[quadruplets], weights=np.linspace(0.5, 1.5, quadruplets.shape[0])
    )
    assert not np.allclose(weighted.components_, model.components_)
    tie = np.stack((X[:2], X[2:4], X[:2], X[2:4]), axis=1)
    np.testing.assert_array_equal(model.predict(tie), [0, 0])  # a tie scores 0
    assert model.score(tie) == 0.5


def test_lsml_supervised_with_weights(iris):
    X, y = iris
    model = metric_learn.LSML_Supervised(
        n_constraints=30, weights=np.ones(30), random_state=0
    ).fit(X, y)
    assert model.components_.shape == (4, 4)


def test_constraints_ignore_unlabelled_samples(iris):
    X, y = iris
    partial = y.copy()
    partial[::3] = -1
    a, b, c, d = metric_learn.Constraints(partial).positive_negative_pairs(
        40, random_state=0
    )
    used = np.concatenate((a, b, c, d))
    assert np.all(partial[used] >= 0)
    np.testing.assert_array_equal(y[a], y[b])
    assert np.all(y[c] != y[d])
    pairs, labels = constraints.wrap_pairs(X, (a, b, c, d))
    assert pairs.shape == (80, 2, 4) and labels.tolist() == [1] * 40 + [-1] * 40
    triplets = metric_learn.Constraints(partial).generate_knntriplets(X, 1, 1)
    assert np.all(partial[triplets] >= 0)
    with pytest.warns(FutureWarning, match="num_constraints"):
        metric_learn.Constraints(y).positive_negative_pairs(
            None, num_constraints=5, random_state=0
        )


# --- scikit-learn's estimator checks ----------------------------------------

EXPECTED_FAILED_CHECKS = {
    "MLKR": {
        "check_transformer_n_iter": (
            "the check's two tight blobs are predicted exactly by the "
            "leave-one-out kernel regression at the start, so L-BFGS-B rightly "
            "stops before its first iteration"
        )
    },
}

# Small budgets keep the checks fast; the checks test the interface, not the fit.
CHECKED = [
    metric_learn.Covariance(),
    metric_learn.ITML_Supervised(n_constraints=20, max_iter=50, random_state=0),
    metric_learn.LMNN(max_iter=20, random_state=0),
    metric_learn.LSML_Supervised(n_constraints=20, random_state=0),
    metric_learn.SDML_Supervised(
        balance_param=0.05, sparsity_param=0.1, n_constraints=20, random_state=0
    ),
    metric_learn.NCA(max_iter=20, random_state=0),
    metric_learn.LFDA(),
    metric_learn.RCA_Supervised(n_chunks=3, random_state=0),
    metric_learn.MMC_Supervised(n_constraints=20, max_iter=20, random_state=0),
    metric_learn.SCML_Supervised(k_impostor=3, n_basis=8, max_iter=50, random_state=0),
    metric_learn.MLKR(max_iter=20, random_state=0),
]


@parametrize_with_checks(
    CHECKED,
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS.get(
        type(est).__name__, {}
    ),
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_signature_list_is_parsed():
    # a guard against a silently empty SIGNATURES table
    assert len(_expected_signatures()) == 60 + 6 * 17
    assert all(re.match(r"^\(.*\)$", sig) for _, sig in _expected_signatures())
