"""The energy of LMNN's classification rule, one block of test points at a time.

For a test point ``t`` and a candidate label ``c`` (Weinberger and Saul,
JMLR 2009, section 5):

    E(t, c) = (1 - mu) sum_{j ~> t} d(t, j)
            + mu sum_{j ~> t} sum_{l : y_l != c} h(1 + d(t, j) - d(t, l))
            + mu sum_{i : y_i != c} sum_{j ~> i} h(1 + d(i, j) - d(i, t)),

where ``j ~> t`` are the ``k`` nearest training points of class ``c`` and
``j ~> i`` the training points' own target neighbours. A class of fewer
than ``k`` training points gives ``t`` all of them and, in place of each
missing one, ``t`` itself (as :class:`~linmetric.LMNN` does for its small
classes): at distance 0 it adds no pull, and its push term
``h(1 - d(t, l))`` keeps other-class points a unit margin away from ``t``. One pass over a row
of test-to-training distances gives every class at once: a top-``k`` per
class, then the impostor terms, each tested against a per-class (second
line) or per-training-point (third line) radius, so that only points inside
a margin cost more than a comparison.

Far points. The kernel works with distances relative to the test point's
own squared norm, ``r(t, i) = ||z_i||^2 - 2 z_t.z_i = d(t, i) - ||z_t||^2``:
the pull and push terms of ``t`` depend only on differences of its
distances, so everything but the label-independent ``(1 - mu) m ||z_t||^2``
stays finite even where ``d(t, i)`` itself overflows float64 (a test point
1e300 away), with ``m = min(k, smallest class size)``. :func:`lmnn_energies`
adds that term back on request. Where classes give ``t`` different numbers
``m_c`` of real target neighbours, the label-dependent part keeps
``(1 - mu) (m_c - m) ||z_t||^2``, +inf for the larger classes once
``||z_t||^2`` overflows: there the energies differ by more than float64
holds.
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
    n_common,
    train_target_sq,
    train_radius,
    mu,
    squared,
    out,
):
    # products[t, i] = z_t . z_i (GEMM, input dtype); out[t, c] receives
    # E(t, c) - (1 - mu) n_common ||z_t||^2, the label-dependent part, where
    # n_common is the fewest real target neighbours any label gives t.
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
            # the widest margin of t labelled c; t itself (in the slots a
            # small class leaves) sits at r = -||z_t||^2
            radius[c] = 1.0 - norm_t
            if counts[c] > 0:
                radius[c] = max(radius[c], 1.0 + nearest[c, counts[c] - 1])
            invaded[c] = 0.0
            invading[c] = 0.0
        total_invading = 0.0
        for i in range(n_train):
            r = train_norms[i] - 2.0 * np.float64(products[t, i])
            d = norm_t + r
            c_i = labels[i]
            # i as an impostor of t labelled c != c_i: 1 + d(t, j) - d(t, i)
            for c in range(n_classes):
                if c != c_i and r < radius[c]:
                    for m in range(counts[c]):
                        z = 1.0 + nearest[c, m] - r
                        if z > 0.0:
                            invaded[c] += z * z if squared else z
                    # t as its own target (j = t): 1 + 0 - d(t, i)
                    z = 1.0 - d
                    if counts[c] < n_neighbors and z > 0.0:
                        invaded[c] += (n_neighbors - counts[c]) * (
                            z * z if squared else z
                        )
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
            # sum_j d(t, j) = sum_j r(t, j) + counts[c] ||z_t||^2
            pull = 0.0
            for m in range(counts[c]):
                pull += nearest[c, m]
            if counts[c] > n_common:  # never inf * 0
                pull += (counts[c] - n_common) * norm_t
            push = mu * (invaded[c] + total_invading - invading[c])
            out[t, c] = push if mu == 1.0 else (1.0 - mu) * pull + push


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
        Training class codes in ``0 .. n_classes - 1``. A class of fewer than
        ``k`` members gives a test point all of them as target neighbours and
        the point itself (at distance 0) in place of the missing ones.
    n_classes : int
    train_target_sq : ndarray of shape (n_train, n_neighbors), float64
        Squared distances of each training point to its target neighbours
        (0 where a point of a small class is its own target); its width is
        the number of target neighbours ``k``.
    mu : float
        Weight of the push terms.
    squared : bool
        Squared hinge (True) or hinge (False).
    working_memory : float or None
        Budget in MiB for one block of test-to-training products.
    relative : bool, default=False
        Leave out the label-independent term ``(1 - mu) m ||z_t||^2``, with
        ``m = min(k, smallest class size)``: the differences between labels
        are unchanged, and they stay finite for any finite test point when
        every class has at least ``k`` members (otherwise see the module
        notes).

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
    sizes = np.bincount(labels, minlength=n_classes)[:n_classes]
    n_common = int(min(n_neighbors, sizes.min()))
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
            n_common,
            train_target_sq,
            train_radius,
            float(mu),
            bool(squared),
            out[start:stop],
        )
    if not relative and mu < 1.0 and n_common > 0:
        with np.errstate(over="ignore"):
            out += ((1.0 - mu) * n_common) * test_norms[:, None]
    return out
