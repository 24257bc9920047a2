import numpy as np
import pytest
from sklearn.covariance import LedoitWolf

from linmetric import Covariance


def test_full_rank_metric_is_the_inverse_covariance():
    rng = np.random.RandomState(0)
    X = rng.standard_normal((300, 4)) @ rng.standard_normal((4, 4))
    metric = Covariance().fit(X)
    np.testing.assert_allclose(
        metric.get_mahalanobis_matrix(),
        np.linalg.inv(np.cov(X, rowvar=False)),
        rtol=1e-8,
    )
    assert metric.rank_ == 4
    assert metric.shrinkage_ == 0.0
    np.testing.assert_allclose(metric.components_, metric.components_.T, atol=1e-10)


def test_singular_covariance_uses_the_pseudo_inverse():
    rng = np.random.RandomState(1)
    base = rng.standard_normal((100, 2))
    # the third feature is the sum of the first two: the covariance has rank 2
    X = np.column_stack([base, base.sum(axis=1)])
    metric = Covariance().fit(X)
    assert metric.rank_ == 2
    np.testing.assert_allclose(
        metric.get_mahalanobis_matrix(),
        np.linalg.pinv(np.cov(X, rowvar=False)),
        atol=1e-8,
    )
    # a difference along the direction the data never varies in costs nothing
    null_direction = np.array([1.0, 1.0, -1.0])
    assert metric.pair_distance([[np.zeros(3), null_direction]])[0] == pytest.approx(
        0, abs=1e-7
    )


def test_more_features_than_samples_is_handled():
    X = np.random.RandomState(2).standard_normal((6, 20))
    metric = Covariance().fit(X)
    assert metric.rank_ == 5
    assert np.all(np.isfinite(metric.components_))


def test_fixed_shrinkage_inverts_the_shrunk_covariance():
    rng = np.random.RandomState(3)
    X = rng.standard_normal((8, 12))
    metric = Covariance(shrinkage=0.3).fit(X)
    sigma = np.cov(X, rowvar=False)
    shrunk = 0.7 * sigma + 0.3 * np.trace(sigma) / 12 * np.eye(12)
    np.testing.assert_allclose(metric.covariance_, shrunk, atol=1e-10)
    np.testing.assert_allclose(
        metric.get_mahalanobis_matrix(), np.linalg.inv(shrunk), rtol=1e-6
    )
    assert metric.rank_ == 12


def test_ledoit_wolf_shrinkage_matches_sklearn():
    rng = np.random.RandomState(4)
    X = rng.standard_normal((30, 10)) @ rng.standard_normal((10, 10))
    metric = Covariance(shrinkage="ledoit_wolf").fit(X)
    reference = LedoitWolf().fit(X)
    assert metric.shrinkage_ == pytest.approx(reference.shrinkage_)
    # scikit-learn divides by n, np.cov by n - 1; the inverse differs by that ratio
    np.testing.assert_allclose(
        metric.get_mahalanobis_matrix() * 30 / 29,
        np.linalg.inv(reference.covariance_),
        rtol=1e-6,
    )


def test_float32_is_kept():
    X = np.random.RandomState(5).standard_normal((50, 3)).astype(np.float32)
    metric = Covariance().fit(X)
    assert metric.components_.dtype == np.float32
    assert metric.transform(X).dtype == np.float32


def test_invalid_shrinkage_is_named():
    with pytest.raises(ValueError, match="'shrinkage' parameter of Covariance"):
        Covariance(shrinkage=2.0).fit(np.eye(3))


def test_nan_shrinkage_is_named():
    with pytest.raises(ValueError, match=r"'shrinkage' parameter.*got nan"):
        Covariance(shrinkage=np.nan).fit(np.eye(3))


@pytest.mark.parametrize("scale", [1e-200, 1e-100, 1e100, 1e200])
@pytest.mark.parametrize("shrinkage", [None, 0.1, "ledoit_wolf"])
def test_map_scales_with_the_data_at_any_finite_scale(scale, shrinkage):
    rng = np.random.RandomState(0)
    X = rng.standard_normal((60, 4)) @ rng.standard_normal((4, 4)) + 5.0
    reference = Covariance(shrinkage=shrinkage).fit(X)
    scaled = Covariance(shrinkage=shrinkage).fit(X * scale)
    assert scaled.rank_ == 4
    np.testing.assert_allclose(
        scaled.components_ * scale, reference.components_, rtol=1e-8, atol=1e-12
    )
    np.testing.assert_allclose(scaled.shrinkage_, reference.shrinkage_, rtol=1e-8)


def test_float32_tiny_data_gives_a_finite_map():
    rng = np.random.RandomState(1)
    X = (rng.standard_normal((60, 4)) * 1e-30).astype(np.float32)
    metric = Covariance().fit(X)
    assert metric.components_.dtype == np.float32
    Z = metric.transform(X)
    assert np.all(np.isfinite(Z))
    np.testing.assert_allclose(np.cov(Z, rowvar=False), np.eye(4), atol=1e-4)
