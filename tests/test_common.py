"""Checks every public learner must pass, discovered from ``linmetric.__all__``.

A new learner is picked up here without editing this file: it gets
scikit-learn's estimator checks and linmetric's learner contract (metric API,
pipelines, grid search, cloning, dtype, pickling, input errors).
"""

import pickle

import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp
from learners import public_classes, required_arguments
from scipy.spatial.distance import cdist
from sklearn.base import ClassifierMixin, clone
from sklearn.datasets import load_iris
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import linmetric
from linmetric import MetricLearner

# Checks that cannot pass, with the reason; keep this empty where possible.
EXPECTED_FAILED_CHECKS = {
    "MLKR": {
        "check_transformer_n_iter": (
            "the check's two tight blobs are predicted exactly by the "
            "leave-one-out kernel regression at the start, so L-BFGS-B rightly "
            "stops before its first iteration"
        )
    },
}


def _instance(cls):
    estimator = cls(**required_arguments(cls))
    if "random_state" in estimator.get_params():
        estimator.set_params(random_state=0)
    return estimator


ESTIMATORS = [_instance(cls) for cls in public_classes()]
LEARNERS = [est for est in ESTIMATORS if isinstance(est, MetricLearner)]


def test_every_public_name_is_exported():
    for name in linmetric.__all__:
        assert getattr(linmetric, name) is not None
    assert {type(est).__name__ for est in LEARNERS} >= {"Whitening", "Covariance"}


@parametrize_with_checks(
    ESTIMATORS,
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS.get(
        type(est).__name__, {}
    ),
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _ids(estimators):
    return [type(est).__name__ for est in estimators]


@pytest.mark.parametrize("learner", LEARNERS, ids=_ids(LEARNERS))
class TestLearnerContract:
    def test_metric_api_is_consistent(self, learner, iris):
        X, y = iris
        learner = clone(learner).fit(X, y)
        L = learner.components_
        assert L.ndim == 2 and L.shape[1] == X.shape[1]
        M = learner.get_mahalanobis_matrix()
        np.testing.assert_allclose(M, L.T @ L)
        assert np.linalg.eigvalsh(M).min() > -1e-8 * max(1.0, np.abs(M).max())

        Z = learner.transform(X)
        pairs = np.stack([X[:20], X[20:40]], axis=1)
        expected = np.linalg.norm(Z[:20] - Z[20:40], axis=1)
        np.testing.assert_allclose(
            learner.pair_distance(pairs), expected, rtol=1e-6, atol=1e-9
        )
        np.testing.assert_allclose(
            learner.pair_score(pairs), -expected, rtol=1e-6, atol=1e-9
        )
        metric = learner.get_metric()
        np.testing.assert_allclose(
            [metric(u, v) for u, v in zip(X[:20], X[20:40], strict=True)],
            expected,
            rtol=1e-6,
            atol=1e-9,
        )
        np.testing.assert_allclose(
            cdist(X[:5], X[5:9], metric=metric),
            cdist(Z[:5], Z[5:9]),
            rtol=1e-6,
            atol=1e-9,
        )
        knn = KNeighborsClassifier(n_neighbors=3, metric=metric, algorithm="brute").fit(
            X, y
        )
        knn_transformed = KNeighborsClassifier(n_neighbors=3).fit(Z, y)
        np.testing.assert_array_equal(
            knn.predict(X[::7]), knn_transformed.predict(Z[::7])
        )
        assert len(learner.get_feature_names_out()) == L.shape[0]

    def test_pipeline_and_grid_search(self, learner, iris):
        X, y = iris
        pipeline = make_pipeline(clone(learner), KNeighborsClassifier(n_neighbors=3))
        assert pipeline.fit(X, y).score(X, y) > 0.85
        search = GridSearchCV(
            pipeline, {"kneighborsclassifier__n_neighbors": [1, 3]}, cv=3
        )
        assert search.fit(X, y).best_score_ > 0.8

    def test_refit_on_data_of_another_width(self, learner, iris):
        X, y = iris
        learner = clone(learner)
        learner.fit(X, y)
        learner.fit(X[:, :3], y)
        assert learner.components_.shape[1] == 3
        assert learner.transform(X[:, :3]).shape[0] == X.shape[0]
        with pytest.raises(ValueError, match="features"):
            learner.transform(X)

    def test_float32_is_kept(self, learner, iris):
        X, y = iris
        X32 = X.astype(np.float32)
        learner = clone(learner).fit(X32, y)
        assert learner.components_.dtype == np.float32
        assert learner.transform(X32).dtype == np.float32

    def test_transform_works_on_dask_arrays_block_by_block(self, learner, iris):
        X, y = iris
        learner = clone(learner).fit(X, y)
        X_dask = da.from_array(X, chunks=(40, 2))
        Z = learner.transform(X_dask)
        assert isinstance(Z, da.Array)
        assert Z.chunks[0] == X_dask.chunks[0]
        np.testing.assert_allclose(Z.compute(), learner.transform(X))

    def test_pickle_round_trip(self, learner, iris):
        X, y = iris
        learner = clone(learner).fit(X, y)
        restored = pickle.loads(pickle.dumps(learner))
        np.testing.assert_array_equal(restored.transform(X), learner.transform(X))
        metric = pickle.loads(pickle.dumps(learner.get_metric()))
        assert metric(X[0], X[1]) == pytest.approx(
            np.linalg.norm(np.subtract(*learner.transform(X[:2])))
        )

    @pytest.mark.parametrize(
        ("make_bad", "match"),
        [
            (
                lambda X: np.where(np.arange(X.size).reshape(X.shape) == 7, np.nan, X),
                "NaN",
            ),
            (
                lambda X: np.where(np.arange(X.size).reshape(X.shape) == 7, np.inf, X),
                "infinity",
            ),
            (lambda X: X[:, 0], "Expected 2D array, got 1D array"),
            (lambda X: X[:0], "0 sample"),
            (lambda X: sp.csr_matrix(X), "[Ss]parse"),
        ],
        ids=["nan", "inf", "1d", "empty", "sparse"],
    )
    def test_bad_X_is_a_clear_error(self, learner, iris, make_bad, match):
        X, y = iris
        with pytest.raises((ValueError, TypeError), match=match):
            clone(learner).fit(make_bad(X), y)
        fitted = clone(learner).fit(X, y)
        if not match.startswith("0"):
            with pytest.raises((ValueError, TypeError), match=match):
                fitted.transform(make_bad(X))

    def test_mismatched_y_is_a_clear_error(self, learner, iris):
        X, y = iris
        if not learner.__sklearn_tags__().target_tags.required:
            pytest.skip("unsupervised: y is ignored")
        with pytest.raises(ValueError, match="inconsistent numbers of samples"):
            clone(learner).fit(X, y[:-1])
        if learner.__sklearn_tags__().regressor_tags is not None:
            return  # real-valued targets: a constant y is valid
        with pytest.raises(ValueError, match="only one class"):
            clone(learner).fit(X, np.zeros_like(y))


def _takes_samples(estimator):
    """False for the tuple estimators, whose samples are pairs or triplets."""
    return estimator.__sklearn_tags__().input_tags.two_d_array


SAMPLE_CLASSIFIERS = [
    est
    for est in ESTIMATORS
    if isinstance(est, ClassifierMixin) and _takes_samples(est)
]


@pytest.mark.parametrize("estimator", SAMPLE_CLASSIFIERS, ids=_ids(SAMPLE_CLASSIFIERS))
def test_classifiers_in_a_grid_search(estimator, iris):
    X, y = iris
    assert clone(estimator).fit(X, y).score(X, y) > 0.85
