import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from linmetric import LMNN, EnergyClassifier
from linmetric._kernels.energy import lmnn_energies
from linmetric._lmnn import _choose_targets
from linmetric.reference import lmnn as reference


def make_data(seed, n_samples=60, n_features=3, n_classes=3, gap=2.0):
    rng = np.random.RandomState(seed)
    y = np.arange(n_samples) % n_classes
    X = rng.standard_normal((n_samples, n_features))
    X[:, 0] += gap * y
    return X, y


@pytest.mark.parametrize("loss", ["squared_hinge", "hinge"])
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_energy_kernel_equals_reference(loss, dtype, rtol):
    X, y = make_data(0)
    X_test, _ = make_data(1, n_samples=12)
    rng = np.random.RandomState(0)
    L = rng.standard_normal((2, 3))
    targets = reference.target_neighbors(X, y, 3)
    expected = reference.energies(L, X, y, targets, X_test, 3, mu=0.3, loss=loss)
    Z = (X @ L.T).astype(dtype)
    target_sq = ((Z[:, None, :].astype(float) - Z[targets]) ** 2).sum(-1)
    got = lmnn_energies(
        (X_test @ L.T).astype(dtype),
        Z,
        y,
        3,
        target_sq,
        mu=0.3,
        squared=loss == "squared_hinge",
        working_memory=1e-4,  # several blocks
    )
    np.testing.assert_allclose(
        got, expected, rtol=rtol, atol=rtol * abs(expected).max()
    )


def test_classifier_uses_the_fitted_metric_and_the_rule():
    X, y = make_data(2, gap=5.0)
    X_test, y_test = make_data(3, n_samples=30, gap=5.0)
    clf = EnergyClassifier(LMNN(n_neighbors=3, random_state=0)).fit(X, y)
    lmnn = clf.lmnn_
    expected = reference.energies(
        lmnn.components_, X, y, lmnn.target_neighbors_, X_test, 3, mu=0.5
    )
    np.testing.assert_allclose(clf.energies(X_test), expected, rtol=1e-10)
    np.testing.assert_array_equal(clf.predict(X_test), np.argmin(expected, axis=1))
    # the scores leave out a term common to all labels
    scores = clf.decision_function(X_test)
    np.testing.assert_allclose(
        scores - scores[:, :1],
        -(expected - expected[:, :1]),
        rtol=1e-10,
        atol=1e-10 * abs(expected).max(),
    )
    assert clf.score(X_test, y_test) > 0.9


def test_string_labels_and_binary_decision_function():
    X, y = make_data(4, n_classes=2)
    labels = np.array(["cat", "dog"])[y]
    clf = EnergyClassifier(LMNN(random_state=0)).fit(X, labels)
    np.testing.assert_array_equal(clf.classes_, ["cat", "dog"])
    scores = clf.decision_function(X)
    assert scores.shape == (X.shape[0],)
    energies = clf.energies(X)
    np.testing.assert_allclose(scores, energies[:, 0] - energies[:, 1])
    np.testing.assert_array_equal(clf.predict(X), np.where(scores > 0, "dog", "cat"))


def test_prefit_lmnn_is_used_as_is():
    X, y = make_data(5)
    lmnn = LMNN(random_state=0).fit(X, y)
    before = lmnn.components_.copy()
    clf = EnergyClassifier(lmnn).fit(X[:45], y[:45])
    assert clf.lmnn_ is lmnn
    np.testing.assert_array_equal(lmnn.components_, before)
    np.testing.assert_array_equal(
        clf.target_neighbors_, reference.target_neighbors(X[:45], y[:45], 3)
    )


def test_unfitted_lmnn_is_cloned_not_modified():
    X, y = make_data(6)
    lmnn = LMNN(random_state=0)
    clf = EnergyClassifier(lmnn).fit(X, y)
    assert clf.lmnn_ is not lmnn
    assert not hasattr(lmnn, "components_")
    assert clf.lmnn_.components_.shape == (3, 3)


