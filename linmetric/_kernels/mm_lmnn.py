"""Multi-metric LMNN's push pass: every impostor pair of one metric, in blocks.

In multi-metric LMNN the distance to a point is measured in the metric of
that point's class. For the metric of class ``c`` the impostor pairs are
``(i, l)`` with ``y_i != c`` and ``y_l = c``: rows ``i`` outside the
class, columns ``l`` inside it, at squared distance
``d_il = ||L_c (x_i - x_l)||^2``. Against each target distance ``t_ij``
of row ``i`` (measured in the metric of ``i``'s own class), the triplet
is active when ``z = 1 + t_ij - d_il > 0``; it adds ``h(z)`` to the push
loss, ``mu h'(z)`` to the weight of the target pair ``(i, j)`` and
``-mu h'(z)`` to the weight ``w_il`` of the impostor pair, whose outer
products make class ``c``'s share of the gradient,
``C_c = sum_il w_il (x_i - x_l)(x_i - x_l)^T``.
"""

import numpy as np

from ._chunking import rows_per_chunk, run_on_row_ranges
from ._config import jit
from .distances import as_float_matrix, row_norms_sq, sq_distance_blocks
from .impostors import find_impostors
from .lmnn import impostor_terms
from .neighbors import _insert


@jit
def _bipartite_push_kernel(
    start,
    stop,
    block,
    block_start,
    target_sq,
    mu,
    squared,
    target_weights,
    row_push,
    row_active,
):
    # block[ii, l] = d(i, l) for row i = block_start + ii and every column l;
    # on exit it holds the weight -mu sum_j h'(1 + t_ij - d_il).
    n_neighbors = target_sq.shape[1]
    for ii in range(start, stop):
        i = block_start + ii
        radius = 0.0
        for j in range(n_neighbors):
            if target_sq[i, j] > radius:
                radius = target_sq[i, j]
        radius += 1.0
        push = 0.0
        active = 0
        for l in range(block.shape[1]):
            d = np.float64(block[ii, l])
            block[ii, l] = 0.0
            if d >= radius:
                continue
            active += 1
            pushed, weight = impostor_terms(
                target_sq, i, d, mu, squared, target_weights
            )
            push += pushed
            block[ii, l] = -mu * weight
        row_push[i] = push
        row_active[i] = active


