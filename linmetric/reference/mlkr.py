"""Metric Learning for Kernel Regression: the objective in plain NumPy.

The textbook form, written to be read and to serve as the oracle of the
tests. It holds the full ``n x n`` kernel matrix and sums the gradient pair
by pair, so it is only for small data; :mod:`linmetric._mlkr` computes the
same numbers in blocks of rows.

Notation (Weinberger and Tesauro, 2007). ``A`` is the linear map and
``x_ij = x_i - x_j``.

- Gaussian kernel, eq. (4) with the width absorbed into ``A``: ``k_ij =
  exp(-||A x_ij||^2)``.
- Leave-one-out kernel regression, eq. (1): ``yhat_i = sum_{j != i} y_j
  k_ij / sum_{j != i} k_ij``.
- Loss, eq. (2): ``L = sum_i (y_i - yhat_i)^2``.
- Gradient, eq. (5): ``dL/dA = 4 A sum_i (yhat_i - y_i) sum_j (yhat_i - y_j)
  k_ij x_ij x_ij^T / sum_j k_ij``. The paper prints ``(yhat_j - y_j)`` in
  the inner sum; differentiating eq. (1), ``d yhat_i / d ||A x_ij||^2 =
  -p_ij (y_j - yhat_i)`` with ``p_ij = k_ij / sum_l k_il``, gives the
  ``(yhat_i - y_j)`` used here (the finite-difference test confirms it).

References
----------
.. [1] K. Q. Weinberger and G. Tesauro, "Metric Learning for Kernel
   Regression", Proceedings of the 11th International Conference on
   Artificial Intelligence and Statistics (AISTATS), 2007.
"""

import numpy as np


def predictions(A, X, y):
    """``yhat_i``, eq. (1), and the kernel matrix (zero diagonal)."""
    Z = X @ A.T
    sq_dist = ((Z[:, None, :] - Z[None, :, :]) ** 2).sum(axis=2)
    K = np.exp(-sq_dist)
    np.fill_diagonal(K, 0.0)  # leave one out: j != i
    return K @ y / K.sum(axis=1), K


def loss(A, X, y):
    """``L(A)``, eq. (2)."""
    y_hat, _ = predictions(A, X, y)
    return float(np.sum((y - y_hat) ** 2))


def gradient(A, X, y):
    """``dL/dA``, eq. (5) with the corrected inner factor."""
    y_hat, K = predictions(A, X, y)
    n, d = X.shape
    total = np.zeros((d, d))
    for i in range(n):
        inner = np.zeros((d, d))
        for j in range(n):
            x_ij = X[i] - X[j]
            inner += (y_hat[i] - y[j]) * K[i, j] * np.outer(x_ij, x_ij)
        total += (y_hat[i] - y[i]) * inner / K[i].sum()
    return 4 * A @ total
