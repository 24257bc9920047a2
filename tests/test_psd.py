import numpy as np
import pytest

from linmetric._psd import check_spd, components_from_metric


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_positive_definite_matrix_is_factored(dtype):
    A = np.random.RandomState(0).standard_normal((5, 5))
    M = (A @ A.T + np.eye(5)).astype(dtype)
    L = components_from_metric(M)
    assert L.dtype == dtype
    np.testing.assert_allclose(L.T @ L, M, rtol=1e-4 if dtype == np.float32 else 1e-10)


def test_semidefinite_matrix_gives_a_rank_deficient_map():
    A = np.random.RandomState(1).standard_normal((2, 5))
    M = A.T @ A  # rank 2
    L = components_from_metric(M)
    assert L.shape == (5, 5)
    np.testing.assert_allclose(L.T @ L, M, atol=1e-10)
    assert np.linalg.matrix_rank(L, tol=1e-8) == 2
    # rank-aware: the non-zero rows come first
    np.testing.assert_allclose(L[2:], 0, atol=1e-7)


def test_indefinite_matrix_is_rejected():
    with pytest.raises(
        ValueError, match="not positive semi-definite: its smallest eigenvalue is -1"
    ):
        components_from_metric(np.diag([1.0, -1.0]))
    with pytest.raises(ValueError, match="square"):
        components_from_metric(np.ones((2, 3)))


def test_check_spd_names_the_parameter_and_the_rule():
    assert check_spd(np.eye(3), param_name="prior").shape == (3, 3)
    with pytest.raises(
        ValueError, match=r"prior must have shape \(4, 4\); got shape \(3, 3\)"
    ):
        check_spd(np.eye(3), param_name="prior", n_features=4)
    with pytest.raises(ValueError, match="prior must be symmetric"):
        check_spd(np.array([[1.0, 0.5], [0.0, 1.0]]), param_name="prior")
    with pytest.raises(
        ValueError,
        match="prior must be positive definite; its smallest eigenvalue is 0",
    ):
        check_spd(np.diag([1.0, 0.0]), param_name="prior")
    with pytest.raises(ValueError, match="NaN"):
        check_spd(np.array([[np.nan, 0], [0, 1.0]]), param_name="prior")


def test_rank_rule_is_relative_to_the_largest_eigenvalue():
    from linmetric._psd import numerical_rank, rank_tolerance

    spectrum = np.array([1.0, 1e-3, 1e-17])
    for scale in (1e-250, 1.0, 1e250):
        assert numerical_rank(spectrum * scale) == 2
    assert numerical_rank(np.array([1.0, 1e-9]), dtype=np.float32) == 1
    assert numerical_rank(np.array([1.0, 1e-9])) == 2
    assert rank_tolerance([]) == 0.0
    assert numerical_rank(np.zeros(3)) == 0


@pytest.mark.parametrize("scale", [1e-250, 1e250])
@pytest.mark.parametrize("singular", [False, True])
def test_components_from_metric_at_extreme_scales(scale, singular):
    rng = np.random.RandomState(0)
    A = rng.standard_normal((4, 4))
    if singular:
        A[3] = 0
    M = A.T @ A
    L = components_from_metric(M * scale)
    assert np.all(np.isfinite(L))
    np.testing.assert_allclose(L.T @ L / scale, M, atol=1e-10 * np.abs(M).max())