def test_fitted_here_or_before_gives_the_same_rule():
    # the training points' target neighbours are those of LMNN's first
    # pass, however many passes the metric was fitted with
    X, y = make_data(8, gap=1.0)
    lmnn = LMNN(n_passes=2, random_state=0)
    here = EnergyClassifier(lmnn).fit(X, y)
    assert here.lmnn_.n_passes_ == 2
    first_pass = reference.target_neighbors(X, y, 3)
    assert not np.array_equal(here.lmnn_.target_neighbors_, first_pass)
    np.testing.assert_array_equal(here.target_neighbors_, first_pass)
    before = EnergyClassifier(here.lmnn_).fit(X, y)
    np.testing.assert_allclose(before.energies(X), here.energies(X))


def test_default_metric_and_no_probabilities():
    X, y = make_data(7)
    clf = EnergyClassifier().fit(X, y)
    assert isinstance(clf.lmnn_, LMNN)
    assert not hasattr(clf, "predict_proba")


def test_errors():
    X, y = make_data(8)
    with pytest.raises(NotFittedError):
        EnergyClassifier().predict(X)
    lmnn = LMNN().fit(X, y)
    with pytest.raises(ValueError, match="features"):
        EnergyClassifier(lmnn).fit(X[:, :2], y)
    with pytest.raises(ValueError, match="class"):
        EnergyClassifier().fit(X, np.zeros_like(y))
    with pytest.raises(ValueError, match="lmnn"):
        EnergyClassifier(lmnn="LMNN").fit(X, y)
    clf = EnergyClassifier().fit(X, y)
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :2])


def test_predict_and_energies_work_on_dask_arrays_block_by_block():
    import dask.array as da
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    classifier = EnergyClassifier(LMNN(random_state=0)).fit(X, y)
    X_dask = da.from_array(X, chunks=(32, 4))
    predicted = classifier.predict(X_dask)
    assert isinstance(predicted, da.Array)
    np.testing.assert_array_equal(predicted.compute(), classifier.predict(X))
    np.testing.assert_allclose(
        classifier.energies(X_dask).compute(), classifier.energies(X)
    )


@pytest.mark.parametrize(
    "offset, dtype", [(1e10, np.float64), (1e6, np.float64), (1e5, np.float32)]
)
def test_rule_is_translation_invariant(offset, dtype):
    # a fixed metric: only the energy computations see the offset
    X, y = make_data(5, n_classes=2, gap=3.0)
    X = X.astype(dtype)
    lmnn = LMNN(n_neighbors=3, random_state=0).fit(X, y)
    near = EnergyClassifier(lmnn).fit(X, y)
    far = EnergyClassifier(lmnn).fit(X + dtype(offset), y)
    expected = near.predict(X)
    assert np.mean(expected == y) > 0.9
    np.testing.assert_array_equal(far.predict(X + dtype(offset)), expected)
    # the rounding of X + offset itself bounds the agreement of the scores
    spacing = float(np.spacing(dtype(offset)))
    scale = np.abs(near.decision_function(X)).max()
    np.testing.assert_allclose(
        far.decision_function(X + dtype(offset)),
        near.decision_function(X),
        atol=scale * 1e3 * spacing,
    )


def test_far_test_points_get_finite_scores_or_a_clear_error():
    X, y = make_data(6, n_classes=2, gap=3.0)
    hinge = EnergyClassifier(LMNN(loss="hinge", random_state=0)).fit(X, y)
    scores = hinge.decision_function(X * 1e300)
    assert np.all(np.isfinite(scores))
    # far along x, the rule picks the class whose points lie furthest that way
    assert np.all(np.isposinf(hinge.energies(X * 1e300)))
    far_right = np.zeros((1, 3))
    far_right[0, 0] = 1e300
    assert hinge.predict(far_right)[0] == 1
    assert hinge.predict(-far_right)[0] == 0
    squared = EnergyClassifier(LMNN(random_state=0)).fit(X, y)
    with pytest.raises(ValueError, match="too far from the training data"):
        squared.decision_function(X * 1e300)


def _small_class_energies(L, X, y, targets, X_test, n_classes, *, mu, loss):
    """The reference energies, with LMNN's rule for classes smaller than k:
    the test point is its own target in each missing slot, adding the push
    term h(1 - d(t, l)) for every point l of another class."""
    expected = reference.energies(L, X, y, targets, X_test, n_classes, mu=mu, loss=loss)
    k = targets.shape[1]
    d = (((X_test @ L.T)[:, None, :] - (X @ L.T)[None, :, :]) ** 2).sum(-1)
    for c in range(n_classes):
        missing = max(k - np.count_nonzero(y == c), 0)
        own = reference.hinge(1.0 - d[:, y != c], loss).sum(axis=1)
        expected[:, c] += mu * missing * own
    return expected