def bipartite_push_terms(
    X_rows, Z_rows, X_cols, Z_cols, target_sq, *, mu, squared, working_memory=None
):
    """Push loss and gradient share of every (row, column) pair, in blocks.

    Every pair of a row and a column is an impostor pair; its squared
    distance is ``||Z_rows[i] - Z_cols[l]||^2`` (float64 GEMM expansion, see
    :mod:`linmetric._kernels.distances`). The weights never form a list of
    pairs: each block goes straight into
    ``C = X_r^T diag(W 1) X_r + X_c^T diag(W^T 1) X_c - X_r^T W X_c - X_c^T W^T X_r``.
    Time ``O(n_rows n_cols (n_components + n_features))``; memory one
    block of ``working_memory`` and its product with ``X_cols``.

    Parameters
    ----------
    X_rows : ndarray of shape (n_rows, n_features)
    Z_rows : ndarray of shape (n_rows, n_components)
        The rows under the metric of the columns' class.
    X_cols : ndarray of shape (n_cols, n_features)
    Z_cols : ndarray of shape (n_cols, n_components)
    target_sq : ndarray of shape (n_rows, n_neighbors), float64
        Each row's squared distances to its target neighbours.
    mu : float
        Weight of the push term.
    squared : bool
        Squared hinge (True) or hinge (False).
    working_memory : float or None
        Budget in MiB for one block.

    Returns
    -------
    push : float
        ``sum h(1 + t_ij - d_il)`` over the active triplets (not yet times mu).
    C : ndarray of shape (n_features, n_features), float64
        Symmetric.
    target_weights : ndarray of shape (n_rows, n_neighbors), float64
        ``mu sum_l h'(1 + t_ij - d_il)`` per target pair.
    n_active : int
        Pairs inside their row's margin ``max_j t_ij + 1``.

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric._kernels.mm_lmnn import bipartite_push_terms
    >>> rows, cols = np.array([[0.0]]), np.array([[0.5], [3.0]])
    >>> push, C, target_w, n_active = bipartite_push_terms(
    ...     rows, rows, cols, cols, np.array([[1.0]]), mu=0.5, squared=False)
    >>> float(push), C.tolist(), target_w.tolist(), n_active
    (1.75, [[-0.125]], [[0.5]], 1)
    """
    X_rows = np.ascontiguousarray(X_rows, dtype=np.float64)
    X_cols = np.ascontiguousarray(X_cols, dtype=np.float64)
    Z_rows = np.ascontiguousarray(Z_rows, dtype=np.float64)
    Z_cols = np.ascontiguousarray(Z_cols, dtype=np.float64)
    target_sq = np.ascontiguousarray(target_sq, dtype=np.float64)
    n_rows = X_rows.shape[0]
    target_weights = np.zeros(target_sq.shape, dtype=np.float64)
    row_push = np.zeros(n_rows, dtype=np.float64)
    row_active = np.zeros(n_rows, dtype=np.intp)
    row_degrees = np.zeros(n_rows, dtype=np.float64)
    col_degrees = np.zeros(X_cols.shape[0], dtype=np.float64)
    cross = np.zeros((X_rows.shape[1], X_rows.shape[1]), dtype=np.float64)
    if n_rows == 0 or X_cols.shape[0] == 0:
        return 0.0, cross, target_weights, 0
    # half the budget per block: the product W X_cols is a second array
    half = None if working_memory is None else working_memory / 2.0
    for start, stop, block in sq_distance_blocks(Z_rows, Z_cols, working_memory=half):
        run_on_row_ranges(
            _bipartite_push_kernel,
            stop - start,
            block,
            start,
            target_sq,
            float(mu),
            bool(squared),
            target_weights,
            row_push,
            row_active,
        )
        row_degrees[start:stop] = block.sum(axis=1)
        col_degrees += block.sum(axis=0)
        cross += X_rows[start:stop].T @ (block @ X_cols)
    C = X_rows.T @ (X_rows * row_degrees[:, None])
    C += X_cols.T @ (X_cols * col_degrees[:, None])
    C -= cross
    C -= cross.T
    return float(row_push.sum()), (C + C.T) / 2.0, target_weights, int(row_active.sum())


def impostors_in_class_metric(
    Z, in_class, radii, *, working_memory=None, max_pairs=None
):
    """The pairs ``(i, l)``, ``l`` in the class and ``i`` not, inside ``radii[i]``.

    ``Z`` holds every point under the metric of the class (``X L_c^T``);
    the pairs are those with ``||z_i - z_l||^2 < radii[i]``, found by the
    exact impostor search of :func:`linmetric._kernels.find_impostors` on
    the two labels "in the class" and "not in it", with the radii of the
    class's own points set below zero so that only rows outside it match.
    Time ``O(n_in n_out n_components)``, memory one block of
    ``working_memory`` plus the pairs.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_components), float32 or float64
    in_class : ndarray of shape (n_samples,), bool
    radii : ndarray of shape (n_samples,)
        Squared radius of each row outside the class.
    working_memory : float or None
        Budget in MiB for one block of the search.
    max_pairs : int or None
        Give up, returning None, when there are more pairs than this.

    Returns
    -------
    rows, cols : ndarray of shape (n_pairs,), intp
        Sorted by ``(row, col)``; None when more than ``max_pairs``.

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric._kernels.mm_lmnn import impostors_in_class_metric
    >>> Z = np.array([[0.0], [1.0], [1.5], [9.0]])
    >>> in_class = np.array([False, True, False, True])
    >>> impostors_in_class_metric(Z, in_class, np.full(4, 1.1))
    (array([0, 2]), array([1, 1]))
    """
    in_class = np.asarray(in_class, dtype=bool)
    radii = np.where(in_class, -1.0, np.asarray(radii, dtype=np.float64))
    found = find_impostors(
        Z,
        in_class.astype(np.intp),
        radii,
        working_memory=working_memory,
        max_pairs=max_pairs,
    )
    return None if found is None else (found[0], found[1])


