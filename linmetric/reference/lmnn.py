"""LMNN's objective, its gradient and the energy rule, in plain NumPy.

This is the textbook form of Large Margin Nearest Neighbor (Weinberger and
Saul, JMLR 2009): every triplet is enumerated explicitly, so it is slow on
purpose and meant for reading and for testing the fast code against.

Notation. ``L`` is the linear map (``n_components x n_features``), and the
learned squared distance is

    d(a, b) = ||L (x_a - x_b)||^2.                                      (eq. 3)

Each point ``i`` has ``k`` *target neighbours* ``j ~> i``: the ``k`` nearest
points of its own class, chosen once, before learning, by the Euclidean
distance in the input space. An *impostor* ``l`` of ``i`` is any point of
another class. The loss is the paper's convex combination

    loss(L) = (1 - mu) * pull(L) + mu * push(L)                          (eq. 14)
    pull(L) = sum_{i, j ~> i} d(i, j)                                    (eq. 12)
    push(L) = sum_{i, j ~> i} sum_{l : y_l != y_i} h(1 + d(i, j) - d(i, l))
                                                                         (eq. 13)

with ``h(z) = max(0, z)`` (the hinge of the paper) or ``h(z) = max(0, z)^2``
(a smooth variant that suits quasi-Newton methods). A triplet ``(i, j, l)``
is *active* when ``1 + d(i, j) - d(i, l) > 0``: the impostor ``l`` is inside
``i``'s margin.

Gradient. ``d(a, b) = tr(L C_ab L^T)`` with ``C_ab = (x_a - x_b)(x_a - x_b)^T``,
so ``d d(a, b) / d L = 2 L C_ab`` and

    d loss / d L = 2 L [ (1 - mu) sum_{i, j} C_ij
                        + mu sum_{active (i, j, l)} h'(1 + d(i, j) - d(i, l))
                                                    (C_ij - C_il) ].     (eq. 15)
"""

import numpy as np

LOSSES = ("squared_hinge", "hinge")


def hinge(z, loss):
    """``h(z)``: ``max(0, z)`` for 'hinge', ``max(0, z)**2`` for 'squared_hinge'."""
    z = np.maximum(z, 0.0)
    return z if loss == "hinge" else z * z


def hinge_derivative(z, loss):
    """``h'(z)``: the step ``1[z > 0]``, or ``2 max(0, z)``."""
    if loss == "hinge":
        return (z > 0).astype(float)
    return 2.0 * np.maximum(z, 0.0)


def target_neighbors(X, y, n_neighbors):
    """The ``n_neighbors`` nearest same-class points of each point (Euclidean).

    Ties are broken by the lower index.

    Returns
    -------
    targets : ndarray of shape (n_samples, n_neighbors), int
    """
    X = np.asarray(X, dtype=float)
    sq_dists = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    targets = np.empty((X.shape[0], n_neighbors), dtype=np.intp)
    for i in range(X.shape[0]):
        same = np.flatnonzero((y == y[i]) & (np.arange(X.shape[0]) != i))
        order = np.lexsort((same, sq_dists[i, same]))
        targets[i] = same[order[:n_neighbors]]
    return targets


def loss_grad(L, X, y, targets, *, mu=0.5, loss="squared_hinge"):
    """The LMNN loss (eq. 14) and its gradient (eq. 15) by enumeration.

    Parameters
    ----------
    L : ndarray of shape (n_components, n_features)
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
    targets : ndarray of shape (n_samples, n_neighbors)
        Target neighbours, fixed.
    mu : float
        The weight of the push term.
    loss : {'squared_hinge', 'hinge'}

    Returns
    -------
    loss : float
    grad : ndarray of shape (n_components, n_features)
    n_active : int
        The number of distinct impostor pairs ``(i, l)`` in at least one
        active triplet.
    """
    L = np.asarray(L, dtype=float)
    X = np.asarray(X, dtype=float)
    Z = X @ L.T
    # d(a, b) for all pairs
    D = ((Z[:, None, :] - Z[None, :, :]) ** 2).sum(-1)
    n_samples = X.shape[0]

    total = 0.0
    C = np.zeros((X.shape[1], X.shape[1]))
    active_pairs = set()
    for i in range(n_samples):
        impostors = np.flatnonzero(y != y[i])
        for j in targets[i]:
            diff_ij = X[i] - X[j]
            # pull (eq. 12)
            total += (1 - mu) * D[i, j]
            C += (1 - mu) * np.outer(diff_ij, diff_ij)
            # push (eq. 13): every impostor inside the margin
            margins = 1.0 + D[i, j] - D[i, impostors]
            total += mu * hinge(margins, loss).sum()
            slopes = hinge_derivative(margins, loss)
            for l, margin, slope in zip(impostors, margins, slopes, strict=True):
                if margin <= 0:
                    continue  # l is outside the margin: no loss, no gradient
                active_pairs.add((i, l))
                diff_il = X[i] - X[l]
                C += mu * slope * np.outer(diff_ij, diff_ij)
                C -= mu * slope * np.outer(diff_il, diff_il)
    return total, 2.0 * L @ C, len(active_pairs)


def energies(
    L, X_train, y_train, targets, X_test, n_classes, *, mu=0.5, loss="squared_hinge"
):
    """The energy of each test point under each candidate label (section 5).

    The energy of test point ``t`` labelled ``c`` is the loss that ``t``
    would add to the objective if it joined the training set with label
    ``c``, its target neighbours being its ``k`` nearest training points of
    class ``c`` in the learned metric:

        E(t, c) = (1 - mu) sum_{j ~> t} d(t, j)
                + mu sum_{j ~> t} sum_{l : y_l != c} h(1 + d(t, j) - d(t, l))
                + mu sum_{i : y_i != c} sum_{j ~> i} h(1 + d(i, j) - d(i, t)),

    the second line counting the training points that invade ``t``'s
    margin, the third the training points whose margin ``t`` invades. The
    rule predicts ``argmin_c E(t, c)``.

    Parameters
    ----------
    L : ndarray of shape (n_components, n_features)
    X_train : ndarray of shape (n_train, n_features)
    y_train : ndarray of shape (n_train,), int codes in ``0..n_classes-1``
    targets : ndarray of shape (n_train, n_neighbors)
        The training points' target neighbours.
    X_test : ndarray of shape (n_test, n_features)
    n_classes : int

    Returns
    -------
    energies : ndarray of shape (n_test, n_classes)
    """
    Z_train = np.asarray(X_train, dtype=float) @ L.T
    Z_test = np.asarray(X_test, dtype=float) @ L.T
    k = targets.shape[1]
    # d(i, j) of every training point to its target neighbours
    D_targets = ((Z_train[:, None, :] - Z_train[targets]) ** 2).sum(-1)
    out = np.zeros((Z_test.shape[0], n_classes))
    for t in range(Z_test.shape[0]):
        d_t = ((Z_train - Z_test[t]) ** 2).sum(-1)  # d(t, i) for every i
        for c in range(n_classes):
            members = np.flatnonzero(y_train == c)
            others = np.flatnonzero(y_train != c)
            nearest = members[np.lexsort((members, d_t[members]))[:k]]
            energy = (1 - mu) * d_t[nearest].sum()
            for j in nearest:
                energy += mu * hinge(1.0 + d_t[j] - d_t[others], loss).sum()
            for i in others:
                energy += mu * hinge(1.0 + D_targets[i] - d_t[i], loss).sum()
            out[t, c] = energy
    return out
