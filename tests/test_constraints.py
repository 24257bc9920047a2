"""Tests of the triplet and quadruplet samplers and the tuple checks."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from linmetric._constraints import (
    sample_quadruplets,
    sample_triplets,
    validate_tuples,
    validate_weights,
)


def _data(seed=0):
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((40, 3))
    y = np.repeat([0, 1, 2, 3], 10)
    return X, y


def test_triplets_are_the_nearest_genuine_and_impostor_neighbours():
    X, y = _data()
    triplets = sample_triplets(
        X, y, k_genuine=2, k_impostor=3, random_state=np.random.RandomState(0)
    )
    assert triplets.shape == (40 * 2 * 3, 3)
    distances = cdist(X, X)
    for i in range(40):
        mine = triplets[triplets[:, 0] == i]
        same = np.flatnonzero((y == y[i]) & (np.arange(40) != i))
        other = np.flatnonzero(y != y[i])
        expected_genuine = same[np.argsort(distances[i, same])[:2]]
        expected_impostors = other[np.argsort(distances[i, other])[:3]]
        assert set(mine[:, 1]) == set(expected_genuine)
        assert set(mine[:, 2]) == set(expected_impostors)
    assert np.all(y[triplets[:, 0]] == y[triplets[:, 1]])
    assert np.all(y[triplets[:, 0]] != y[triplets[:, 2]])


def test_triplets_subsample_and_small_classes():
    X, y = _data()
    rs = np.random.RandomState(0)
    triplets = sample_triplets(X, y, n_constraints=17, random_state=rs)
    assert triplets.shape == (17, 3)
    # A class of one member anchors no triplet; k is cut to the class size.
    y_small = y.copy()
    y_small[0] = 9
    triplets = sample_triplets(X, y_small, k_genuine=20, random_state=rs)
    assert 0 not in triplets[:, 0] and 0 not in triplets[:, 1]
    with pytest.raises(ValueError, match="single sample"):
        sample_triplets(X[:3], np.arange(3), random_state=rs)


def test_quadruplets_pair_a_similar_with_a_dissimilar_pair():
    _, y = _data()
    quadruplets = sample_quadruplets(y, 50, np.random.RandomState(0))
    assert quadruplets.shape == (50, 4)
    assert np.all(y[quadruplets[:, 0]] == y[quadruplets[:, 1]])
    assert np.all(quadruplets[:, 0] != quadruplets[:, 1])
    assert np.all(y[quadruplets[:, 2]] != y[quadruplets[:, 3]])
    same = sample_quadruplets(y, 50, np.random.RandomState(0))
    np.testing.assert_array_equal(quadruplets, same)
    with pytest.raises(ValueError, match="same-class pair"):
        sample_quadruplets(np.arange(5), 3, np.random.RandomState(0))


def test_tuple_and_weight_checks():
    tuples = np.zeros((5, 3, 2), dtype=np.float32)
    assert validate_tuples(tuples, 3, name="triplets", meaning="m").dtype == np.float32
    with pytest.raises(ValueError, match=r"triplets must have shape \(n_triplets, 3"):
        validate_tuples(tuples[:, :2], 3, name="triplets", meaning="m")
    with pytest.raises(ValueError, match="0 sample"):
        validate_tuples(tuples[:0], 3, name="triplets", meaning="m")
    with pytest.raises(ValueError, match="NaN"):
        validate_tuples(np.full((1, 3, 2), np.nan), 3, name="triplets", meaning="m")
    np.testing.assert_array_equal(validate_weights(None, 3), np.ones(3))
    with pytest.raises(ValueError, match=r"non-negative; got -1\.0"):
        validate_weights([1.0, -1.0, 2.0], 3)
    with pytest.raises(ValueError, match="non-negative; got inf"):
        validate_weights([1.0, np.inf, 2.0], 3)