@jit
def _mm_energy_kernel(
    start,
    stop,
    block,
    labels,
    n_neighbors,
    train_target_sq,
    train_radius,
    mu,
    squared,
    out,
):
    # block[t, c, i] = ||L_c (x_t - x_i)||^2 (float64); out[t, c] receives
    # the energy E(t, c) of test point t labelled c.
    n_classes = block.shape[1]
    n_train = block.shape[2]
    k_train = train_target_sq.shape[1]
    nearest = np.empty((n_classes, n_neighbors), dtype=np.float64)
    nearest_index = np.empty((n_classes, n_neighbors), dtype=np.intp)
    counts = np.empty(n_classes, dtype=np.intp)
    radius = np.empty(n_classes, dtype=np.float64)
    push = np.empty(n_classes, dtype=np.float64)
    for t in range(start, stop):
        # t's target neighbours if labelled c: the k nearest of class c in
        # L_c, the metric of the point they go to (ties: smaller index)
        for c in range(n_classes):
            counts[c] = 0
            push[c] = 0.0
        for i in range(n_train):
            c = labels[i]
            d = block[t, c, i]
            if counts[c] < n_neighbors or d < nearest[c, n_neighbors - 1]:
                counts[c] = _insert(nearest[c], nearest_index[c], counts[c], d, i)
        for c in range(n_classes):
            # the widest margin of t labelled c; t itself fills the slots a
            # small class leaves, at distance 0
            radius[c] = 1.0
            if counts[c] > 0:
                radius[c] = max(radius[c], 1.0 + nearest[c, counts[c] - 1])
        for i in range(n_train):
            c_i = labels[i]
            d_own = block[t, c_i, i]  # ||L_{y_i} (t - x_i)||^2
            for c in range(n_classes):
                if c == c_i:
                    continue
                # i as an impostor of t labelled c: 1 + d(t, j) - d(t, i)
                if d_own < radius[c]:
                    for m in range(counts[c]):
                        z = 1.0 + nearest[c, m] - d_own
                        if z > 0.0:
                            push[c] += z * z if squared else z
                    z = 1.0 - d_own
                    if counts[c] < n_neighbors and z > 0.0:
                        push[c] += (n_neighbors - counts[c]) * (z * z if squared else z)
                # t labelled c as an impostor of i, measured in L_c
                d = block[t, c, i]
                if d < train_radius[i]:
                    for m in range(k_train):
                        z = 1.0 + train_target_sq[i, m] - d
                        if z > 0.0:
                            push[c] += z * z if squared else z
        for c in range(n_classes):
            pull = 0.0
            for m in range(counts[c]):
                pull += nearest[c, m]
            energy = mu * push[c]
            if mu < 1.0:  # never inf * 0
                energy += (1.0 - mu) * pull
            out[t, c] = energy


