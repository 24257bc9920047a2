"""Neighbourhood Components Analysis: the objective in plain NumPy.

This is the textbook form, written to be read and to serve as the oracle of
the tests. It holds the full ``n x n`` matrix of soft-neighbour
probabilities, so it is only for small data; :mod:`linmetric._nca` computes
the same numbers in row blocks.

Notation (Goldberger et al., 2004). ``L`` is the linear map, ``z_i = L x_i``.

- Soft neighbours, eq. (1): point ``i`` picks ``j != i`` as its neighbour
  with probability ``p_ij = exp(-||z_i - z_j||^2) / sum_{k != i}
  exp(-||z_i - z_k||^2)``, and ``p_ii = 0``.
- Probability that ``i`` is classified correctly, eq. (2): ``p_i =
  sum_{j in C_i} p_ij`` with ``C_i`` the other points of ``i``'s class.
- Objective, eq. (3): ``f(L) = sum_i p_i``, the expected number of points
  classified correctly. It is maximised; like scikit-learn we minimise the
  loss ``-f(L)``.
- Gradient, eq. (5): ``df/dL = 2 L sum_i (p_i sum_k p_ik x_ik x_ik^T -
  sum_{j in C_i} p_ij x_ij x_ij^T)`` with ``x_ij = x_i - x_j``.

References
----------
.. [1] J. Goldberger, S. Roweis, G. Hinton and R. Salakhutdinov,
   "Neighbourhood Components Analysis", Advances in Neural Information
   Processing Systems 17 (NIPS 2004).
"""

import numpy as np


def soft_neighbors(components, X):
    """The matrix of soft-neighbour probabilities ``p_ij``, eq. (1).

    Parameters
    ----------
    components : ndarray of shape (n_components, n_features)
        The linear map ``L``.
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    p : ndarray of shape (n_samples, n_samples)
        Rows sum to one; the diagonal is zero.
    """
    Z = X @ components.T
    sq_dist = ((Z[:, None, :] - Z[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(sq_dist, np.inf)  # a point never picks itself
    # Subtracting each row's smallest distance leaves p unchanged and keeps
    # exp() from underflowing to 0/0 when all distances are large.
    logits = -(sq_dist - sq_dist.min(axis=1, keepdims=True))
    weights = np.exp(logits)
    return weights / weights.sum(axis=1, keepdims=True)


def loss(components, X, y):
    """The NCA loss ``-sum_i p_i``, eq. (3) negated.

    Parameters
    ----------
    components : ndarray of shape (n_components, n_features)
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
        Class labels.

    Returns
    -------
    loss : float
        Minus the expected number of correctly classified points.
    """
    p = soft_neighbors(components, X)
    same_class = y[:, None] == y[None, :]
    return -float((p * same_class).sum())


def loss_grad(components, X, y):
    """The NCA loss and its gradient with respect to ``L``, eqs. (3) and (5).

    Parameters
    ----------
    components : ndarray of shape (n_components, n_features)
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)

    Returns
    -------
    loss : float
        ``-sum_i p_i``.
    grad : ndarray of shape (n_components, n_features)
        Gradient of the loss, ``-df/dL``.
    """
    p = soft_neighbors(components, X)
    same_class = y[:, None] == y[None, :]
    p_correct = (p * same_class).sum(axis=1)  # p_i, eq. (2)

    n_features = X.shape[1]
    outer_sum = np.zeros((n_features, n_features))
    for i in range(X.shape[0]):
        diffs = X[i] - X  # row j is x_ij = x_i - x_j
        # eq. (5): p_i sum_k p_ik x_ik x_ik^T - sum_{j in C_i} p_ij x_ij x_ij^T
        all_term = (p[i, :, None] * diffs).T @ diffs
        same_term = ((p[i] * same_class[i])[:, None] * diffs).T @ diffs
        outer_sum += p_correct[i] * all_term - same_term
    grad_f = 2.0 * components @ outer_sum
    return -float(p_correct.sum()), -grad_f
