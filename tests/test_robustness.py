"""Hard inputs for every public estimator, generated with hypothesis.

Every estimator in ``linmetric.__all__`` is enrolled automatically, as in
``test_common.py`` (both take the list, and the arguments of constructors
with required parameters, from ``tests/learners.py``). Inputs are drawn
from families that broke learners before: degenerate data (duplicates,
constant or collinear features, fewer samples than features), extreme
scales and offsets, float32 and float64,
lists, DataFrames and Fortran-ordered arrays, odd labels, NaN and inf
parameters, pair constraints, refits. Each case must give a correct,
finite result of the input's dtype, or a ValueError / TypeError raised by
linmetric's own checks (or scikit-learn's input validation) that says what
is wrong; never NaN or inf out of finite input, never an error from deep
inside NumPy, SciPy or scikit-learn. Shifting, rescaling and permuting the
data must not change the learned neighbours where the method promises it.

Profiles. The default profile runs a few examples per test with a fixed
seed, so that CI stays quick and deterministic (about a minute on two
cores). A longer, randomised search runs with

    LINMETRIC_HYPOTHESIS_PROFILE=long python -m pytest tests/test_robustness.py
"""

import numbers
import os
import traceback

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from learners import public_classes, required_arguments
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.neighbors import NearestNeighbors

import linmetric
from linmetric import MetricLearner
from linmetric._params import Interval

