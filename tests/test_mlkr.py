import numpy as np
import pytest
from scipy.optimize import check_grad
from sklearn.datasets import make_friedman1

from linmetric import MLKR
from linmetric._kernels.mlkr import loo_kernel_regression
from linmetric._mlkr import loss_and_gradient
from linmetric.reference import mlkr as reference

# Short fits on purpose: they stop at max_iter.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _problem(seed, n=40, d=5, k=3):
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n, d)) * rng.uniform(0.5, 2, d) + rng.standard_normal(d)
    y = np.sin(X[:, 0]) + 0.3 * X[:, 1] + 0.1 * rng.standard_normal(n)
    A = rng.standard_normal((k, d)) * 0.4
    return X, y, A


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "blocks"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_loss_and_gradient_match_reference(seed, fused):
    X, y, A = _problem(seed)
    # a tiny budget forces blocks of a few rows
    loss, grad = loss_and_gradient(A, X, y, working_memory=2e-4, fused=fused)
    assert loss == pytest.approx(reference.loss(A, X, y), rel=1e-12)
    expected = reference.gradient(A, X, y)
    np.testing.assert_allclose(
        grad, expected, rtol=0, atol=1e-10 * np.abs(expected).max()
    )


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_gradient_matches_finite_differences(seed):
    X, y, A = _problem(seed)

    def loss(flat):
        return loss_and_gradient(flat.reshape(A.shape), X, y)[0]

    def grad(flat):
        return loss_and_gradient(flat.reshape(A.shape), X, y)[1].ravel()

    error = check_grad(loss, grad, A.ravel(), epsilon=1e-7)
    assert error < 1e-5 * max(1.0, np.linalg.norm(grad(A.ravel())))


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "blocks"])
def test_far_points_do_not_overflow(fused):
    X, y, A = _problem(0)
    loss, grad = loss_and_gradient(A * 1e3, X, y, fused=fused)  # kernels underflow
    assert np.isfinite(loss) and np.all(np.isfinite(grad))


def test_fused_kernel_does_not_depend_on_threads():
    X, y, A = _problem(1, n=300)
    Z = X @ A.T
    one = loo_kernel_regression(Z, y, n_threads=1)
    four = loo_kernel_regression(Z, y, n_threads=4)
    np.testing.assert_array_equal(one[0], four[0])  # rows are independent
    np.testing.assert_allclose(one[1], four[1], rtol=1e-12, atol=1e-12)


@pytest.fixture(scope="module")
def friedman():
    X, y = make_friedman1(n_samples=150, n_features=6, random_state=0)
    return X, y


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fit_lowers_the_loss_and_keeps_dtype(friedman, dtype):
    X, y = friedman
    mlkr = MLKR(n_components=3, max_iter=30, random_state=0).fit(X.astype(dtype), y)
    assert mlkr.components_.dtype == dtype
    assert mlkr.loss_curve_[-1] < 0.7 * mlkr.loss_curve_[0]
    normalised = reference.loss(mlkr.components_.astype(np.float64), X, y) / np.sum(
        (y - y.mean()) ** 2
    )
    assert normalised == pytest.approx(mlkr.loss_curve_[-1], rel=1e-3)


def test_float32_and_float64_fits_agree(friedman):
    X, y = friedman
    fit64 = MLKR(n_components=2, max_iter=15, random_state=0).fit(X, y)
    fit32 = MLKR(n_components=2, max_iter=15, random_state=0).fit(
        X.astype(np.float32), y
    )
    np.testing.assert_allclose(
        fit32.components_, fit64.components_, rtol=1e-3, atol=1e-3
    )


def test_invariances(friedman):
    X, y = friedman
    kwargs = dict(n_components=2, max_iter=15, random_state=0)
    base = MLKR(**kwargs).fit(X, y)
    shifted = MLKR(**kwargs).fit(X + 10.0, y)
    np.testing.assert_allclose(shifted.components_, base.components_, atol=1e-6)
    scaled = MLKR(**kwargs).fit(X * 100.0, y * 1e-3)  # units of X and of y
    np.testing.assert_allclose(
        scaled.components_ * 100.0, base.components_, rtol=1e-5, atol=1e-6
    )
    order = np.random.RandomState(0).permutation(X.shape[0])
    permuted = MLKR(n_components=2, init="identity", max_iter=15).fit(
        X[order], y[order]
    )
    identity = MLKR(n_components=2, init="identity", max_iter=15).fit(X, y)
    np.testing.assert_allclose(permuted.components_, identity.components_, atol=1e-6)


def test_start_scale(friedman):
    X, y = friedman
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    # standardised data and identity init: the start is the identity
    raw = MLKR(init="identity", init_scale=None, max_iter=1).fit(X, y)
    auto = MLKR(init="identity", max_iter=1).fit(X, y)
    np.testing.assert_allclose(auto.components_, raw.components_, rtol=1e-6)


def test_bad_input_is_a_clear_error():
    X = np.random.RandomState(0).standard_normal((10, 3))
    with pytest.raises(ValueError, match="init"):
        MLKR(init="lda").fit(X, np.arange(10.0))
    with pytest.raises(ValueError, match=r"could not convert|numeric"):
        MLKR().fit(X, np.array(["a", "b"] * 5))
    with pytest.raises(ValueError, match="n_components=4"):
        MLKR(n_components=4).fit(X, np.arange(10.0))


def test_regression_tags():
    tags = MLKR().__sklearn_tags__()
    assert tags.target_tags.required
    assert tags.regressor_tags is not None and tags.classifier_tags is None
