"""Sparse Compositional Metric Learning (Shi, Bellet, Sha 2014), local form, in NumPy.

Each point ``x`` has its own metric, a combination of fixed rank-one basis
elements ``b_k b_k^T`` with weights that depend on an embedding ``z_x`` of
the point::

    M(x) = sum_k w_k(x) b_k b_k^T,      w_k(x) = (a_k^T z_x + c_k)^2.

The squared distance from ``x`` to ``y`` is measured in the metric of the
first point, ``d_x(x, y) = (x - y)^T M(x) (x - y)``. With ``Theta`` the
matrix whose row ``k`` is ``(a_k, c_k)``, and ``z~_x = (z_x, 1)`` so that
``a_k^T z_x + c_k = Theta_k . z~_x``, the objective on triplets
``(x_i, x_j, x_l)`` ("x_i is closer to x_j than to x_l") is::

    F(Theta) = 1/T sum_t [1 + sum_k w_k(x_i) f_tk]_+ + beta sum_k ||Theta_k||_2

with ``f_tk = (b_k^T (x_i - x_j))^2 - (b_k^T (x_i - x_l))^2`` (divided by
the normalising ``scale``). Where the hinge of triplet t is positive its
gradient in ``Theta_k`` is ``2 (Theta_k . z~) f_tk z~`` (``z~`` that of
``x_i``); the penalty's is ``beta Theta_k / ||Theta_k||`` where the row is
non-zero.

The solver takes stochastic steps on mini-batches and then the proximal
map of the penalty, row by row, with one AdaGrad step size per row::

    H_k   += ||g_k||^2
    eta_k  = eta / sqrt(delta^2 + H_k)
    Theta_k <- Theta_k - eta_k g_k
    Theta_k <- max(0, 1 - eta_k beta / ||Theta_k||) Theta_k

Slow on purpose: one triplet at a time. The fast version is
``linmetric._scml_local`` (``local_loss_grad``, ``proximal_adagrad`` and
``nearest_in_local_metrics``).
"""

import numpy as np


def weights(theta, z):
    """``w_k(x)`` for one embedded point ``z~ = (z_x, 1)``."""
    return (theta @ z) ** 2


def triplet_feature(basis, a, b, c, scale=1.0):
    """``f_t``: the difference of squared projections, per basis element."""
    return ((basis @ (a - b)) ** 2 - (basis @ (a - c)) ** 2) / scale


def objective_and_gradient(theta, Z, features, anchors, beta):
    """``F(Theta)`` and its gradient; ``Z`` holds the rows ``z~`` of the points."""
    loss = 0.0
    grad = np.zeros_like(theta)
    for f, i in zip(features, anchors, strict=True):
        z = Z[i]
        u = theta @ z  # a_k^T z_x + c_k, for every k
        margin = 1.0 + np.sum(u**2 * f)
        if margin > 0:
            loss += margin
            grad += np.outer(2.0 * u * f, z)
    loss /= len(features)
    grad /= len(features)
    for k in range(theta.shape[0]):
        norm = np.linalg.norm(theta[k])
        loss += beta * norm
        if norm > 0:
            grad[k] += beta * theta[k] / norm
    return loss, grad


def proximal_adagrad(theta, Z, features, anchors, batches, beta, eta, delta):
    """The stochastic proximal steps over the given mini-batches (index arrays)."""
    theta = theta.copy()
    H = np.zeros(theta.shape[0])
    for batch in batches:
        g = np.zeros_like(theta)
        for t in batch:
            z = Z[anchors[t]]
            u = theta @ z
            if 1.0 + np.sum(u**2 * features[t]) > 0:
                g += np.outer(2.0 * u * features[t], z)
        g /= len(batch)
        for k in range(theta.shape[0]):
            H[k] += g[k] @ g[k]
            step = eta / np.sqrt(delta**2 + H[k])
            theta[k] -= step * g[k]
            norm = np.linalg.norm(theta[k])
            theta[k] *= max(0.0, 1.0 - step * beta / norm) if norm > 0 else 0.0
    return theta


def distance(basis, w_x, x, y):
    """``sqrt((x - y)^T M(x) (x - y))`` with ``M(x) = B^T diag(w_x) B``."""
    M = basis.T @ np.diag(w_x) @ basis
    return np.sqrt((x - y) @ M @ (x - y))


def gaussian_kpca(landmarks, n_components):
    """Kernel PCA of the landmarks (Gaussian kernel, median-distance width).

    Returns a function mapping points to their projections: the centred
    kernel values to the landmarks times ``v_j / sqrt(lambda_j)``.
    """
    diff = landmarks[:, None, :] - landmarks[None, :, :]
    squared = np.sum(diff**2, axis=2)
    sigma2 = np.median(squared[np.triu_indices(len(landmarks), 1)])
    K = np.exp(-squared / (2 * sigma2))
    m = len(landmarks)
    H = np.eye(m) - np.ones((m, m)) / m
    values, vectors = np.linalg.eigh(H @ K @ H)
    top = np.argsort(values)[::-1][:n_components]
    alphas = vectors[:, top] / np.sqrt(values[top])

    def project(X):
        k = np.exp(
            -np.sum((X[:, None, :] - landmarks[None]) ** 2, axis=2) / (2 * sigma2)
        )
        k_centred = k - K.mean(axis=0) - k.mean(axis=1, keepdims=True) + K.mean()
        return k_centred @ alphas

    return project
