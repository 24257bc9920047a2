"""Data shared by the tests of several learners."""

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.preprocessing import StandardScaler


@pytest.fixture(scope="module")
def iris():
    """Iris, standardised: 150 samples, 4 features, 3 classes."""
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture
def labelled():
    """Three Gaussian classes of 12, 9 and 15 samples in 4 correlated features."""
    rng = np.random.RandomState(0)
    y = np.repeat([0, 1, 2], [12, 9, 15])
    means = rng.standard_normal((3, 4)) * 3
    mixing = rng.standard_normal((4, 4)) + 2 * np.eye(4)
    X = means[y] + rng.standard_normal((y.size, 4)) @ mixing
    return X, y
