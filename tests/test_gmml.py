import numpy as np
import pytest
from sklearn.datasets import make_spd_matrix
from sklearn.utils import check_random_state

from linmetric import GMML
from linmetric._itml import sample_label_pairs
from linmetric.reference.gmml import gmml_metric, rescaled_gmml_metric
from linmetric.reference.kissme import pair_covariances


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("t", [0.0, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("lam", [0.0, 0.5])
def test_matches_the_reference(labelled, dtype, t, lam):
    X, y = labelled
    gmml = GMML(t=t, regularization=lam).fit(X.astype(dtype), y)
    expected = rescaled_gmml_metric(*pair_covariances(X, y), t=t, lam=lam)
    assert gmml.components_.dtype == dtype
    tol = 1e-9 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(
        gmml.get_mahalanobis_matrix(),
        expected,
        rtol=0,
        atol=tol * np.abs(expected).max(),
    )


def test_unregularised_metric_is_the_papers_up_to_a_factor(labelled):
    X, y = labelled
    S, D = pair_covariances(X, y)
    paper = gmml_metric(S, D, t=0.5)  # solves A S A = D
    np.testing.assert_allclose(paper @ S @ paper, D, rtol=1e-8)
    A = GMML(t=0.5, regularization=0).fit(X, y).get_mahalanobis_matrix()
    ratio = A / paper
    np.testing.assert_allclose(ratio, ratio[0, 0], rtol=1e-8)


def test_prior_array_and_fit_pairs(labelled):
    X, y = labelled
    A0 = make_spd_matrix(4, random_state=2)
    rows, cols, signs = sample_label_pairs(y, 50, check_random_state(3))
    pairs = np.stack((X[rows], X[cols]), axis=1)
    gmml = GMML(t=0.4, regularization=0.2, prior=A0).fit_pairs(pairs, signs)
    diffs = X[rows] - X[cols]
    S = diffs[signs > 0].T @ diffs[signs > 0] / np.sum(signs > 0)
    D = diffs[signs < 0].T @ diffs[signs < 0] / np.sum(signs < 0)
    expected = rescaled_gmml_metric(S, D, t=0.4, lam=0.2, A0=A0)
    np.testing.assert_allclose(gmml.get_mahalanobis_matrix(), expected, rtol=1e-8)
    sampled = GMML(
        t=0.4, regularization=0.2, prior=A0, n_constraints=50, random_state=3
    )
    sampled.fit(X, y)
    np.testing.assert_allclose(sampled.components_, gmml.components_, atol=1e-12)
    assert (gmml.n_similar_, gmml.n_dissimilar_) == (25, 25)


def test_shift_rescale_and_permutation(labelled):
    X, y = labelled
    base = GMML().fit(X, y).components_
    np.testing.assert_allclose(GMML().fit(X - 50.0, y).components_, base, atol=1e-9)
    np.testing.assert_allclose(GMML().fit(0.01 * X, y).components_, base / 0.01)
    order = np.random.RandomState(1).permutation(y.size)
    np.testing.assert_allclose(GMML().fit(X[order], y[order]).components_, base)


def test_singular_similar_matrix_needs_regularization(labelled):
    X, y = labelled
    X = np.column_stack((X, np.zeros(y.size)))  # a constant feature
    with pytest.raises(ValueError, match=r"singular.*set regularization > 0"):
        GMML(regularization=0).fit(X, y)
    components = GMML().fit(X, y).components_
    assert np.all(np.isfinite(components))


def test_bad_input_is_a_clear_error(labelled):
    X, y = labelled
    pairs = np.stack((X[:4], X[4:8]), axis=1)
    with pytest.raises(ValueError, match="no dissimilar pairs"):
        GMML().fit_pairs(pairs, [1, 1, 1, 1])
    with pytest.raises(ValueError, match="no similar pairs"):
        GMML().fit(X[:3], [0, 1, 2])
    with pytest.raises(ValueError, match="prior must have shape"):
        GMML(prior=np.eye(3)).fit(X, y)
    with pytest.raises(ValueError, match="prior must be positive definite"):
        GMML(prior=-np.eye(4)).fit(X, y)
    with pytest.raises(ValueError, match="'t'"):
        GMML(t=1.5).fit(X, y)


def test_auto_t_is_validated_and_fits_with_it(labelled):
    from linmetric._gmml import AUTO_T

    X, y = labelled
    auto = GMML().fit(X, y)
    assert auto.t_ in AUTO_T
    fixed = GMML(t=auto.t_).fit(X, y)
    np.testing.assert_allclose(auto.components_, fixed.components_, rtol=1e-12)
    # Units that hide the classes from Euclidean neighbours: the feature that
    # separates them is tiny. S^-1 (t near 0) recovers it; validation finds it.
    rng = np.random.RandomState(0)
    y2 = np.repeat([0, 1], 60)
    X2 = np.column_stack(
        (
            1e-3 * (y2 + 0.2 * rng.standard_normal(120)),
            rng.standard_normal((120, 3)) * 10,
        )
    )
    assert GMML().fit(X2, y2).t_ < 0.5
    pairs = np.stack((X[:-1], X[1:]), axis=1)
    signs = np.where(y[:-1] == y[1:], 1, -1)
    assert GMML().fit_pairs(pairs, signs).t_ == 0.5