def mm_energies(
    X_test,
    X_train,
    labels,
    components,
    train_target_sq,
    *,
    mu,
    squared,
    working_memory=None,
):
    """Multi-metric energies ``E(t, c)`` of test points under each label.

    ``E(t, c) = (1 - mu) sum_{j ~> t} ||L_c (t - x_j)||^2
    + mu sum_{j ~> t} sum_{l: y_l != c} h(1 + ||L_c (t - x_j)||^2
    - ||L_{y_l} (t - x_l)||^2)
    + mu sum_{i: y_i != c} sum_{j ~> i} h(1 + d(i, j) - ||L_c (x_i - t)||^2)``
    with ``j ~> t`` the ``k`` nearest class-``c`` training points in
    ``L_c`` (``t`` itself, at distance 0, in place of those a class of
    fewer than ``k`` points lacks) and ``d(i, j)`` the training points'
    target distances in their own class metric.

    Parameters
    ----------
    X_test : ndarray of shape (n_test, n_features), float32 or float64
        Test points, centred as ``X_train``.
    X_train : ndarray of shape (n_train, n_features)
        Training points; centred ones keep the most digits.
    labels : ndarray of shape (n_train,), intp
        Training class codes in ``0 .. n_classes - 1``.
    components : ndarray of shape (n_classes, n_components, n_features)
        The map of each class.
    train_target_sq : ndarray of shape (n_train, k), float64
        Squared distances of each training point to its target neighbours
        in its own class metric (0 where a point is its own target); ``k``
        is its width.
    mu : float
        Weight of the push terms.
    squared : bool
        Squared hinge (True) or hinge (False).
    working_memory : float or None
        Budget in MiB for one block: a block of test points holds its
        distances to every training point in every class metric, float64.

    Returns
    -------
    energies : ndarray of shape (n_test, n_classes), float64
        Products from the GEMM in the input dtype, sums in float64.

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric._kernels.mm_lmnn import mm_energies
    >>> X_train = np.array([[0.0], [0.5], [10.0], [10.5]])
    >>> labels = np.array([0, 0, 1, 1])
    >>> maps = np.ones((2, 1, 1))
    >>> mm_energies(np.array([[1.0]]), X_train, labels, maps,
    ...             np.full((4, 1), 0.25), mu=0.5, squared=False)
    array([[  0.125, 122.5  ]])
    """
    X_test, X_train = (
        as_float_matrix(X_test, "X_test"),
        as_float_matrix(X_train, "X_train"),
    )
    dtype = np.result_type(X_test, X_train)
    X_test = X_test.astype(dtype, copy=False)
    X_train = X_train.astype(dtype, copy=False)
    labels = np.ascontiguousarray(labels, dtype=np.intp)
    components = np.asarray(components).astype(dtype, copy=False)
    train_target_sq = np.ascontiguousarray(train_target_sq, dtype=np.float64)
    n_classes, n_test, n_train = components.shape[0], X_test.shape[0], X_train.shape[0]
    n_neighbors = train_target_sq.shape[1]
    train_radius = 1.0 + train_target_sq.max(axis=1, initial=0.0)
    with np.errstate(over="ignore", invalid="ignore"):
        Z_train = [X_train @ components[c].T for c in range(n_classes)]
    train_norms = [row_norms_sq(Z) for Z in Z_train]
    out = np.empty((n_test, n_classes), dtype=np.float64)
    # per test row: n_classes rows of float64 distances and one of products
    n_rows = rows_per_chunk(
        n_train * (8 * n_classes + X_test.itemsize), working_memory, max_rows=n_test
    )
    # one buffer for every block: never two blocks at once
    blocks = np.empty((n_rows, n_classes, n_train), dtype=np.float64)
    for start in range(0, n_test, n_rows):
        stop = min(start + n_rows, n_test)
        block = blocks[: stop - start]
        with np.errstate(over="ignore", invalid="ignore"):
            for c in range(n_classes):
                Z = X_test[start:stop] @ components[c].T
                # in place: no temporary beyond the products
                distances = block[:, c, :]
                np.multiply(Z @ Z_train[c].T, -2.0, out=distances)
                distances += row_norms_sq(Z)[:, None]
                distances += train_norms[c][None, :]
        np.maximum(block, 0.0, out=block)
        run_on_row_ranges(
            _mm_energy_kernel,
            stop - start,
            block,
            labels,
            n_neighbors,
            train_target_sq,
            train_radius,
            float(mu),
            bool(squared),
            out[start:stop],
        )
    return out
