import numpy as np
import pytest
from sklearn.decomposition import PCA

from linmetric import Whitening


@pytest.fixture
def correlated_data():
    rng = np.random.RandomState(0)
    mixing = rng.standard_normal((5, 5)) + 3 * np.eye(5)
    return rng.standard_normal((400, 5)) @ mixing + 7.0


@pytest.mark.parametrize("method", ["pca", "zca"])
def test_whitened_training_data_has_identity_covariance(correlated_data, method):
    Z = Whitening(method=method).fit_transform(correlated_data)
    np.testing.assert_allclose(np.cov(Z, rowvar=False), np.eye(5), atol=1e-8)


def test_pca_whitening_matches_sklearn_pca_up_to_sign_and_mean(correlated_data):
    ours = Whitening(method="pca", n_components=3).fit(correlated_data)
    Z = ours.transform(correlated_data) - ours.mean_ @ ours.components_.T
    reference = PCA(n_components=3, whiten=True).fit_transform(correlated_data)
    signs = np.sign(np.sum(Z * reference, axis=0))
    np.testing.assert_allclose(Z * signs, reference, atol=1e-8)
    np.testing.assert_allclose(
        ours.explained_variance_,
        PCA(n_components=3).fit(correlated_data).explained_variance_,
    )


def test_zca_map_is_symmetric_and_squares_to_inverse_covariance(correlated_data):
    zca = Whitening(method="zca").fit(correlated_data)
    L = zca.components_
    np.testing.assert_allclose(L, L.T, atol=1e-12)
    np.testing.assert_allclose(
        zca.get_mahalanobis_matrix(),
        np.linalg.inv(np.cov(correlated_data, rowvar=False)),
        rtol=1e-8,
    )


def test_fractional_n_components_keeps_enough_variance():
    rng = np.random.RandomState(1)
    X = rng.standard_normal((300, 6)) * np.array([10, 5, 2, 1, 0.1, 0.01])
    whitening = Whitening(n_components=0.95).fit(X)
    ratio = whitening.explained_variance_ratio_
    assert ratio.sum() >= 0.95
    assert ratio[:-1].sum() < 0.95  # one direction fewer would not be enough
    assert whitening.components_.shape == (whitening.n_components_, 6)


def test_more_features_than_samples_gives_finite_floored_map():
    rng = np.random.RandomState(2)
    X = rng.standard_normal((10, 40))
    whitening = Whitening(regularization=1e-3).fit(X)
    assert whitening.components_.shape == (10, 40)
    assert np.all(np.isfinite(whitening.components_))
    # The 10 centred samples span 9 directions; those are whitened exactly,
    # the last one is rank noise and only gets the floor.
    Z = whitening.transform(X)
    np.testing.assert_allclose(np.cov(Z[:, :9], rowvar=False), np.eye(9), atol=1e-8)
    scales = np.linalg.norm(whitening.components_, axis=1)
    assert scales[-1] <= 1 / np.sqrt(1e-3 * whitening.explained_variance_[0]) * (
        1 + 1e-9
    )


def test_regularization_floor_limits_scaling_of_flat_directions():
    rng = np.random.RandomState(3)
    X = rng.standard_normal((200, 3)) * np.array([1.0, 1.0, 1e-6])
    floor = 1e-4
    whitening = Whitening(regularization=floor).fit(X)
    largest = whitening.explained_variance_[0]
    scales = np.linalg.norm(whitening.components_, axis=1)
    np.testing.assert_allclose(scales[-1], 1 / np.sqrt(floor * largest))


def test_constant_data_falls_back_to_a_finite_map():
    X = np.ones((20, 3))
    whitening = Whitening().fit(X)
    assert np.all(np.isfinite(whitening.transform(X)))


def test_float32_is_kept(correlated_data):
    X32 = correlated_data.astype(np.float32)
    whitening = Whitening(method="zca").fit(X32)
    assert whitening.components_.dtype == np.float32
    assert whitening.transform(X32).dtype == np.float32
    np.testing.assert_allclose(
        np.cov(whitening.transform(X32), rowvar=False), np.eye(5), atol=1e-4
    )


def test_too_many_components_is_a_clear_error():
    X = np.random.RandomState(0).standard_normal((5, 8))
    with pytest.raises(
        ValueError, match=r"n_components=6 is out of range.*at most .* = 5"
    ):
        Whitening(n_components=6).fit(X)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (
            {"method": "pcb"},
            "'method' parameter of Whitening must be a str among 'pca', 'zca'; got 'pcb'",
        ),
        ({"n_components": 0}, "'n_components' parameter"),
        ({"n_components": 1.5}, "'n_components' parameter"),
        ({"regularization": -1.0}, "'regularization' parameter"),
    ],
)
def test_invalid_parameters_are_named(params, match):
    with pytest.raises(ValueError, match=match):
        Whitening(**params).fit(np.eye(4))
