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

Far points. The kernel works with distances relative to the test point's
own squared norm, ``r(t, i) = ||z_i||^2 - 2 z_t.z_i = d(t, i) - ||z_t||^2``:
the pull and push terms of ``t`` depend only on differences of its
distances, so everything but the label-independent ``(1 - mu) k ||z_t||^2``
stays finite even where ``d(t, i)`` itself overflows float64 (a test point
1e300 away). :func:`lmnn_energies` adds that term back on request.
"""

import numpy as np

from ._chunking import run_on_row_ranges
from ._config import jit
from .distances import as_float_matrix, block_rows, row_norms_sq
from .neighbors import _insert


@jit
def _energy_kernel(
    start,
    stop,
    products,
    train_norms,
    test_norms,
    labels,
    n_classes,
    n_neighbors,
    train_target_sq,
    train_radius,
    mu,
    squared,
    out,
):
    # products[t, i] = z_t . z_i (GEMM, input dtype); out[t, c] receives
    # E(t, c) - (1 - mu) k ||z_t||^2, the label-dependent part.
    n_train = products.shape[1]
    k_train = train_target_sq.shape[1]
    nearest = np.empty((n_classes, n_neighbors), dtype=np.float64)
    nearest_index = np.empty((n_classes, n_neighbors), dtype=np.intp)
    counts = np.empty(n_classes, dtype=np.intp)
    radius = np.empty(n_classes, dtype=np.float64)
    invaded = np.empty(n_classes, dtype=np.float64)
    invading = np.empty(n_classes, dtype=np.float64)
    for t in range(start, stop):
        norm_t = test_norms[t]
        # the k nearest training points of each class (ties: smaller index)
        for c in range(n_classes):
            counts[c] = 0
        for i in range(n_train):
            r = train_norms[i] - 2.0 * np.float64(products[t, i])
            c = labels[i]
            if counts[c] < n_neighbors or r < nearest[c, n_neighbors - 1]:
                counts[c] = _insert(nearest[c], nearest_index[c], counts[c], r, i)
        for c in range(n_classes):
            radius[c] = 1.0 + nearest[c, n_neighbors - 1]
            invaded[c] = 0.0
            invading[c] = 0.0
        total_invading = 0.0
        for i in range(n_train):
            r = train_norms[i] - 2.0 * np.float64(products[t, i])
            c_i = labels[i]
            # i as an impostor of t labelled c != c_i: 1 + d(t, j) - d(t, i)
            for c in range(n_classes):
                if c != c_i and r < radius[c]:
                    for m in range(n_neighbors):
                        z = 1.0 + nearest[c, m] - r
                        if z > 0.0:
                            invaded[c] += z * z if squared else z
            # t as an impostor of i: counts for every label c != c_i
            d = norm_t + r
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
    relative=False,
):
    """Energies ``E(t, c)`` of test points under each candidate label.

    Parameters
    ----------
    Z_test : ndarray of shape (n_test, n_components), float32 or float64
        Transformed test points.
    Z_train : ndarray of shape (n_train, n_components)
        Transformed training points; centred ones keep the most digits.
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
        Budget in MiB for one block of test-to-training products.
    relative : bool, default=False
        Leave out the label-independent term ``(1 - mu) k ||z_t||^2``: the
        differences between labels are unchanged, and they stay finite for
        any finite test point.

    Returns
    -------
    energies : ndarray of shape (n_test, n_classes), float64
        Dot products from the float32 or float64 GEMM (error bound: see
        :mod:`linmetric._kernels.distances`), sums in float64. Without
        ``relative``, +inf where ``||z_t||^2`` overflows.

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
    Z_test, Z_train = (
        as_float_matrix(Z_test, "Z_test"),
        as_float_matrix(Z_train, "Z_train"),
    )
    Z_test = Z_test.astype(np.result_type(Z_test, Z_train), copy=False)
    Z_train = Z_train.astype(Z_test.dtype, copy=False)
    labels = np.ascontiguousarray(labels, dtype=np.intp)
    train_target_sq = np.ascontiguousarray(train_target_sq, dtype=np.float64)
    n_neighbors = train_target_sq.shape[1]
    train_radius = 1.0 + train_target_sq.max(axis=1)
    train_norms = row_norms_sq(Z_train)
    with np.errstate(over="ignore"):
        test_norms = row_norms_sq(Z_test)
    out = np.empty((Z_test.shape[0], n_classes), dtype=np.float64)
    n_rows = block_rows(
        Z_train.shape[0] * Z_test.itemsize, working_memory, Z_test.shape[0]
    )
    for start in range(0, Z_test.shape[0], n_rows):
        stop = min(start + n_rows, Z_test.shape[0])
        with np.errstate(over="ignore", invalid="ignore"):
            products = Z_test[start:stop] @ Z_train.T
        run_on_row_ranges(
            _energy_kernel,
            stop - start,
            products,
            train_norms,
            test_norms[start:stop],
            labels,
            int(n_classes),
            n_neighbors,
            train_target_sq,
            train_radius,
            float(mu),
            bool(squared),
            out[start:stop],
        )
    if not relative:
        with np.errstate(over="ignore"):
            out += ((1.0 - mu) * n_neighbors) * test_norms[:, None]
    return out