def _tiny_class_data(seed, n_samples=40):
    # two classes of 19 along x, and a class of two points up the y axis
    X, y = make_data(seed, n_samples=n_samples, n_classes=2, gap=4.0)
    rng = np.random.RandomState(seed)
    X[-2:] = rng.standard_normal((2, 3)) * 0.3 + [0.0, 6.0, 0.0]
    y[-2:] = 2
    return X, y


@pytest.mark.parametrize("loss", ["squared_hinge", "hinge"])
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 1e-4)])
@pytest.mark.parametrize("mu", [0.3, 1.0])
def test_energy_kernel_with_classes_smaller_than_k(loss, dtype, rtol, mu):
    X, y = _tiny_class_data(0)
    y[-3] = 3  # and a class of one point
    X_test = np.vstack([make_data(1, n_samples=12)[0] * 3, X[-3:] + 0.1])
    rng = np.random.RandomState(0)
    L = rng.standard_normal((2, 3))
    targets = _choose_targets(X, y, 3, None)
    expected = _small_class_energies(L, X, y, targets, X_test, 4, mu=mu, loss=loss)
    Z = (X @ L.T).astype(dtype)
    target_sq = ((Z[:, None, :].astype(float) - Z[targets]) ** 2).sum(-1)
    assert np.all(target_sq[-3] == 0.0)  # the class of one is its own target
    got = lmnn_energies(
        (X_test @ L.T).astype(dtype),
        Z,
        y,
        4,
        target_sq,
        mu=mu,
        squared=loss == "squared_hinge",
        working_memory=1e-4,
    )
    np.testing.assert_allclose(
        got, expected, rtol=rtol, atol=rtol * abs(expected).max()
    )


def test_classes_smaller_than_k_are_kept_with_a_warning():
    X, y = _tiny_class_data(3)
    X_test, y_test = _tiny_class_data(4)
    with pytest.warns(UserWarning, match="1 classes have n_neighbors=3 members"):
        clf = EnergyClassifier(LMNN(random_state=0)).fit(X, y)
    np.testing.assert_array_equal(clf.target_neighbors_[-1], [38, 39, 39])
    energies = clf.energies(X_test)
    assert np.all(np.isfinite(energies))
    assert np.all(np.isfinite(clf.decision_function(X_test)))
    # the small class is predicted where it lies, and only there
    predicted = clf.predict(X_test)
    np.testing.assert_array_equal(predicted[-2:], [2, 2])
    assert np.mean(predicted[:-2] == y_test[:-2]) >= 0.9
    assert np.count_nonzero(predicted[:-2] == 2) <= 1
    # the rule is the reference's, with t its own target in the missing slot
    lmnn = clf.lmnn_
    centred = X - X.mean(axis=0)
    expected = _small_class_energies(
        lmnn.components_,
        centred,
        y,
        clf.target_neighbors_,
        X_test - X.mean(axis=0),
        3,
        mu=0.5,
        loss="squared_hinge",
    )
    np.testing.assert_allclose(energies, expected, rtol=1e-8)
    # a fitted metric is used as it is; the classifier warns itself
    with pytest.warns(UserWarning, match="fewer target neighbours"):
        prefit = EnergyClassifier(lmnn).fit(X, y)
    np.testing.assert_array_equal(prefit.predict(X_test), predicted)


def test_far_points_with_a_small_class_get_a_clear_error_not_nan():
    X, y = _tiny_class_data(5)
    with pytest.warns(UserWarning, match="fewer target neighbours"):
        clf = EnergyClassifier(LMNN(loss="hinge", random_state=0)).fit(X, y)
    # the larger classes pull a far point by more distances: beyond float64
    with pytest.raises(ValueError, match="too far from the training data"):
        clf.predict(X * 1e300)
    # moderately far: finite, and the small class wins (fewer pulls)
    far = X[:3] * 1e50
    assert np.all(np.isfinite(clf.decision_function(far)))
    np.testing.assert_array_equal(clf.predict(far), [2, 2, 2])
