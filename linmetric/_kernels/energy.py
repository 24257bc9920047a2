"""The energy of LMNN's classification rule, one block of test points at a time.

For a test point ``t`` and a candidate label ``c`` (Weinberger and Saul,
JMLR 2009, section 5):

    E(t, c) = (1 - mu) sum_{j ~> t} d(t, j)
            + mu sum_{j ~> t} sum_{l : y_l != c} h(1 + d(t, j) - d(t, l))
            + mu sum_{i : y_i != c} sum_{j ~> i} h(1 + d(i, j) - d(i, t)),

where ``j ~> t`` are the ``k`` nearest training points of class ``c`` and
``j ~> i`` the training points' own target neighbours. One pass over a row
of test-to-training distances gives every class at once: a top-``k`` per
class, then the impostor terms, each tested against a per-class (second
line) or per-training-point (third line) radius, so that only points inside
a margin cost more than a comparison.
"""

import numpy as np

from ._chunking import run_on_row_ranges
from ._config import jit
from .distances import check_array, sq_distance_blocks


@jit
def _energy_kernel(
    start,
    stop,
    sq_dists,
    labels,
    n_classes,
    n_neighbors,
    train_target_sq,
    train_radius,
    mu,
    squared,
    out,
):
    n_train = sq_dists.shape[1]
    k_train = train_target_sq.shape[1]
    nearest = np.empty((n_classes, n_neighbors), dtype=np.float64)
    radius = np.empty(n_classes, dtype=np.float64)
    invaded = np.empty(n_classes, dtype=np.float64)
    invading = np.empty(n_classes, dtype=np.float64)
    for t in range(start, stop):
        # the k nearest training points of each class (sorted insertion)
        for c in range(n_classes):
            for m in range(n_neighbors):
                nearest[c, m] = np.inf
        for i in range(n_train):
            d = np.float64(sq_dists[t, i])
            c = labels[i]
            if d < nearest[c, n_neighbors - 1]:
                m = n_neighbors - 1
                while m > 0 and nearest[c, m - 1] > d:
                    nearest[c, m] = nearest[c, m - 1]
                    m -= 1
                nearest[c, m] = d
        for c in range(n_classes):
            radius[c] = 1.0 + nearest[c, n_neighbors - 1]
            invaded[c] = 0.0
            invading[c] = 0.0
        total_invading = 0.0
        for i in range(n_train):
            d = np.float64(sq_dists[t, i])
            c_i = labels[i]
            # i as an impostor of t labelled c != c_i
            for c in range(n_classes):
                if c != c_i and d < radius[c]:
                    for m in range(n_neighbors):
                        z = 1.0 + nearest[c, m] - d
                        if z > 0.0:
                            invaded[c] += z * z if squared else z
            # t as an impostor of i: counts for every label c != c_i
            if d < train_radius[i]:
                g = 0.0
                for m in range(k_train):
                    z = 1.0 + train_target_sq[i, m] - d
                    if z > 0.0:
                        g += z * z if squared else z
                invading[c_i] += g
                total_invading += g
        for c in range(n_classes):
            pull = 0.0
            for m in range(n_neighbors):
                pull += nearest[c, m]
            out[t, c] = (1.0 - mu) * pull + mu * (
                invaded[c] + total_invading - invading[c]
            )


def lmnn_energies(
    Z_test,
    Z_train,
    labels,
    n_classes,
    train_target_sq,
    *,
    mu,
    squared,
    working_memory=None,
):
    """Energies ``E(t, c)`` of test points under each candidate label.

    Parameters
    ----------
    Z_test : ndarray of shape (n_test, n_components), float32 or float64
        Transformed test points.
    Z_train : ndarray of shape (n_train, n_components)
        Transformed training points.
    labels : ndarray of shape (n_train,), intp
        Training class codes in ``0 .. n_classes - 1``; every class needs at
        least ``n_neighbors`` members.
    n_classes : int
    train_target_sq : ndarray of shape (n_train, n_neighbors), float64
        Squared distances of each training point to its target neighbours;
        its width is the number of target neighbours ``k``.
    mu : float
        Weight of the push terms.
    squared : bool
        Squared hinge (True) or hinge (False).
    working_memory : float or None
        Budget in MiB for one block of test-to-training distances.

    Returns
    -------
    energies : ndarray of shape (n_test, n_classes), float64
        Distances from the float32 or float64 GEMM (see
        :mod:`linmetric._kernels.distances`), sums in float64.

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric._kernels.energy import lmnn_energies
    >>> Z_train = np.array([[0.0], [0.5], [10.0], [10.5]])
    >>> labels = np.array([0, 0, 1, 1])
    >>> target_sq = np.full((4, 1), 0.25)
    >>> lmnn_energies(np.array([[1.0]]), Z_train, labels, 2, target_sq,
    ...               mu=0.5, squared=False)
    array([[  0.125, 122.5  ]])
    """
    Z_test, Z_train = check_array(Z_test, "Z_test"), check_array(Z_train, "Z_train")
    labels = np.ascontiguousarray(labels, dtype=np.intp)
    train_target_sq = np.ascontiguousarray(train_target_sq, dtype=np.float64)
    n_neighbors = train_target_sq.shape[1]
    train_radius = 1.0 + train_target_sq.max(axis=1)
    out = np.empty((Z_test.shape[0], n_classes), dtype=np.float64)
    for start, stop, block in sq_distance_blocks(
        Z_test, Z_train, working_memory=working_memory
    ):
        run_on_row_ranges(
            _energy_kernel,
            stop - start,
            block,
            labels,
            int(n_classes),
            n_neighbors,
            train_target_sq,
            train_radius,
            float(mu),
            bool(squared),
            out[start:stop],
        )
    return out
