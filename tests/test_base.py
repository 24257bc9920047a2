import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from linmetric import Covariance
from linmetric._base import MetricLearner


class FixedMap(MetricLearner):
    """A learner whose map is given, to test the base class alone."""

    def __init__(self, components=None):
        self.components = components

    def fit(self, X, y=None):
        from linmetric._validation import validate_X

        X = validate_X(self, X)
        self.components_ = np.asarray(self.components, dtype=X.dtype)
        return self


def test_transform_and_distances_follow_components():
    L = np.array([[2.0, 0.0], [0.0, 0.5], [1.0, 1.0]])
    learner = FixedMap(L).fit(np.zeros((3, 2)))
    X = np.array([[1.0, 2.0], [3.0, -1.0]])
    np.testing.assert_allclose(learner.transform(X), X @ L.T)
    np.testing.assert_allclose(learner.get_mahalanobis_matrix(), L.T @ L)
    pairs = X[None, :, :]
    expected = np.linalg.norm(L @ (X[0] - X[1]))
    np.testing.assert_allclose(learner.pair_distance(pairs), [expected])
    np.testing.assert_allclose(learner.get_metric()(X[0], X[1]), expected)
    assert list(learner.get_feature_names_out()) == [
        "fixedmap0",
        "fixedmap1",
        "fixedmap2",
    ]


def test_get_metric_is_a_snapshot():
    X = np.random.RandomState(0).standard_normal((30, 2))
    learner = FixedMap(np.eye(2)).fit(X)
    metric = learner.get_metric()
    learner.set_params(components=2 * np.eye(2)).fit(X)
    assert metric(np.zeros(2), np.ones(2)) == pytest.approx(np.sqrt(2))


def test_unfitted_learner_raises_not_fitted():
    for method in ("transform", "get_mahalanobis_matrix", "get_metric"):
        with pytest.raises(NotFittedError):
            args = (np.ones((2, 2)),) if method == "transform" else ()
            getattr(Covariance(), method)(*args)


@pytest.mark.parametrize(
    ("pairs", "match"),
    [
        (
            np.ones((4, 3)),
            r"pairs must have shape \(n_pairs, 2, n_features\); got shape \(4, 3\)",
        ),
        (np.ones((4, 3, 2)), r"got shape \(4, 3, 2\)"),
        (
            np.ones((4, 2, 5)),
            "pairs have 5 features, but the estimator was fitted with 2 features",
        ),
        (np.full((1, 2, 2), np.nan), "NaN"),
    ],
)
def test_bad_pairs_are_clear_errors(pairs, match):
    learner = FixedMap(np.eye(2)).fit(np.zeros((3, 2)))
    with pytest.raises(ValueError, match=match):
        learner.pair_distance(pairs)


def test_pair_labels_are_checked():
    from linmetric._validation import validate_pairs

    pairs = np.zeros((3, 2, 2))
    _, labels = validate_pairs(pairs, [1, -1, 1])
    assert labels.dtype == np.int8
    with pytest.raises(
        ValueError,
        match=r"pair_labels must be \+1 \(similar\) or -1 \(dissimilar\); got 0\.",
    ):
        validate_pairs(pairs, [1, 0, 1])
    with pytest.raises(ValueError, match=r"pair_labels must have shape \(3,\)"):
        validate_pairs(pairs, [1, -1])


def test_class_size_rule_names_class_size_and_parameter():
    from linmetric._validation import validate_X_y

    X = np.zeros((7, 2))
    y = np.array(["a", "a", "a", "a", "b", "b", "b"])
    with pytest.raises(
        ValueError,
        match=r"Class 'b' has 3 sample\(s\), but with n_neighbors=3 every class needs at least 4 samples",
    ):
        validate_X_y(
            FixedMap(), X, y, min_class_size=4, min_class_size_param=("n_neighbors", 3)
        )
    _, codes, classes = validate_X_y(FixedMap(), X, y)
    assert list(classes) == ["a", "b"]
    assert codes.dtype == np.intp


def test_import_is_lazy():
    import subprocess
    import sys

    code = (
        "import sys, linmetric; print('numba' in sys.modules, 'sklearn' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("scale", [1e30, 1e-30])
def test_float32_mahalanobis_matrix_out_of_float32_range_is_float64(scale):
    # L ~ 1e30 gives M ~ 1e60 (inf in float32); L ~ 1e-30 gives M ~ 1e-60
    # (0 in float32): M is then returned in float64, right
    L = np.array([[2.0, 1.0], [0.0, 0.5]]) * scale
    learner = FixedMap(L).fit(np.zeros((3, 2), dtype=np.float32))
    assert learner.components_.dtype == np.float32
    M = learner.get_mahalanobis_matrix()
    assert M.dtype == np.float64
    L32 = learner.components_.astype(np.float64)
    np.testing.assert_allclose(M, L32.T @ L32, rtol=1e-12)
    assert M[0, 0] == pytest.approx(4 * scale**2, rel=1e-6)
    # within float32's range, float32 stays float32
    learner = FixedMap(L / scale).fit(np.zeros((3, 2), dtype=np.float32))
    M = learner.get_mahalanobis_matrix()
    assert M.dtype == np.float32
    np.testing.assert_allclose(M, [[4.0, 2.0], [2.0, 1.25]], rtol=1e-6)


@pytest.mark.parametrize("scale", [1e-30, 1e30])
def test_float32_data_at_extreme_scales_gives_a_finite_metric(scale):
    X = np.random.RandomState(0).standard_normal((40, 3)) * [1.0, 2.0, 0.5]
    metric = Covariance().fit((X * scale).astype(np.float32))
    M = metric.get_mahalanobis_matrix()
    assert np.all(np.isfinite(M))
    unit = Covariance().fit(X).get_mahalanobis_matrix()
    np.testing.assert_allclose(M * scale**2, unit, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(
    "value, message", [(np.inf, "overflow"), (np.nan, "NaN entries")]
)
def test_a_map_that_is_not_finite_is_an_error_and_not_kept(value, message):
    class Broken(MetricLearner):
        def fit(self, X, y=None):
            self.components_ = np.array([[1.0, value]])
            return self

        def fit_pairs(self, pairs, pair_labels):
            return self.fit(None)

    for fit in (lambda m: m.fit(None), lambda m: m.fit_pairs(None, None)):
        model = Broken()
        with pytest.raises(ValueError, match=message):
            fit(model)
        assert not hasattr(model, "components_")
