"""Relevant Components Analysis (RCA)."""

import numbers
import threading
import warnings

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import column_or_1d

from ._base import SupervisedMetricLearner
from ._lfda import _in_units, fix_signs, symmetric_eigh
from ._params import Interval, validate_params
from ._threads import limit_threads
from ._validation import _exponent, centred_in_units, validate_X, validate_X_y

# Below this many multiply-adds in its largest product (n d^2, or d^3)
# BLAS is left alone: OpenBLAS runs products under 2**18 on one thread, and
# setting its limit costs a scan of the loaded libraries on a process's first
# fit. Above it, BLAS runs on one thread: RCA's products are one pass over
# the data, and on a busy machine BLAS threads waiting for each other cost
# far more than they save (tens of times the product on MNIST).
_BLAS_SERIAL_WORK = 2**18


class RCA(SupervisedMetricLearner):
    r"""Relevant Components Analysis.

    RCA [1]_ learns from chunklets: small groups of points known to belong
    to the same (unknown) class. The variability inside a chunklet is
    irrelevant to the class, so RCA whitens it away. With ``m_j`` the mean
    of chunklet ``j`` and ``p`` the number of points in chunklets,

    .. math::

        \hat C = \frac{1}{p} \sum_j \sum_{i \in j} (x_{ji} - m_j)
        (x_{ji} - m_j)^T, \qquad L = \hat C^{-1/2},

    so the learned metric is ``M = C^-1``, the maximum-likelihood
    Mahalanobis metric under the paper's Gaussian model. The optional
    dimensionality reduction (the paper's step 2, a Fisher criterion with
    ``C`` as the within-class scatter) keeps the ``n_components`` directions
    that maximise total variance relative to within-chunklet variance.

    ``fit(X, y)`` draws chunklets from class labels: ``n_chunks`` disjoint
    chunklets of ``chunk_size`` points each, every chunklet inside one class;
    with a fixed ``random_state`` the same chunklets of points are drawn
    whatever the order of the samples.
    :meth:`fit_chunklets` takes chunklets directly, as a chunklet id per
    sample.

    A singular ``C`` (fewer chunklet degrees of freedom than features, or
    directions in which no chunklet varies) has no inverse: RCA is then
    restricted to the range of ``C``: directions with eigenvalues below
    ``tol`` times the largest are dropped, a ``UserWarning`` says so, and
    ``components_`` has ``rank(C)`` rows. The learned distance ignores the
    dropped directions (``M`` is the pseudo-inverse of ``C``).

    Cost. ``O(p d^2 + d^3)`` time and ``O(d^2)`` memory beyond the data.

    Parameters
    ----------
    n_components : int, default=None
        Output dimension; None keeps every direction of the range of ``C``
        (no reduction). A smaller number applies the reduction step.
    n_chunks : int, default=None
        Chunklets drawn by ``fit(X, y)``; None draws as many as the classes
        allow (every class split into chunklets of ``chunk_size``).
    chunk_size : int, default=2
        Points per chunklet drawn by ``fit(X, y)``.
    tol : float, default=1e-10
        Eigenvalues of ``C`` at or below ``tol`` times the largest count as
        zero.
    random_state : int, RandomState instance or None, default=None
        Seeds the drawing of chunklets in ``fit(X, y)``.

    Attributes
    ----------
    components_ : ndarray of shape (n_components_, n_features)
        The learned map ``L``, in the dtype of X.
    chunk_covariance_ : ndarray of shape (n_features, n_features)
        The within-chunklet covariance ``C`` (float64; inf where it exceeds
        the float64 range, for data beyond about 1e154). RCA itself computes
        in units of the data, so any finite scale works.
    rank_ : int
        Numerical rank of ``C``.
    n_components_ : int
        Number of rows of ``components_``.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X has string column names.

    Notes
    -----
    Deviations from [1]_: ``L = diag(w)^-1/2 U^T`` with ``C = U diag(w)
    U^T`` rather than the symmetric ``C^-1/2`` (the same metric; the output
    is rotated to the principal axes of ``C``); a singular ``C`` is
    restricted to its range instead of being inverted; the reduction step
    uses the total scatter of all of ``X`` (points outside chunklets
    included) and the generalised eigenvectors of ``(S_t, C)``, which
    maximise the paper's determinant ratio.

    References
    ----------
    .. [1] A. Bar-Hillel, T. Hertz, N. Shental and D. Weinshall, "Learning a
       Mahalanobis Metric from Equivalence Constraints", Journal of Machine
       Learning Research 6, 2005.

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric import RCA
    >>> X = np.array([[0.0, 0.0], [1.0, 0.1], [0.0, 2.0], [-1.0, 2.1],
    ...               [5.0, 1.0], [6.0, 0.9], [3.0, 3.0]])
    >>> chunks = np.array([0, 0, 1, 1, 2, 2, -1])  # -1: in no chunklet
    >>> rca = RCA().fit_chunklets(X, chunks)
    >>> M = rca.get_mahalanobis_matrix()
    >>> bool(M[1, 1] > 50 * M[0, 0])  # x1 varies little within chunklets
    True
    """

    _parameter_constraints = {
        "n_components": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "n_chunks": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "chunk_size": [Interval(numbers.Integral, 2, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, 1, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_components=None,
        *,
        n_chunks=None,
        chunk_size=2,
        tol=1e-10,
        random_state=None,
    ):
        self.n_components = n_components
        self.n_chunks = n_chunks
        self.chunk_size = chunk_size
        self.tol = tol
        self.random_state = random_state

    def fit(self, X, y):
        """Fit RCA to chunklets drawn from class labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; float32 is kept.
        y : array-like of shape (n_samples,)
            Class labels; at least two classes.

        Returns
        -------
        self : RCA
        """
        validate_params(self)
        X, labels, _ = validate_X_y(self, X, y)
        random_state = _random_state(self.random_state)
        n_samples, n_features = X.shape
        if max(n_samples, n_features) * n_features**2 <= _BLAS_SERIAL_WORK:
            return self._fit_groups(X, labels, random_state)
        with limit_threads(blas=1):
            return self._fit_groups(X, labels, random_state)

    def _fit_groups(self, X, labels, random_state):
        groups = draw_groups(
            labels, self.n_chunks, self.chunk_size, random_state, points=X
        )
        covariance, exponent = group_covariance(X, groups)
        return self._solve(covariance, groups.size, exponent, X)

    def fit_chunklets(self, X, chunks):
        """Fit RCA to given chunklets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; float32 is kept. Points in no chunklet still count
            in the total scatter of the reduction step.
        chunks : array-like of shape (n_samples,) of int
            Chunklet id of each sample (any non-negative integers); -1 for a
            sample in no chunklet. Chunklets of one point carry no
            information and are ignored.

        Returns
        -------
        self : RCA
        """
        validate_params(self)
        X = validate_X(self, X)
        chunks = column_or_1d(chunks, warn=True)
        if chunks.shape[0] != X.shape[0]:
            raise ValueError(
                f"chunks has {chunks.shape[0]} entries, but X has {X.shape[0]} "
                "samples; give one chunklet id (or -1) per sample."
            )
        if not np.issubdtype(chunks.dtype, np.integer) or np.any(chunks < -1):
            raise ValueError(
                "chunks must hold integer chunklet ids >= 0, or -1 for a sample "
                f"in no chunklet; got values of dtype {chunks.dtype} in "
                f"[{chunks.min()}, {chunks.max()}]."
            )
        n_samples, n_features = X.shape
        if max(n_samples, n_features) * n_features**2 <= _BLAS_SERIAL_WORK:
            return self._fit_chunklets(X, chunks.astype(np.intp))
        with limit_threads(blas=1):
            return self._fit_chunklets(X, chunks.astype(np.intp))

    def _fit_chunklets(self, X, chunks):
        X_units, exponent = centred_in_units(X)
        covariance, n_points = chunklet_covariance(X_units, chunks)
        return self._solve(covariance, n_points, exponent, X)

    def _solve(self, covariance, n_points, exponent, X):
        # covariance is C in units of 2**exponent; X the data, for the
        # reduction step.
        if n_points == 0:
            raise ValueError(
                "No chunklet has two or more points; RCA needs at least one "
                "chunklet of two points to estimate the within-chunklet "
                "covariance."
            )
        w, U = symmetric_eigh(covariance)
        w, U = w[::-1], U[:, ::-1]
        rank = int(np.sum(w > self.tol * w[0])) if w[0] > 0 else 0
        if rank == 0:
            raise ValueError(
                "Every chunklet is a set of identical points: the "
                "within-chunklet covariance is zero and defines no metric."
            )
        n_features = X.shape[1]
        if self.n_components is not None and self.n_components > rank:
            raise ValueError(
                f"n_components={self.n_components} is out of range: the "
                f"within-chunklet covariance has rank {rank}, so RCA gives at "
                f"most {rank} components."
            )
        if rank < n_features and self.n_components is None:
            warnings.warn(
                f"The within-chunklet covariance has rank {rank} < n_features="
                f"{n_features}; RCA is restricted to its range and ignores the "
                f"other {n_features - rank} directions. More chunklets, or PCA "
                "to fewer features first, avoid this.",
                UserWarning,
                stacklevel=3,
            )
        # Whitening of C on its range: W C W^T = I.
        whitening = fix_signs(U[:, :rank]).T / np.sqrt(w[:rank])[:, None]
        if self.n_components is not None and self.n_components < rank:
            # X centred, in its own units: the total scatter of the whitened
            # data up to a positive factor, which leaves its eigenvectors.
            X_units, _ = centred_in_units(X)
            projected = np.asarray(X_units, dtype=np.float64) @ whitening.T
            total = projected.T @ projected / X.shape[0]
            _, vectors = symmetric_eigh((total + total.T) / 2)
            kept = fix_signs(vectors[:, ::-1][:, : self.n_components])
            whitening = kept.T @ whitening
        with np.errstate(over="ignore", under="ignore"):
            whitening = np.ldexp(whitening, -exponent)
        self.components_ = np.ascontiguousarray(whitening, dtype=X.dtype)
        with np.errstate(over="ignore", under="ignore"):
            self.chunk_covariance_ = np.ldexp(covariance, 2 * exponent)
        self.rank_ = rank
        self.n_components_ = whitening.shape[0]
        return self


def chunklet_covariance(X, chunks):
    """The within-chunklet covariance ``C`` and the points it counts.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    chunks : ndarray of shape (n_samples,), intp
        Chunklet ids, -1 for no chunklet.

    Returns
    -------
    covariance : ndarray of shape (n_features, n_features), float64
        ``1/p sum_j sum_{i in j} (x_ji - m_j)(x_ji - m_j)^T`` over the
        chunklets of two or more points; zeros if there is none.
    n_points : int
        ``p``, the number of points in those chunklets.
    """
    in_chunk = np.flatnonzero(chunks >= 0)
    # The points of each chunklet together, by chunklet id.
    order = in_chunk[np.argsort(chunks[in_chunk], kind="stable")]
    ids = chunks[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if ids.size else ids
    sizes = np.diff(np.r_[starts, ids.shape[0]])
    kept = sizes >= 2
    n_features = X.shape[1]
    n_points = int(sizes[kept].sum())
    if n_points == 0:
        return np.zeros((n_features, n_features)), 0
    keep = np.repeat(kept, sizes)
    points = np.asarray(X[order[keep]], dtype=np.float64)
    starts, sizes = np.cumsum(np.r_[0, sizes[kept][:-1]]), sizes[kept]
    if np.all(sizes == sizes[0]):  # drawn chunklets: one reshape
        grouped = points.reshape(sizes.shape[0], sizes[0], -1)
        grouped -= grouped.mean(axis=1, keepdims=True)
    else:
        means = np.add.reduceat(points, starts, axis=0) / sizes[:, None]
        points -= np.repeat(means, sizes, axis=0)
    covariance = points.T @ points / n_points
    return (covariance + covariance.T) / 2, n_points


# A RandomState per thread, re-seeded for an int random_state: the same
# stream as a new RandomState(seed), which costs 0.1 ms to create (its
# generator is first seeded from the system's entropy), against 1.5 us.
_SEEDED = threading.local()


def _random_state(seed):
    """``check_random_state(seed)``, an int seed without a new RandomState."""
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        random_state = getattr(_SEEDED, "random_state", None)
        if random_state is None:
            random_state = _SEEDED.random_state = np.random.RandomState()
        random_state.seed(seed)
        return random_state
    return check_random_state(seed)


def draw_chunklets(labels, n_chunks, chunk_size, random_state, *, points=None):
    """Disjoint chunklets of ``chunk_size`` points, each inside one class.

    :func:`draw_groups`, as a chunklet id per sample.

    Returns
    -------
    chunks : ndarray of shape (n_samples,), intp
        Chunklet id of each sample, -1 for samples in no chunklet.
    """
    labels = np.unique(labels, return_inverse=True)[1].reshape(-1)
    groups = draw_groups(labels, n_chunks, chunk_size, random_state, points=points)
    chunks = np.full(labels.shape[0], -1, dtype=np.intp)
    chunks[groups] = np.arange(groups.shape[0])[:, None]
    return chunks


def draw_groups(labels, n_chunks, chunk_size, random_state, *, points=None):
    """Disjoint chunklets of ``chunk_size`` points, each inside one class.

    Every class is shuffled and cut into ``n_c // chunk_size`` chunklets;
    ``n_chunks`` of all these are chosen uniformly without replacement (all
    of them when None), so classes contribute in proportion to their size.
    With ``points`` (the samples), each class is first put in the order of
    its members' squared distances to the class mean, so that the same seed
    draws the same chunklets of points whatever the order of the samples
    (and after shifting, rescaling or permuting the features).

    Parameters
    ----------
    labels : ndarray of shape (n_samples,), intp
        Class codes ``0..n_classes-1``.

    Returns
    -------
    groups : ndarray of shape (n_chunks, chunk_size), intp
        The samples of each chunklet, chunklets in increasing order of
        their first candidate index (classes in label order).
    """
    sizes = np.bincount(labels)
    order = np.argsort(labels, kind="stable")
    if points is not None:
        # in units of the data's range: the squared distances of data at
        # any finite scale neither over- nor underflow
        points, scale, _ = _in_units(points)
    candidates = []
    start = 0
    for size in sizes:
        members = order[start : start + size]  # increasing sample index
        start += size
        if size == 0:
            continue
        if points is not None:
            class_points = np.take(points, members, axis=0).astype(
                np.float64, copy=False
            )
            class_points -= class_points.mean(axis=0)
            if not 2.0**-200 < scale < 2.0**200:  # the order needs no units else
                class_points *= scale
            distances = np.einsum("ij,ij->i", class_points, class_points)
            members = members[np.argsort(distances, kind="stable")]
        members = random_state.permutation(members)
        n_class_chunks = size // chunk_size
        candidates.append(
            members[: n_class_chunks * chunk_size].reshape(n_class_chunks, chunk_size)
        )
    candidates = np.concatenate(candidates)
    available = candidates.shape[0]
    if available == 0 or (n_chunks is not None and n_chunks > available):
        raise ValueError(
            f"n_chunks={n_chunks} chunklets of chunk_size={chunk_size} points "
            f"cannot be drawn: the classes of y hold only {available} disjoint "
            "chunklets of that size. Lower n_chunks or chunk_size."
        )
    n_chunks = available if n_chunks is None else n_chunks
    chosen = np.sort(random_state.choice(available, size=n_chunks, replace=False))
    return candidates[chosen]


def group_covariance(X, groups):
    """The within-chunklet covariance of equal chunklets, in units.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64
    groups : ndarray of shape (n_chunks, chunk_size), intp
        The samples of each chunklet.

    Returns
    -------
    covariance : ndarray of shape (n_features, n_features), float64
        ``C`` of ``X / 2**exponent``.
    exponent : int
        The largest absolute deviation from a chunklet mean (for chunklets
        of two, the largest difference) is below ``2**exponent``; 0 if
        every chunklet is a set of identical points.
    """
    n_chunks, chunk_size = groups.shape
    if chunk_size == 2:
        # x - m = +-(x_a - x_b) / 2: C = sum_j delta_j delta_j^T / (2 p)
        deviations = np.take(X, groups[:, 0], axis=0).astype(np.float64, copy=False)
        deviations -= np.take(X, groups[:, 1], axis=0)
        weight = 1.0 / (4 * n_chunks)
    else:
        points = np.take(X, groups, axis=0).astype(np.float64, copy=False)
        points -= points.mean(axis=1, keepdims=True)
        deviations = points.reshape(n_chunks * chunk_size, -1)
        weight = 1.0 / (n_chunks * chunk_size)
    exponent = _exponent(max(deviations.max(), -deviations.min()))
    if exponent is None:
        return np.zeros((X.shape[1], X.shape[1])), 0
    if not -200 < exponent < 200:  # in units first: the products stay in range
        deviations = np.ldexp(deviations, -exponent)
        covariance = deviations.T @ deviations
    else:  # in units after (a power of two: the same digits)
        covariance = np.ldexp(deviations.T @ deviations, -2 * exponent)
    covariance *= weight
    return (covariance + covariance.T) / 2, exponent