settings.register_profile(
    "default",
    max_examples=6,
    deadline=None,
    derandomize=True,
    print_blob=True,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # no shrinking in CI
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "long",
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
PROFILE = os.environ.get("LINMETRIC_HYPOTHESIS_PROFILE", "default")
settings.load_profile(PROFILE)
# Examples per test: a base count, multiplied in the long profile.
_FACTOR = 25 if PROFILE == "long" else 1


def examples(n):
    return settings(max_examples=n * _FACTOR)


# Arguments for constructors that have required parameters.

# Parameters that keep each fit small; applied where the estimator has them.
FAST_PARAMETERS = {"max_iter": 30, "random_state": 0}


def _fast(estimator):
    params = estimator.get_params(deep=False)
    estimator.set_params(
        **{name: value for name, value in FAST_PARAMETERS.items() if name in params}
    )
    for value in params.values():  # a nested learner, as in EnergyClassifier
        if isinstance(value, BaseEstimator):
            _fast(value)
    return estimator


def _instance(cls):
    return _fast(cls(**required_arguments(cls)))


# The families below are sample matrices: estimators of tuples (3-D input)
# have their own tests.
ESTIMATORS = [
    estimator
    for estimator in map(_instance, public_classes())
    if estimator.__sklearn_tags__().input_tags.two_d_array
]
IDS = [type(est).__name__ for est in ESTIMATORS]


# ------------------------------------------------------------------ data


def _blobs(seed, n_samples, n_features, n_classes, gap=4.0):
    rng = np.random.RandomState(seed)
    y = np.arange(n_samples) % n_classes
    centres = rng.standard_normal((n_classes, n_features)) * gap
    return centres[y] + rng.standard_normal((n_samples, n_features)), y


@st.composite
def degenerate_data(draw):
    """Labelled data with at least 4 samples per class, from one family."""
    seed = draw(st.integers(0, 2**16))
    n_classes = draw(st.integers(2, 3))
    n_samples = draw(st.integers(4 * n_classes, 24))
    family = draw(
        st.sampled_from(
            ["blobs", "duplicates", "constant", "collinear", "wide", "one_feature"]
        )
    )
    n_features = {"wide": n_samples + 3, "one_feature": 1}.get(
        family, draw(st.integers(2, 5))
    )
    X, y = _blobs(seed, n_samples, n_features, n_classes)
    if family == "duplicates":
        X[1::2] = X[::2][: X[1::2].shape[0]]
        y[1::2] = y[::2][: y[1::2].shape[0]]
        y[: 4 * n_classes] = np.arange(4 * n_classes) % n_classes
    elif family == "constant":
        X[:, 0] = 7.0
    elif family == "collinear":
        X[:, -1] = X[:, 0] * 3.0 - X[:, 1 % n_features]
    return family, X, y


def _as_container(X, container):
    if container == "list":
        return X.tolist()
    if container == "fortran":
        return np.asfortranarray(X)
    if container == "dataframe":
        pandas = pytest.importorskip("pandas")
        return pandas.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    return X


def _clear_error(error, estimator):
    """A ValueError/TypeError raised by linmetric or scikit-learn's checks."""
    assert isinstance(error, (ValueError, TypeError)), repr(error)
    assert not isinstance(error, np.linalg.LinAlgError), repr(error)
    frames = traceback.extract_tb(error.__traceback__)
    origin = frames[-1].filename.replace(os.sep, "/")
    assert "/linmetric/" in origin or "sklearn/utils/" in origin, (
        f"{type(estimator).__name__} raised {error!r} from {origin}"
    )
    assert len(str(error)) > 20, repr(error)


def _check_fitted(estimator, X, y, dtype):
    """A fitted estimator: finite output of the input's dtype."""
    if isinstance(estimator, MetricLearner):
        components = estimator.components_
        assert components.dtype == dtype
        assert np.all(np.isfinite(components))
        Z = estimator.transform(X)
        assert Z.dtype == dtype
        assert np.all(np.isfinite(Z))
        # float64 where a float32 map's M = L^T L leaves float32's range
        assert np.all(np.isfinite(estimator.get_mahalanobis_matrix()))
    if isinstance(estimator, ClassifierMixin):
        predicted = estimator.predict(X)
        assert set(np.unique(predicted)) <= set(np.unique(y))
        scores = getattr(estimator, "decision_function", None)
        if scores is None:
            scores = estimator.predict_proba
        assert np.all(np.isfinite(scores(X)))


def _fit(estimator, X, y):
    return estimator.fit(X, y)


# ---------------------------------------------------------- the properties


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
@given(
    data=degenerate_data(),
    scale=st.sampled_from([1e-150, 1e-30, 1e-4, 1.0, 1e4, 1e30, 1e150]),
    offset=st.sampled_from([0.0, 1.0, 1e3, 1e6]),
    dtype=st.sampled_from([np.float64, np.float32]),
    container=st.sampled_from(["array", "list", "fortran", "dataframe"]),
)
@examples(30)
def test_finite_result_or_clear_error(estimator, data, scale, offset, dtype, container):
    _family, X, y = data
    if dtype is np.float32:
        scale = float(np.clip(scale, 1e-12, 1e12))
        offset = min(offset, 1e3)
    X = _as_container((X * scale + offset * scale).astype(dtype), container)
    estimator = clone(estimator)
    try:
        _fit(estimator, X, y)
        _check_fitted(estimator, X, y, np.float64 if container == "list" else dtype)
    except (ValueError, TypeError) as error:
        _clear_error(error, estimator)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
@given(
    labels=st.sampled_from(
        [
            ("strings", np.array(["b", "a", "c"], dtype=object)),
            ("unicode", np.array(["x", "y", "z"])),
            ("negative", np.array([-5, -1, 3])),
            ("floats", np.array([0.5, 1.5, 2.5])),
            ("big", np.array([2**62, -(2**62), 7], dtype=np.int64)),
            ("bools", np.array([True, False, True])),
        ]
    ),
    seed=st.integers(0, 2**16),
)
@examples(6)
def test_odd_labels_are_kept(estimator, labels, seed):
    name, values = labels
    X, codes = _blobs(seed, 24, 3, 2 if name == "bools" else 3)
    y = values[codes]
    estimator = clone(estimator)
    try:
        estimator.fit(X, y)
    except (ValueError, TypeError) as error:
        _clear_error(error, estimator)
        return
    _check_fitted(estimator, X, y, np.float64)
    if isinstance(estimator, ClassifierMixin):
        assert set(estimator.classes_) == set(np.unique(y))


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
@pytest.mark.parametrize(
    "labels, message",
    [
        (np.array(["a", 1] * 12, dtype=object), "mixes labels"),
        (np.array(["a", None] * 12, dtype=object), "None"),
        (np.array([1.0, np.nan] * 12), "NaN|nan|continuous|Input"),
        (np.zeros(24), "one class|single|1 class|two classes|class"),
    ],
)
def test_bad_labels_are_clear_errors(estimator, labels, message):
    X, _ = _blobs(0, 24, 3, 2)
    estimator = clone(estimator)
    if not _needs_labels(estimator):
        pytest.skip("unsupervised: labels are ignored")
    if estimator.__sklearn_tags__().regressor_tags is not None:
        # real-valued targets: a constant y is valid, labels must be numbers
        if np.all(labels == labels[0]):
            pytest.skip("real-valued targets: a constant y is valid")
        message = "float|number|numeric|NaN"
    with pytest.raises((ValueError, TypeError), match=message) as info:
        estimator.fit(X, labels)
    _clear_error(info.value, estimator)


def _needs_labels(estimator):
    return estimator.__sklearn_tags__().target_tags.required


def _real_parameters():
    cases = []
    for estimator, name in zip(ESTIMATORS, IDS, strict=True):
        for param, constraints in type(estimator)._parameter_constraints.items():
            if any(
                isinstance(c, Interval) and c.kind is numbers.Real for c in constraints
            ):
                cases.append(pytest.param(estimator, param, id=f"{name}-{param}"))
    return cases


@pytest.mark.parametrize("estimator, param", _real_parameters())
@pytest.mark.parametrize("value", [np.nan, -np.inf])
def test_nan_parameters_are_rejected(estimator, param, value):
    X, y = _blobs(0, 24, 3, 2)
    estimator = clone(estimator).set_params(**{param: value})
    with pytest.raises(ValueError, match=f"'{param}' parameter"):
        estimator.fit(X, y)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
@given(seed=st.integers(0, 2**16), n_features=st.integers(1, 4))
@examples(3)
def test_refit_on_other_data_forgets_the_first(estimator, seed, n_features):
    X1, y1 = _blobs(seed, 24, 3, 2)
    X2, y2 = _blobs(seed + 1, 30, n_features, 3)
    estimator = clone(estimator)
    estimator.fit(X1, y1)
    estimator.fit(X2, y2)
    assert estimator.n_features_in_ == n_features
    _check_fitted(estimator, X2, y2, np.float64)
    refitted = clone(estimator).fit(X2, y2)
    if isinstance(estimator, MetricLearner):  # deterministic with a seed
        np.testing.assert_allclose(
            refitted.components_, estimator.components_, rtol=1e-7, atol=1e-9
        )


UNSUPERVISED = [
    pytest.param(est, id=name)
    for est, name in zip(ESTIMATORS, IDS, strict=True)
    if isinstance(est, MetricLearner) and not _needs_labels(est)
]


@pytest.mark.parametrize("estimator", UNSUPERVISED)
@given(
    seed=st.integers(0, 2**16),
    shape=st.sampled_from([(6, 12), (10, 50), (30, 4)]),
    degenerate=st.sampled_from(["wide", "collinear", "constant"]),
)
@examples(4)
def test_directions_without_variance_do_not_count(estimator, seed, shape, degenerate):
    # A metric learned from the data alone cannot know anything about the
    # directions in which the training data never varied: moving a point
    # along them must not move it in the learned space.
    n_samples, n_features = shape
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n_samples, n_features))
    if degenerate == "collinear":
        X[:, -1] = X[:, 0] - 2 * X[:, 1]
    elif degenerate == "constant":
        X[:, -1] = 3.0
    model = clone(estimator).fit(X)
    centred = X - X.mean(axis=0)
    _, singular, Vt = np.linalg.svd(centred, full_matrices=True)
    rank = int(np.sum(singular > singular[0] * 1e-10))
    null = Vt[rank:]
    if null.shape[0] == 0:
        return
    typical = np.linalg.norm(model.transform(centred), axis=1).mean()
    along_null = np.linalg.norm(model.transform(null), axis=1)
    assert np.all(along_null <= 1e-6 * typical)


