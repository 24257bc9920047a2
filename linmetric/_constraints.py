"""Triplets and quadruplets drawn from class labels, and checks of given tuples.

A triplet ``(a, b, c)`` means "a is closer to b than to c"; a quadruplet
``(a, b, c, d)`` means "d(a, b) < d(c, d)". The samplers return row indices
into the training data; the learners' ``fit_triplets`` and
``fit_quadruplets`` take the points themselves, validated here.
"""

import numpy as np

from ._itml import sample_label_pairs
from ._validation import FLOAT_DTYPES, check_points

# Bytes of one block of query-to-point distances in the triplet sampler.
_BLOCK_BYTES = 16 * 2**20


def sample_triplets(
    X, y_codes, *, k_genuine=3, k_impostor=10, n_constraints=None, random_state
):
    """Triplets ``(i, j, l)`` with j a near same-class and l a near other-class sample.

    For every sample ``i`` whose class has another member, ``j`` runs over
    its ``k_genuine`` nearest neighbours of the same class and ``l`` over
    its ``k_impostor`` nearest neighbours of the other classes (Euclidean
    distance), giving
    ``k_genuine * k_impostor`` triplets per sample; ``k_genuine`` and
    ``k_impostor`` are cut to the class sizes available. With
    ``n_constraints``, that many of them are drawn uniformly without
    replacement (with replacement if there are fewer).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    y_codes : ndarray of shape (n_samples,), int
        Class codes ``0 .. n_classes - 1``, at least two classes.
    k_genuine, k_impostor : int
        Neighbours per sample of its own class and of the other classes.
    n_constraints : int or None
        The number of triplets; None keeps them all.
    random_state : numpy.random.RandomState

    Returns
    -------
    triplets : ndarray of shape (n_triplets, 3), intp
    """
    y_codes = np.asarray(y_codes, dtype=np.intp)
    triplets = []
    for code in np.unique(y_codes):
        members = np.flatnonzero(y_codes == code)
        others = np.flatnonzero(y_codes != code)
        k_same = min(k_genuine, members.size - 1)
        k_other = min(k_impostor, others.size)
        if k_same < 1 or k_other < 1:
            continue
        genuine = members[_nearest(X[members], X[members], k_same, exclude_self=True)]
        impostors = others[_nearest(X[members], X[others], k_other)]
        anchors = np.repeat(members, k_same * k_other)
        genuine = np.repeat(genuine, k_other, axis=1).ravel()
        impostors = np.tile(impostors, (1, k_same)).ravel()
        triplets.append(np.stack((anchors, genuine, impostors), axis=1))
    if not triplets:
        raise ValueError(
            "No triplet can be drawn from y: every class has a single sample, "
            "so no sample has a same-class neighbour."
        )
    triplets = np.concatenate(triplets).astype(np.intp)
    if n_constraints is not None:
        replace = n_constraints > triplets.shape[0]
        chosen = random_state.choice(triplets.shape[0], n_constraints, replace=replace)
        triplets = triplets[np.sort(chosen)]
    return triplets


def _nearest(queries, points, k, *, exclude_self=False):
    """Indices of the ``k`` nearest ``points`` of each query, nearest first.

    Squared Euclidean distances by blocks of queries (memory bounded by
    ``_BLOCK_BYTES``); the chosen are sorted by distance, then index (which
    of several points tied at the k-th distance is chosen is unspecified). With ``exclude_self``,
    ``queries`` are ``points`` and each query skips itself.
    """
    n_queries, n_points = queries.shape[0], points.shape[0]
    point_norms = np.einsum("ij,ij->i", points, points)
    block = max(1, _BLOCK_BYTES // (8 * max(n_points, 1)))
    nearest = np.empty((n_queries, k), dtype=np.intp)
    for start in range(0, n_queries, block):
        stop = min(start + block, n_queries)
        distances = point_norms - 2.0 * queries[start:stop] @ points.T
        if exclude_self:
            distances[np.arange(stop - start), np.arange(start, stop)] = np.inf
        candidates = np.argpartition(distances, k - 1, axis=1)[:, :k]
        order = np.lexsort(
            (candidates, np.take_along_axis(distances, candidates, axis=1))
        )
        nearest[start:stop] = np.take_along_axis(candidates, order, axis=1)
    return nearest


def default_n_constraints(n_constraints, n_classes):
    """``n_constraints``, or ``20 * n_classes ** 2`` where it is None."""
    if n_constraints is None:
        return 20 * n_classes**2
    return n_constraints


def sample_quadruplets(y_codes, n_constraints, random_state):
    """Quadruplets ``(a, b, c, d)``: a and b of one class, c and d of two.

    The pairs are drawn as :func:`linmetric._itml.sample_label_pairs` draws
    similar and dissimilar pairs (uniform, with replacement), ``n_constraints``
    of each, and matched in the order drawn.

    Parameters
    ----------
    y_codes : ndarray of shape (n_samples,), int
        Class codes, at least two classes, one of them with two members.
    n_constraints : int
    random_state : numpy.random.RandomState

    Returns
    -------
    quadruplets : ndarray of shape (n_constraints, 4), intp
    """
    y_codes = np.asarray(y_codes, dtype=np.intp)
    if np.bincount(y_codes).max() < 2:
        raise ValueError(
            "No quadruplet can be drawn from y: every class has a single "
            "sample, so there is no same-class pair."
        )
    rows, cols, signs = sample_label_pairs(y_codes, 2 * n_constraints, random_state)
    similar = signs > 0
    return np.stack(
        (rows[similar], cols[similar], rows[~similar], cols[~similar]), axis=1
    ).astype(np.intp)


def validate_tuples(tuples, n_points, *, name, meaning, dtype=FLOAT_DTYPES):
    """Check tuples of points of shape ``(n_tuples, n_points, n_features)``.

    Parameters
    ----------
    tuples : array-like
    n_points : int
        3 for triplets, 4 for quadruplets.
    name : str
        The parameter name, for messages ("triplets", "quadruplets").
    meaning : str
        What one tuple says, for messages.

    Returns
    -------
    tuples : ndarray of shape (n_tuples, n_points, n_features)
        Finite, C-contiguous float32 or float64.
    """
    tuples = check_points(tuples, name, dtype=dtype)
    if tuples.ndim != 3 or tuples.shape[1] != n_points or tuples.shape[0] == 0:
        raise ValueError(
            f"{name} must have shape (n_{name}, {n_points}, n_features) with "
            f"n_{name} >= 1, each meaning {meaning}; got shape {tuples.shape}."
        )
    if tuples.shape[2] == 0:
        raise ValueError(f"{name} have 0 features; at least one is required.")
    return tuples


def validate_weights(weights, n_tuples, *, name="weights"):
    """Non-negative finite weights, one per tuple, not all zero; None gives ones."""
    if weights is None:
        return np.ones(n_tuples)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (n_tuples,):
        raise ValueError(
            f"{name} must have shape ({n_tuples},), one per tuple; got shape "
            f"{weights.shape}."
        )
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        bad = float(weights[~(np.isfinite(weights) & (weights >= 0))][0])
        raise ValueError(f"{name} must be finite and non-negative; got {bad!r}.")
    if not weights.sum() > 0:
        raise ValueError(f"{name} must not all be zero.")
    return weights
