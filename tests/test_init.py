import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.decomposition import PCA

from linmetric import LMNN, NCA, EnergyClassifier
from linmetric._init import initialize_components, resolve_n_components


@pytest.fixture
def iris():
    X, y = load_iris(return_X_y=True)
    return X, y


def test_resolve_n_components_defaults_and_bounds():
    assert resolve_n_components(None, 5) == 5
    assert resolve_n_components(None, 5, max_components=3) == 3
    assert resolve_n_components(2, 5) == 2
    with pytest.raises(
        ValueError, match=r"n_components=6 is out of range: it must be between 1 and 5"
    ):
        resolve_n_components(6, 5)
    with pytest.raises(ValueError, match="n_components=0"):
        resolve_n_components(0, 5)
    with pytest.raises(TypeError, match="n_components must be an int"):
        resolve_n_components(2.5, 5)


@pytest.mark.parametrize("init", ["identity", "pca", "lda", "random"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_method_gives_the_right_shape_and_dtype(iris, init, dtype):
    X, y = iris
    L = initialize_components(
        init, X.astype(dtype), y, n_components=2, random_state=np.random.RandomState(0)
    )
    assert L.shape == (2, 4)
    assert L.dtype == dtype
    assert L.flags.c_contiguous


def test_pca_rows_are_the_principal_directions(iris):
    X, y = iris
    L = initialize_components(
        "pca", X, y, n_components=2, random_state=np.random.RandomState(0)
    )
    np.testing.assert_allclose(np.abs(L), np.abs(PCA(2).fit(X).components_), atol=1e-10)


def test_random_uses_the_given_generator(iris):
    X, y = iris
    first = initialize_components(
        "random", X, y, n_components=3, random_state=np.random.RandomState(7)
    )
    second = initialize_components(
        "random", X, y, n_components=3, random_state=np.random.RandomState(7)
    )
    np.testing.assert_array_equal(first, second)


def test_auto_follows_the_nca_rule(iris):
    X, y = iris
    rng = np.random.RandomState(0)
    lda = initialize_components("lda", X, y, n_components=2, random_state=rng)
    np.testing.assert_allclose(
        initialize_components("auto", X, y, n_components=2, random_state=rng), lda
    )
    pca = initialize_components("pca", X, y, n_components=3, random_state=rng)
    np.testing.assert_allclose(
        np.abs(initialize_components("auto", X, y, n_components=3, random_state=rng)),
        np.abs(pca),
    )
    np.testing.assert_array_equal(
        initialize_components("auto", X, y, n_components=4, random_state=rng), np.eye(4)
    )


def test_array_init_is_used_as_given_and_shape_checked(iris):
    X, y = iris
    init = np.arange(8.0).reshape(2, 4)
    L = initialize_components(
        init, X, y, n_components=2, random_state=np.random.RandomState(0)
    )
    np.testing.assert_array_equal(L, init)
    assert L is not init
    with pytest.raises(
        ValueError,
        match=r"init has shape \(3, 4\), but it must have shape \(n_components, n_features\) = \(2, 4\)",
    ):
        initialize_components(np.ones((3, 4)), X, y, n_components=2, random_state=None)


def test_bad_init_values_are_clear_errors(iris):
    X, y = iris
    with pytest.raises(ValueError, match="init must be one of"):
        initialize_components("svd", X, y, n_components=2, random_state=None)
    with pytest.raises(
        ValueError,
        match=r"init='lda' gives at most min\(n_features, n_classes - 1\) = 2",
    ):
        initialize_components("lda", X, y, n_components=3, random_state=None)
    with pytest.raises(ValueError, match="init='pca' gives at most"):
        initialize_components("pca", X[:3], y[:3], n_components=4, random_state=None)


@pytest.mark.parametrize("learner", [LMNN, NCA])
def test_zero_or_overflowing_array_init_is_a_clear_error(learner):
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match="init is all zeros"):
        learner(init=np.zeros((4, 4))).fit(X, y)
    with pytest.raises(ValueError, match=r"init has entries up to 1e\+200.*overflows"):
        learner(init=1e200 * np.eye(4)).fit(X, y)
    if learner is LMNN:
        with pytest.raises(ValueError, match="init is all zeros"):
            EnergyClassifier(learner(init=np.zeros((4, 4)))).fit(X, y)


def test_constant_data_starts_or_says_why():
    X, y = np.ones((40, 4)), np.arange(40) % 2
    rng = np.random.RandomState(0)
    # 'auto' moves on from LDA and PCA, which have no direction to offer
    start = initialize_components("auto", X, y, n_components=1, random_state=rng)
    np.testing.assert_array_equal(start, [[1.0, 0.0, 0.0, 0.0]])
    assert NCA(n_components=1).fit(X, y).components_.shape == (1, 4)
    with pytest.raises(ValueError, match="init='lda' could not find 1 discriminant"):
        initialize_components("lda", X, y, n_components=1, random_state=rng)
    with pytest.raises(ValueError, match="init='pca' needs X with varying features"):
        initialize_components("pca", X, y, n_components=1, random_state=rng)


@pytest.mark.parametrize("scale", [1e-200, 1e200])
@pytest.mark.parametrize("init", ["pca", "lda"])
def test_pca_and_lda_starts_work_at_any_scale(iris, init, scale):
    X, y = iris
    rng = np.random.RandomState(0)
    reference = initialize_components(init, X, y, n_components=2, random_state=rng)
    scaled = initialize_components(init, X * scale, y, n_components=2, random_state=rng)
    # PCA rows are unit directions; LDA directions scale as 1 / scale
    factor = scale if init == "lda" else 1.0
    np.testing.assert_allclose(scaled * factor, reference, rtol=1e-6, atol=1e-9)