# ----------------------------------------------------------- invariances


def _neighbours(estimator, X):
    if not isinstance(estimator, MetricLearner) and not hasattr(estimator, "lmnn_"):
        # a classifier with a metric per class: its own neighbour search of
        # its training points (each query point itself comes first)
        return estimator.kneighbors(X)[1][:, 1]
    # centred first: the search expands squared distances
    X = X - X.mean(axis=0)
    if isinstance(estimator, MetricLearner):
        Z = estimator.transform(X)
    else:
        Z = estimator.lmnn_.transform(X)
    # neighbours do not depend on a global scale; keep squared distances finite
    largest = np.abs(Z).max()
    if 0 < largest < np.inf:
        Z = Z / largest
    search = NearestNeighbors(n_neighbors=2).fit(Z)
    return search.kneighbors(Z, return_distance=False)[:, 1]


def _agreement(a, b):
    return float(np.mean(a == b))


def _shift_params():
    cases = []
    for estimator, name in zip(ESTIMATORS, IDS, strict=True):
        for offset in (1e3, 1e6, 1e10):
            cases.append(pytest.param(estimator, offset, id=f"{name}-{offset:g}"))
    return cases


@pytest.mark.parametrize("estimator, offset", _shift_params())
@given(seed=st.integers(0, 2**16))
@examples(3)
def test_shift_does_not_change_the_learned_neighbours(estimator, offset, seed):
    X, y = _blobs(seed, 30, 3, 2)
    near = clone(estimator).fit(X, y)
    far = clone(estimator).fit(X + offset, y)
    assert _agreement(_neighbours(near, X), _neighbours(far, X + offset)) >= 0.9
    if isinstance(near, ClassifierMixin):
        assert _agreement(near.predict(X), far.predict(X + offset)) >= 0.95


