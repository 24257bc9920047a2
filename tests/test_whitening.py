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


def test_more_features_than_samples_drops_the_directions_without_variance():
    rng = np.random.RandomState(2)
    X = rng.standard_normal((10, 40))
    whitening = Whitening(regularization=1e-3).fit(X)
    # The 10 centred samples span 9 directions: those are whitened exactly and
    # the others are dropped, not scaled by 1 / sqrt(floor).
    assert whitening.components_.shape == (9, 40)
    assert np.all(np.isfinite(whitening.components_))
    Z = whitening.transform(X)
    np.testing.assert_allclose(np.cov(Z, rowvar=False), np.eye(9), atol=1e-8)


@pytest.mark.parametrize("method", ["pca", "zca"])
def test_zero_variance_directions_do_not_dominate_distances(method):
    # fewer samples than features: held-out differences have components
    # along directions the training data never varied in
    rng = np.random.RandomState(1)
    X, held_out = rng.randn(10, 50), rng.randn(20, 50)
    whitening = Whitening(method=method).fit(X)
    norms = np.linalg.norm(whitening.components_, axis=1)
    assert norms.max() < 1.0
    # an explicit n_components beyond the rank gets zero rows
    padded = Whitening(method=method, n_components=10).fit(X)
    assert padded.n_components_ == 10
    np.testing.assert_allclose(
        padded.transform(held_out) @ padded.transform(held_out).T,
        whitening.transform(held_out) @ whitening.transform(held_out).T,
        atol=1e-10,
    )


def test_collinear_and_constant_features_are_dropped():
    rng = np.random.RandomState(4)
    base = rng.randn(50, 2)
    X = np.c_[base, base @ [1.0, 3.0], np.full(50, 7.0)]
    whitening = Whitening().fit(X)
    assert whitening.n_components_ == 2
    # moving along the constant feature changes no distance
    np.testing.assert_allclose(whitening.components_[:, 3], 0, atol=1e-12)


@pytest.mark.parametrize("scale", [1e-200, 1e-100, 1e100, 1e200])
@pytest.mark.parametrize("method", ["pca", "zca"])
def test_map_scales_with_the_data_at_any_finite_scale(correlated_data, scale, method):
    reference = Whitening(method=method).fit(correlated_data)
    scaled = Whitening(method=method).fit(correlated_data * scale)
    np.testing.assert_allclose(
        scaled.components_ * scale, reference.components_, rtol=1e-9, atol=1e-12
    )
    assert np.all(np.isfinite(scaled.transform(correlated_data * scale)))


def test_float32_tiny_data_gives_a_finite_map(correlated_data):
    X = (correlated_data * 1e-30).astype(np.float32)
    whitening = Whitening(method="zca").fit(X)
    assert whitening.components_.dtype == np.float32
    Z = whitening.transform(X)
    assert np.all(np.isfinite(Z))
    np.testing.assert_allclose(np.cov(Z, rowvar=False), np.eye(5), atol=1e-3)


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
        ({"regularization": np.nan}, r"'regularization' parameter.*got nan"),
        ({"regularization": np.inf}, r"'regularization' parameter.*got inf"),
        ({"n_components": np.nan}, r"'n_components' parameter.*got nan"),
    ],
)
def test_invalid_parameters_are_named(params, match):
    with pytest.raises(ValueError, match=match):
        Whitening(**params).fit(np.eye(4))
