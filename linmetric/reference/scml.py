"""Sparse Compositional Metric Learning (Shi, Bellet, Sha 2014), global form, in NumPy.

With unit basis vectors ``b_1 .. b_K`` the metric is
``M = sum_i w_i b_i b_i^T`` (``w >= 0``), so the squared distance
``d_w(x, y) = sum_i w_i (b_i^T (x - y))^2`` is linear in ``w``. For triplets
``(a, b, c)`` ("a is closer to b than to c") SCML minimises::

    f(w) = 1/T sum_t [1 + d_w(a_t, b_t) - d_w(a_t, c_t)]_+ + beta ||w||_1

over ``w >= 0``. Write ``z_t`` for the vector with entries
``(b_i^T (a_t - b_t))^2 - (b_i^T (a_t - c_t))^2``; the hinge argument is
``1 + z_t^T w`` and a subgradient of the loss part is the mean of ``z_t`` over
the triplets with a positive hinge.

Regularised dual averaging with AdaGrad step sizes (Duchi, Hazan, Singer
2011) keeps the running mean ``gbar`` of the subgradients and their running
root sum of squares ``H``, and sets in closed form::

    w_i = gamma t / (delta + H_i) * max(0, -gbar_i - beta).

Slow on purpose: the feature vectors are built one triplet at a time. The
fast version is ``linmetric._scml`` (``TripletFeatures`` and ``rda``); it
also divides ``z_t`` by the mean squared projection of the triplets'
differences, which this reference takes as the argument ``scale``.
"""

import numpy as np


def triplet_features(triplets, basis, scale=1.0):
    """The matrix of ``z_t / scale``, shape (n_triplets, n_basis)."""
    rows = []
    for a, b, c in triplets:
        near = basis @ (a - b)
        far = basis @ (a - c)
        rows.append((near**2 - far**2) / scale)
    return np.array(rows)


def objective(w, features, beta):
    """``f(w)`` from the feature matrix."""
    return np.maximum(1.0 + features @ w, 0.0).mean() + beta * np.sum(np.abs(w))


def rda(features, batches, beta, gamma, delta=1e-8):
    """AdaGrad-RDA over the given sequence of mini-batches (index arrays)."""
    n_basis = features.shape[1]
    w = np.zeros(n_basis)
    gradient_sum = np.zeros(n_basis)
    squared_sum = np.zeros(n_basis)
    for t, batch in enumerate(batches, start=1):
        rows = features[batch]
        active = 1.0 + rows @ w > 0
        gradient = rows[active].sum(axis=0) / len(batch)
        gradient_sum += gradient
        squared_sum += gradient**2
        w = (
            gamma
            * t
            / (delta + np.sqrt(squared_sum))
            * np.maximum(-gradient_sum / t - beta, 0.0)
        )
    return w