def _scale_params():
    return [
        pytest.param(estimator, scale, id=f"{name}-{scale:g}")
        for estimator, name in zip(ESTIMATORS, IDS, strict=True)
        for scale in (1e-3, 1e3, 1e-200, 1e-30, 1e30, 1e200)
    ]


@pytest.mark.parametrize("estimator, scale", _scale_params())
@given(seed=st.integers(0, 2**16))
@examples(2)
def test_rescaling_does_not_change_the_learned_neighbours(estimator, scale, seed):
    X, y = _blobs(seed, 30, 3, 2)
    base = clone(estimator).fit(X, y)
    scaled = clone(estimator).fit(X * scale, y)
    assert _agreement(_neighbours(base, X), _neighbours(scaled, X * scale)) >= 0.9


def _exact_scale_params():
    return [
        pytest.param(estimator, id=name)
        for estimator, name in zip(ESTIMATORS, IDS, strict=True)
    ]


@pytest.mark.parametrize("estimator", _exact_scale_params())
@given(seed=st.integers(0, 2**16), exponent=st.sampled_from([-600, -7, 9, 600]))
@examples(2)
def test_rescaling_by_a_power_of_two_rescales_the_output(estimator, seed, exponent):
    # Multiplying by a power of two changes no digit of the data, so a
    # learner that works in units of the data gives the same output, rescaled.
    X, y = _blobs(seed, 30, 3, 2)
    X_scaled = np.ldexp(X, exponent)
    base = clone(estimator).fit(X, y)
    scaled = clone(estimator).fit(X_scaled, y)
    if not isinstance(base, MetricLearner):
        if hasattr(base, "local_weights"):  # a metric per point: no map
            distances = base.kneighbors(X)[0]
            scaled_distances = scaled.kneighbors(X_scaled)[0]
            np.testing.assert_allclose(scaled_distances, distances, rtol=1e-9)
            return
        if not hasattr(base, "lmnn_"):  # one map per class
            L, L_scaled = base.components_, scaled.components_
            L, L_scaled = L / np.abs(L).max(), L_scaled / np.abs(L_scaled).max()
            np.testing.assert_allclose(L_scaled, L, rtol=0, atol=1e-9)
            return
        base, scaled = base.lmnn_, scaled.lmnn_
    Z, Z_scaled = base.transform(X), scaled.transform(X_scaled)
    Z, Z_scaled = Z / np.abs(Z).max(), Z_scaled / np.abs(Z_scaled).max()
    np.testing.assert_allclose(Z_scaled, Z, rtol=0, atol=1e-9)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
@given(seed=st.integers(0, 2**16))
@examples(3)
def test_permuting_features_does_not_change_the_learned_neighbours(estimator, seed):
    X, y = _blobs(seed, 30, 4, 2)
    order = np.random.RandomState(seed).permutation(4)
    base = clone(estimator).fit(X, y)
    permuted = clone(estimator).fit(X[:, order], y)
    assert _agreement(_neighbours(base, X), _neighbours(permuted, X[:, order])) >= 0.9


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
@given(seed=st.integers(0, 2**16))
@examples(3)
def test_permuting_samples_does_not_change_the_learned_neighbours(estimator, seed):
    if "n_constraints" in estimator.get_params():
        pytest.skip("constraints drawn at random by index: a permutation draws others")
    X, y = _blobs(seed, 30, 3, 2)
    order = np.random.RandomState(seed).permutation(30)
    base = clone(estimator).fit(X, y)
    permuted = clone(estimator).fit(X[order], y[order])
    # the neighbours of each sample, in the original numbering
    expected = _neighbours(base, X)[order]
    got = order[_neighbours(permuted, X[order])]
    assert _agreement(expected, got) >= 0.9


# ------------------------------------------- reproducers of reported faults


@pytest.fixture
def two_blobs():
    rng = np.random.RandomState(0)
    y = np.arange(60) % 2
    return rng.randn(2, 4)[y] * 3 + rng.randn(60, 4), y


@pytest.mark.parametrize(
    "offset, dtype", [(1e10, np.float64), (1e6, np.float64), (1e5, np.float32)]
)
def test_energy_classifier_far_from_the_origin(two_blobs, offset, dtype):
    X, y = two_blobs
    X = (X + offset).astype(dtype)
    clf = linmetric.EnergyClassifier(linmetric.LMNN(random_state=0)).fit(X, y)
    assert np.mean(clf.predict(X) == y) >= 0.95


