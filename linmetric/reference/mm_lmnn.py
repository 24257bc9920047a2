"""Multi-metric LMNN's objective, gradient and kNN rule, in plain NumPy.

Weinberger and Saul (JMLR 2009, section 6, "multiple metrics") learn one
metric per class, ``M_c = L_c^T L_c``, jointly. The distance *to* a
point is measured in the metric of that point's class:

    d(a, b) = ||L_{y_b} (x_a - x_b)||^2,

which is not symmetric when ``y_a != y_b``. With target neighbours
``j ~> i`` (the ``k`` nearest points of ``i``'s class, chosen once in the
input space, so ``y_j = y_i``) and impostors ``l`` (points of another
class), the loss keeps the form of single-metric LMNN:

    loss = (1 - mu) sum_{i, j ~> i} ||L_{y_j} (x_i - x_j)||^2
           + mu sum_{i, j ~> i} sum_{l : y_l != y_i}
                 h(1 + ||L_{y_j} (x_i - x_j)||^2 - ||L_{y_l} (x_i - x_l)||^2)

with ``h(z) = max(0, z)`` (the paper) or ``max(0, z)^2``. Each distance is
measured in the metric of the point it goes to: a target pair in the
metric of ``i``'s own class, an impostor pair in the metric of the
impostor's class.

Gradient. With ``C_ab = (x_a - x_b)(x_a - x_b)^T`` and ``z_ijl`` the
hinge's argument, ``d loss / d L_c = 2 L_c G_c`` where

    G_c = (1 - mu) sum_{y_i = c, j ~> i} C_ij
          + mu sum_{y_i = c, j ~> i} sum_l h'(z_ijl) C_ij
          - mu sum_{y_l = c} sum_{i, j ~> i} h'(z_ijl) C_il:

class ``c``'s metric collects the target pairs of its own points and the
impostor pairs whose impostor belongs to it.

Classification. A test point ``t`` is at distance ``||L_{y_j} (t - x_j)||``
from training point ``j``; the kNN rule votes among the ``k`` nearest.
The energy rule (section 5, with the metrics of the loss) gives ``t`` the
label ``c`` of least energy, the loss ``t`` would add if it joined the
training set labelled ``c``:

    E(t, c) = (1 - mu) sum_{j ~> t} ||L_c (t - x_j)||^2
            + mu sum_{j ~> t} sum_{l : y_l != c}
                  h(1 + ||L_c (t - x_j)||^2 - ||L_{y_l} (t - x_l)||^2)
            + mu sum_{i : y_i != c} sum_{j ~> i}
                  h(1 + ||L_{y_i} (x_i - x_j)||^2 - ||L_c (x_i - t)||^2),

``j ~> t`` being the ``k`` nearest class-``c`` points under ``L_c``.
"""

import numpy as np

from .lmnn import hinge, hinge_derivative, target_neighbors  # noqa: F401


def loss_grad(Ls, X, y, targets, *, mu=0.5, loss="squared_hinge"):
    """The multi-metric loss and its gradient by enumeration.

    Parameters
    ----------
    Ls : ndarray of shape (n_classes, n_components, n_features)
        One map per class code ``0..n_classes-1``.
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,), class codes
    targets : ndarray of shape (n_samples, n_neighbors)
        Target neighbours (same class), fixed.
    mu : float
    loss : {'squared_hinge', 'hinge'}

    Returns
    -------
    loss : float
    grad : ndarray of shape (n_classes, n_components, n_features)
    n_active : int
        Impostor pairs ``(i, l)`` in at least one active triplet.
    """
    Ls = np.asarray(Ls, dtype=float)
    X = np.asarray(X, dtype=float)
    n_samples = X.shape[0]
    # D[a, b] = ||L_{y_b} (x_a - x_b)||^2: column b in the metric of y_b
    D = np.empty((n_samples, n_samples))
    for b in range(n_samples):
        D[:, b] = (((X - X[b]) @ Ls[y[b]].T) ** 2).sum(-1)

    total = 0.0
    G = np.zeros((Ls.shape[0], X.shape[1], X.shape[1]))
    active_pairs = set()
    for i in range(n_samples):
        impostors = np.flatnonzero(y != y[i])
        for j in targets[i]:
            diff_ij = X[i] - X[j]
            total += (1 - mu) * D[i, j]
            G[y[j]] += (1 - mu) * np.outer(diff_ij, diff_ij)
            margins = 1.0 + D[i, j] - D[i, impostors]
            total += mu * hinge(margins, loss).sum()
            slopes = hinge_derivative(margins, loss)
            for l, margin, slope in zip(impostors, margins, slopes, strict=True):
                if margin <= 0:
                    continue
                active_pairs.add((i, l))
                diff_il = X[i] - X[l]
                G[y[j]] += mu * slope * np.outer(diff_ij, diff_ij)
                G[y[l]] -= mu * slope * np.outer(diff_il, diff_il)
    grad = 2.0 * np.einsum("cpf,cfg->cpg", Ls, G)
    return total, grad, len(active_pairs)