def test_energy_classifier_at_extreme_scale_is_finite_or_clear(two_blobs):
    X, y = two_blobs
    clf = linmetric.EnergyClassifier(linmetric.LMNN()).fit(X * 1e150, y)
    try:
        scores = clf.decision_function(X * 1e150)
    except ValueError as error:
        assert "too far from the training data" in str(error)
    else:
        assert np.all(np.isfinite(scores))


def test_lmnn_at_extreme_scale_does_not_fail_inside_linalg(two_blobs):
    X, y = two_blobs
    try:
        model = linmetric.LMNN().fit(X * 1e200, y)
    except (ValueError, TypeError) as error:
        _clear_error(error, linmetric.LMNN())
    else:
        assert np.all(np.isfinite(model.components_))


def test_itml_feature_spanning_thirty_decades(two_blobs):
    X, y = two_blobs
    X[:, 3] = 10 ** np.random.RandomState(0).uniform(-15, 15, 60)
    with pytest.warns(UserWarning, match="standardise the features"):
        model = linmetric.ITML(random_state=0).fit(X, y)
    assert np.all(np.isfinite(model.components_))
    assert np.all(np.isfinite(model.transform(X)))


def test_itml_constraints_are_bounded(monkeypatch, two_blobs):
    from linmetric import _itml

    drawn = []
    sample = _itml.sample_label_pairs

    def recording(y_codes, n_constraints, random_state):
        drawn.append(n_constraints)
        return sample(y_codes, n_constraints, random_state)

    monkeypatch.setattr(_itml, "sample_label_pairs", recording)
    # 500 classes of one point: 20 c^2 = 5,000,000 drawn before, 124,750 pairs exist
    X = np.random.RandomState(0).randn(500, 5)
    linmetric.ITML(max_iter=1, random_state=0).fit(X, np.arange(500))
    assert drawn[-1] == 500 * 499 // 2
    # an explicit count beyond what exists: lowered, with a warning
    X, y = two_blobs
    with pytest.warns(UserWarning, match="n_constraints=100000000 is more than"):
        linmetric.ITML(n_constraints=10**8, random_state=0).fit(X, y)
    assert drawn[-1] == 60 * 59 // 2
    # memory: 256 MiB of differences for 784 features
    assert _itml.bounded_n_constraints(None, 100, 10**5, 784) == 42_799


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_small_classes_are_handled(estimator):
    X, y = _blobs(0, 26, 3, 2)
    y[-2:] = 2  # a class of two samples, fewer than n_neighbors + 1 = 4
    model = clone(estimator).fit(X, y)
    _check_fitted(model, X, y, np.float64)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
@pytest.mark.parametrize("n_features", [3, 30])
def test_classes_of_one_sample_are_handled(estimator, n_features):
    # Classes of one sample have no same-class pair: they can still serve as
    # impostors or dissimilar points, and must not stop the fit.
    X, y = _blobs(1, 26, n_features, 2)
    y[-1], y[-2] = 2, 3
    model = clone(estimator).fit(X, y)
    _check_fitted(model, X, y, np.float64)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_fewer_samples_than_features_with_defaults(estimator):
    X, y = _blobs(0, 12, 20, 2)
    model = clone(estimator).fit(X, y)
    _check_fitted(model, X, y, np.float64)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
@pytest.mark.parametrize("value", [0.0, -7.0, 1e300])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_constant_data_gives_a_result_or_a_value_error(estimator, value, dtype):
    # Every sample the same point (zero included): nothing to learn, which a
    # learner may say with a ValueError, never with a TypeError or a crash
    # from inside its arithmetic.
    if dtype is np.float32:
        value = float(np.clip(value, -1e30, 1e30))
    X = np.full((20, 3), value, dtype=dtype)
    y = np.arange(20) % 2
    estimator = clone(estimator)
    try:
        estimator.fit(X, y)
    except ValueError as error:
        _clear_error(error, estimator)
        return
    _check_fitted(estimator, X, y, dtype)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
@pytest.mark.parametrize("dtype, scale", [(np.float64, 1e-310), (np.float32, 1e-41)])
def test_data_too_small_for_its_map_is_a_clear_error(estimator, dtype, scale):
    # Below the smallest normal number, a map to unit scale (entries about
    # 1 / scale) overflows: a finite fit (some learners do not scale with
    # the data), or a clear ValueError and no map kept, never inf or NaN.
    X, y = _blobs(0, 24, 3, 2)
    X = (X * scale).astype(dtype)
    estimator = clone(estimator)
    try:
        estimator.fit(X, y)
    except ValueError as error:
        _clear_error(error, estimator)
        components = getattr(estimator, "components_", None)
        assert components is None or np.all(np.isfinite(components))
        return
    _check_fitted(estimator, X, y, dtype)