def predict(Ls, X_train, y_train, X_test, n_neighbors):
    """The kNN rule with each training point's class metric.

    Ties in distance are broken by the lower training index, ties in the
    vote by the lower class code.
    """
    X_train = np.asarray(X_train, dtype=float)
    X_test = np.asarray(X_test, dtype=float)
    n_classes = Ls.shape[0]
    out = np.empty(X_test.shape[0], dtype=np.intp)
    for t in range(X_test.shape[0]):
        d = np.array(
            [
                ((Ls[y_train[j]] @ (X_test[t] - X_train[j])) ** 2).sum()
                for j in range(X_train.shape[0])
            ]
        )
        nearest = np.lexsort((np.arange(d.shape[0]), d))[:n_neighbors]
        votes = np.bincount(y_train[nearest], minlength=n_classes)
        out[t] = np.argmax(votes)
    return out


def energies(Ls, X_train, y_train, targets, X_test, *, mu=0.5, loss="squared_hinge"):
    """The energy of each test point under each candidate label.

    A class of fewer than ``k`` training points gives ``t`` all of them and
    ``t`` itself, at distance 0, in place of each missing one (as LMNN does
    for its small classes); ``targets`` of a training point of such a class
    repeat its own index, at distance 0.

    Returns
    -------
    energies : ndarray of shape (n_test, n_classes)
    """
    Ls = np.asarray(Ls, dtype=float)
    X_train = np.asarray(X_train, dtype=float)
    X_test = np.asarray(X_test, dtype=float)
    n_classes, k = Ls.shape[0], targets.shape[1]
    # d(i, j) of every training point to its targets, in its own class metric
    D_targets = np.array(
        [
            ((X_train[targets[i]] - X_train[i]) @ Ls[y_train[i]].T) ** 2
            for i in range(X_train.shape[0])
        ]
    ).sum(-1)
    out = np.zeros((X_test.shape[0], n_classes))
    for t in range(X_test.shape[0]):
        # d_c[c, i] = ||L_c (t - x_i)||^2, and d_own[i] in i's own metric
        d_c = np.array([(((X_train - X_test[t]) @ L.T) ** 2).sum(-1) for L in Ls])
        d_own = d_c[y_train, np.arange(X_train.shape[0])]
        for c in range(n_classes):
            members = np.flatnonzero(y_train == c)
            others = np.flatnonzero(y_train != c)
            nearest = members[np.lexsort((members, d_own[members]))[:k]]
            # t itself fills the slots a small class leaves
            d_targets = np.concatenate([d_own[nearest], np.zeros(k - len(nearest))])
            energy = (1 - mu) * d_targets.sum()
            for d_tj in d_targets:
                energy += mu * hinge(1.0 + d_tj - d_own[others], loss).sum()
            for i in others:
                energy += mu * hinge(1.0 + D_targets[i] - d_c[c, i], loss).sum()
            out[t, c] = energy
    return out
