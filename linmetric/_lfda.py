"""Local Fisher Discriminant Analysis (LFDA)."""

import numbers

import numpy as np
from scipy.linalg import blas, lapack

from ._base import SupervisedMetricLearner
from ._init import resolve_n_components
from ._kernels._chunking import get_working_memory, rows_per_chunk, run_tasks
from ._kernels.distances import error_factor
from ._params import Interval, StrOptions, validate_params
from ._threads import LFDA_SERIAL_MAX_CLASS_SIZE, kernel_threads, limit_threads
from ._validation import _exponent, validate_X_y

# Classes of at least this many points are computed on one triangle of
# their affinity matrix (SYRK, TRMM and compiled kernels: half the work of
# full rows), when it fits in the working memory; smaller classes in NumPy
# on full rows, which needs no compiled kernel (no loading cost in a fresh
# process) and, at their size, is as fast.
TRIANGLE_MIN_CLASS_SIZE = 512
# Below this many multiply-adds OpenBLAS runs a product on one thread.
_BLAS_SERIAL_WORK = 2**18
# Rows per np.exp call on a triangle (the part above the diagonal is skipped
# up to this many columns per row).
_EXP_ROWS = 256


class LFDA(SupervisedMetricLearner):
    r"""Local Fisher Discriminant Analysis.

    LFDA [1]_ is Fisher discriminant analysis with every pair of points
    weighted by a local affinity, so that a class made of several separate
    clusters keeps them apart instead of being squeezed into one blob. The
    affinity of two points is the local-scaling kernel

    .. math::

        A_{ij} = \exp\!\left(-\frac{\|x_i - x_j\|^2}{\sigma_i \sigma_j}\right),
        \qquad \sigma_i = \|x_i - x_i^{(k)}\|,

    with ``x_i^(k)`` the k-th nearest neighbour of ``x_i`` in its own class.
    With ``n_c`` the size of the class of ``i`` and ``n`` the number of
    samples, the local within-class and between-class weights are
    ``W^w_ij = A_ij / n_c`` and ``W^b_ij = A_ij (1/n - 1/n_c)`` for two
    points of the same class, and ``W^w_ij = 0``, ``W^b_ij = 1/n``
    otherwise. The local scatter matrices are
    ``S^w = 1/2 sum_ij W^w_ij (x_i - x_j)(x_i - x_j)^T`` and ``S^b`` alike,
    and the map's directions solve the generalised eigenproblem
    ``S^b phi = lambda S^w phi`` for the largest ``lambda``.

    Cost. Affinities are non-zero only inside a class, and ``S^b`` is the
    total scatter plus within-class terms, so only pairs of the same class
    are ever formed: a large class on one triangle of its affinity matrix
    (SYRK, TRMM, compiled passes; the classes on threads), small classes one
    after the other on full rows (a few NumPy calls each, in float64, in
    buffers of one class), all within ``working_memory``. Time
    ``O(sum_c n_c^2 d + n d^2 + d^3)``, memory ``O(n d + d^2)`` plus the distances of the classes in progress.
    The scatter matrices are computed on each class centred on its member
    nearest its mean (a far outlier drags the mean itself away from the
    other points), in units of the spread, so any shift and any finite
    scale work; a float32 class that float32 products cannot resolve is
    done in float64.

    Parameters
    ----------
    n_components : int, default=None
        Dimension of the learned space; None means ``n_features``.
    k : int, default=7
        Neighbour rank of the local scale ``sigma_i`` (the paper's choice is
        7). In a class of ``n_c <= k`` points the ``(n_c - 1)``-th neighbour
        is used instead.
    embedding : {'weighted', 'orthonormalized', 'plain'}, default='weighted'
        'plain': the generalised eigenvectors, scaled so that
        ``phi^T S^w phi = 1``; 'weighted': those scaled by
        ``sqrt(lambda)`` (negative ``lambda`` count as 0); 'orthonormalized':
        an orthonormal basis of their span (rows of ``components_`` are
        orthonormal, so the map is a projection).
    regularization : float, default=1e-8
        ``S^w`` is made positive definite by raising its eigenvalues to at
        least ``regularization`` times its largest one, so the eigenproblem
        is solved stably when ``S^w`` is singular (more features than
        points, constant features, duplicated points). With 0, ``S^w``
        must be positive definite.
    working_memory : float, default=None
        Budget in MiB for the within-class distances held at once (one
        class's triangle per thread, or a block of rows); None means
        ``sklearn.get_config()['working_memory']``.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        The learned map ``T^T``, in the dtype of X.
    eigenvalues_ : ndarray of shape (n_components,)
        The generalised eigenvalues ``lambda`` of the kept directions, in
        decreasing order.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X has string column names.

    See Also
    --------
    sklearn.discriminant_analysis.LinearDiscriminantAnalysis : The global
        Fisher criterion; LFDA with all affinities equal to 1.

    Notes
    -----
    Deviations from [1]_: the local scale uses the k-th neighbour *within
    the class* (as the author's code does; only within-class affinities are
    ever used); a class smaller than ``k + 1`` uses its farthest neighbour;
    a scale of 0 (a point with ``k`` duplicates) is raised to the square
    root of the smallest normal number of the dtype, so a pair involving
    such a point has affinity 1 if the two points coincide and 0 otherwise;
    ``S^w`` is regularised relative to its largest eigenvalue; each
    direction's sign is fixed so that its largest entry is positive. The
    local scales are exact, except that in the small classes a
    scale whose GEMM value is, by the GEMM error bound, within a relative
    ``2**-36`` of the exact one is taken as it is.

    References
    ----------
    .. [1] M. Sugiyama, "Dimensionality Reduction of Multimodal Labeled Data
       by Local Fisher Discriminant Analysis", Journal of Machine Learning
       Research 8, 2007.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from linmetric import LFDA
    >>> X, y = load_iris(return_X_y=True)
    >>> lfda = LFDA(n_components=2).fit(X, y)
    >>> lfda.transform(X).shape
    (150, 2)
    >>> bool(lfda.eigenvalues_[0] > lfda.eigenvalues_[1] > 0)
    True
    """

    _parameter_constraints = {
        "n_components": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "k": [Interval(numbers.Integral, 1, None, closed="left")],
        "embedding": [StrOptions({"weighted", "orthonormalized", "plain"})],
        "regularization": [Interval(numbers.Real, 0, 1, closed="left")],
        "working_memory": [Interval(numbers.Real, 0, None, closed="neither"), None],
    }

    def __init__(
        self,
        n_components=None,
        *,
        k=7,
        embedding="weighted",
        regularization=1e-8,
        working_memory=None,
    ):
        self.n_components = n_components
        self.k = k
        self.embedding = embedding
        self.regularization = regularization
        self.working_memory = working_memory

    def fit(self, X, y):
        """Fit the LFDA map to labelled data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; float32 is kept (distances are computed in it),
            anything else becomes float64.
        y : array-like of shape (n_samples,)
            Class labels; at least two classes.

        Returns
        -------
        self : LFDA
        """
        validate_params(self)
        X, labels, _ = validate_X_y(self, X, y)
        n_components = resolve_n_components(self.n_components, X.shape[1])
        sizes = np.bincount(labels)
        largest = int(sizes.max())
        if largest * largest * X.shape[1] + X.shape[1] ** 3 <= _BLAS_SERIAL_WORK:
            # BLAS runs products this small on one thread by itself; setting
            # its limit would cost a scan of the loaded libraries on a
            # process's first fit, many times this fit.
            n_threads, blas_threads = 1, None
        elif largest <= LFDA_SERIAL_MAX_CLASS_SIZE:
            # Small products: threads would cost more than they save.
            n_threads, blas_threads = 1, 1
        else:
            # The classes on threads, BLAS on one thread each; a single
            # large class gets BLAS's threads instead.
            n_threads = kernel_threads(int(np.sum(sizes >= 2)))
            blas_threads = 1 if n_threads > 1 else None
        with limit_threads(kernels=1, blas=blas_threads):
            # In units of 2**exponent: the scatter matrices of data at any
            # finite scale neither over- nor underflow.
            within, between, exponent = scatter_in_units(
                X,
                labels,
                self.k,
                working_memory=self.working_memory,
                n_threads=n_threads,
            )
            eigenvalues, directions = generalized_eigenvectors(
                between, within, self.regularization
            )
        eigenvalues = eigenvalues[:n_components]
        directions = directions[:, :n_components]
        if self.embedding == "weighted":
            directions = directions * np.sqrt(np.maximum(eigenvalues, 0))
        if self.embedding == "orthonormalized":
            directions, _ = np.linalg.qr(directions)
            directions = fix_signs(directions)
        else:  # back to the units of the data
            directions = np.ldexp(directions, -exponent)
        self.components_ = np.ascontiguousarray(directions.T, dtype=X.dtype)
        self.eigenvalues_ = eigenvalues
        return self


def local_scatter_matrices(
    X, labels, k, *, working_memory=None, method="auto", n_threads=1
):
    """The local within-class and between-class scatter matrices of LFDA.

    With ``Lap_c(W) = 1/2 sum_ij W_ij (x_i - x_j)(x_i - x_j)^T =
    X_c^T (diag(W 1) - W) X_c`` over the pairs of class ``c``, ``S_t`` the
    total scatter and ``S_c`` the scatter of class ``c`` about its mean:

    - ``S^w = sum_c Lap_c(A) / n_c``;
    - ``S^b = S_t - sum_c n_c S_c / n + sum_c Lap_c(A) (1/n - 1/n_c)``,

    which is the paper's ``S^b`` rewritten so that only same-class pairs
    appear (the ``1/n`` weight of every pair sums to ``S_t``). With ``mu_c``
    the class means and ``mu`` the mean, ``S_t - sum_c n_c S_c / n =
    sum_c (1 - n_c/n) S_c + sum_c n_c (mu_c - mu)(mu_c - mu)^T``. Each
    class is centred on its member nearest its mean first (``Lap_c`` does
    not change, accuracy does), and pairs of a point with itself, which add
    nothing to ``Lap_c``, are left out of its products.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64
    labels : ndarray of shape (n_samples,), intp
        Class codes ``0..n_classes-1``.
    k : int
        Neighbour rank of the local scale.
    working_memory : float or None
        Budget in MiB for the distances of all classes in progress at once.
    method : {'auto', 'blocks', 'triangle', 'rows'}, default='auto'
        'blocks': NumPy on blocks of full rows (no compiled kernels);
        'triangle': the lower triangle of each class's affinity matrix
        (:mod:`linmetric._kernels.lfda`), for classes whose triangle fits in
        the budget (others use blocks); 'rows': each class's full affinity
        matrix in float64, a few NumPy calls per class, in buffers reused
        from class to class (classes whose square does not fit the budget
        use blocks);
        'auto': the triangle for classes of at least
        ``TRIANGLE_MIN_CLASS_SIZE`` points, rows for the others.
    n_threads : int, default=1
        Classes computed at once, each on one thread (the classes done by
        rows as one unit).

    Returns
    -------
    within, between : ndarray of shape (n_features, n_features), float64
    """
    within, between, exponent = scatter_in_units(
        X, labels, k, working_memory=working_memory, method=method, n_threads=n_threads
    )
    with np.errstate(over="ignore", under="ignore"):
        return np.ldexp(within, 2 * exponent), np.ldexp(between, 2 * exponent)


def scatter_in_units(X, labels, k, *, working_memory=None, method="auto", n_threads=1):
    """:func:`local_scatter_matrices` in units of ``2**exponent``.

    The matrices returned are those of ``X / 2**exponent``, a power of two
    near the spread of the data, so that the scatter matrices of data at
    any finite scale neither over- nor underflow. Each class is gathered,
    centred on its member nearest its mean and put in these units on its
    own: no copy of all of X is made.

    Returns
    -------
    within, between : ndarray of shape (n_features, n_features), float64
    exponent : int
    """
    n_samples, n_features = X.shape
    X, scale, exponent = _in_units(X)
    sizes = np.bincount(labels)
    order = np.argsort(labels, kind="stable")
    starts = np.cumsum(sizes) - sizes
    # The class means: each class's own in gather, a single point's here.
    means = np.zeros((sizes.shape[0], n_features))
    single = np.flatnonzero(sizes == 1)
    means[single] = X[order[starts[single]]]
    within = np.zeros((n_features, n_features))
    classes = [c for c in np.argsort(-sizes, kind="stable") if sizes[c] >= 2]
    n_threads = max(1, min(int(n_threads), len(classes)))
    budget = get_working_memory(working_memory) / n_threads * 2**20
    min_triangle = {"auto": TRIANGLE_MIN_CLASS_SIZE, "triangle": 2}.get(method)
    # Units of work: one large class each; the classes done by rows, one.
    units, by_rows = [], []
    for c in classes:
        n_class = int(sizes[c])
        triangle = min_triangle is not None and n_class >= min_triangle
        if triangle and n_class * n_class * X.itemsize <= budget:
            units.append(("triangle", [c]))
        elif triangle or method == "blocks" or n_class * n_class * 16 > budget:
            units.append(("blocks", [c]))
        else:
            by_rows.append(c)
    if by_rows:
        units.append(("rows", by_rows))

    def gather(c):
        """The points of class ``c`` about a centre, in units, float64; the mean's offset.

        The centre is the member nearest the class mean, not the mean: a
        far outlier drags the mean away from every other point, and the
        products that give the distances and the Laplacian would lose all
        the digits of their differences. ``points.T @ points - n_c
        offset offset^T`` is the scatter about the mean.
        """
        members = order[starts[c] : starts[c] + sizes[c]]
        if X.dtype == np.float64:
            points = np.take(X, members, axis=0)
        else:
            points = X[members].astype(np.float64)
        means[c] = points.sum(axis=0)
        means[c] /= sizes[c]
        # (|x - mean|^2 up to a constant, without a copy of the class; its
        # rounding can only pick another member, which serves as well)
        with np.errstate(over="ignore", invalid="ignore"):
            closeness = np.einsum("ij,ij->i", points, points)
            closeness -= 2.0 * (points @ means[c])
        nearest = int(np.argmin(closeness))
        centre = points[nearest].copy()
        points -= centre
        offset = means[c] - centre
        if scale != 1.0:
            points *= scale
            offset *= scale
        return points, offset

    def run(share):
        # One n_c x n_c buffer for the triangles of the share's classes:
        # fresh pages for each class would cost the system time to map them.
        largest = max(
            (sizes[cs[0]] for kind, cs in share if kind == "triangle"), default=0
        )
        buffer = np.empty(largest * largest, dtype=X.dtype)
        results = []
        for kind, cs in share:
            if kind == "rows":
                results.append(_rows_terms(gather, cs, sizes, k, n_samples))
                continue
            (c,) = cs
            centred, offset = gather(c)
            class64 = centred
            X_class = centred.astype(X.dtype, copy=False)
            if X_class.dtype != np.float64:
                if _too_fine_for_float32(centred):
                    X_class = centred  # this class in float64
                else:  # the kernels' rows and the exact ones
                    class64 = X_class.astype(np.float64)
            if kind == "triangle":
                laplacian = _triangle_laplacian(
                    X_class, class64, k, buffer, exact=centred
                )
            else:
                laplacian = _blocked_laplacian(
                    X_class, class64, k, budget / 2**20, exact=centred
                )
            n_class = sizes[c]
            scatter = centred.T @ centred
            scatter -= n_class * np.outer(offset, offset)
            scatter *= 1.0 - n_class / n_samples
            scatter += laplacian * (1.0 / n_samples - 1.0 / n_class)
            results.append((c, laplacian / n_class, scatter))
        return results

    if n_threads == 1:
        terms = run(units)
    else:
        # Longest first, each to the least loaded thread.
        shares = [[] for _ in range(n_threads)]
        loads = [0] * n_threads
        for unit in units:  # already largest first
            lightest = int(np.argmin(loads))
            shares[lightest].append(unit)
            loads[lightest] += int(np.sum(sizes[unit[1]] ** 2))
        results = run_tasks([(run, share) for share in shares if share])
        terms = [term for result in results for term in result]
    # The offsets of the class means from the mean.
    present = np.flatnonzero(sizes)
    offsets = (means[present] - (sizes @ means) / n_samples) * scale
    between = (offsets.T * sizes[present]) @ offsets
    # Lap_c / n_c and (1 - n_c/n) X_c^T X_c + (1/n - 1/n_c) Lap_c, in the
    # same order on any threads
    for _, within_term, between_term in sorted(terms, key=_first):
        within += within_term
        between += between_term
    return _symmetric(within), _symmetric(between), exponent


def _too_coarse(factor, norms, sq_scales):
    """Whether some row's float32 GEMM distances may be off by 1/256 of its scale.

    ``factor * (norms_i + max(norms))`` bounds the error of row ``i``'s
    GEMM distances; against its squared local scale, it is the relative
    error of the affinities' exponents near that scale. Far beyond float32's
    resolution (points far from their class's centre beside their
    neighbours: a class in two distant clusters), the class is done in
    float64.
    """
    slack = factor * (norms + norms.max())
    return bool(np.any(slack > sq_scales * 2.0**-8))


def _too_fine_for_float32(points):
    """Whether float32 squares of a class's distances would leave the normal range.

    That is, whether some point sits very near the class's centre. In units (the largest entry of the data near 1), a point within about
    2**-50 of the centre while others are near 1: a class beside an outlier
    many orders of magnitude away. Such a class is done in float64.
    """
    norms = np.einsum("ij,ij->i", points, points)
    positive = norms[norms > 0]
    return bool(positive.size) and positive.min() < 2.0**-100


def _in_units(X):
    """A power of two near the spread of X, and X to divide by it.

    The spread is the range of all of X's entries: it does not change with
    a shift of the data, and bounds each feature's range.

    Returns
    -------
    X : ndarray
        X itself, or (data near the limits of float64) X divided by a first
        power of two, in float64.
    scale : float
        ``2**-e``, the factor that puts X's points (centred) in units.
    exponent : int
        The exponent of the units of the returned X times ``scale``, in the
        units of the X given (0 if every entry is the same).
    """
    high, low = float(X.max()), float(X.min())
    outer = 0
    if not max(high, -low) < 2.0**500:
        # Data near the float64 limit: first to the scale of its largest
        # entry, so that the range and sums do not overflow.
        outer = _exponent(max(high, -low))
        X = np.ldexp(np.asarray(X, dtype=np.float64), -outer)
        high, low = np.ldexp(high, -outer), np.ldexp(low, -outer)
    inner = _exponent(high - low)
    if inner is None:
        return X, 1.0, outer
    if -1000 < inner < 1000:  # 2**-inner is a normal number
        return X, 2.0**-inner, outer + inner
    return np.ldexp(np.asarray(X, dtype=np.float64), -inner), 1.0, outer + inner


def _rows_terms(gather, classes, sizes, k, n_samples):
    """The terms of small classes in ``S^w`` and ``S^b``.

    ``gather(c)`` gives the points of class ``c`` about a centre, in
    float64, and the offset of their mean from it. Each class is done on
    full rows, in buffers of the largest class that stay in cache:
    distances from one GEMM, the local scales (the k-th GEMM distance of a
    row when that is within a relative ``_SCALE_RTOL`` of the exact one by
    the GEMM error bound, else the exact one, :func:`_kth_distance`), the
    affinities in place, then ``Q = (A - diag(A 1)) X_c`` (without the
    pairs of a point with itself), ``X_c^T Q = -Lap_c(A)`` and ``X_c^T
    X_c`` less the mean's offset, weighted and summed over stacks of
    classes.

    Returns
    -------
    term : (int, ndarray of shape (d, d), ndarray of shape (d, d))
        The first class, ``sum_c Lap_c / n_c`` and ``sum_c (1 - n_c/n)
        X_c^T X_c + (1/n - 1/n_c) Lap_c``.
    """
    largest = int(max(sizes[c] for c in classes))
    buffer = np.empty(2 * largest * largest)
    within = between = None
    stack = []
    for index, c in enumerate(classes):
        size = int(sizes[c])
        points, offset = gather(c)
        if within is None:
            n_features = points.shape[1]
            factor = error_factor(np.float64, n_features)
            within = np.zeros((n_features, n_features))
            between = np.zeros((n_features, n_features))
            # Products of a stack of classes, weighted and summed at once.
            n_stack = max(1, min(len(classes), 2**19 // (n_features * n_features)))
            products = np.empty((2, n_stack, n_features, n_features))
        norms = np.einsum("ij,ij->i", points, points)
        # Minus half the distances, x_i . x_j - |x_i|^2 / 2 - |x_j|^2 / 2
        # (at most 0; the product of points with themselves is one SYRK)
        halves = norms * 0.5
        halved = buffer[: size * size].reshape(size, size)
        np.matmul(points, points.T, out=halved)
        halved -= halves[:, None]
        halved -= halves
        np.minimum(halved, 0.0, out=halved)
        diagonal = halved.reshape(-1)[:: size + 1]
        diagonal[...] = 0.0
        sq_scales = _rows_sq_scales(
            halved,
            buffer[size * size : 2 * size * size].reshape(size, size),
            points,
            norms,
            min(k, size - 1),
            factor,
        )
        # 1 / sigma_i, as _inverse_scales gives it
        inverse = 1.0 / np.sqrt(np.maximum(sq_scales, _TINY64))
        # A_ij = exp(-d_ij / (sigma_i sigma_j)), in place; d_ij <= 4 |x|^2_max
        # in units, so the products overflow only beside a scale near 0.
        twice = inverse * 2.0
        if inverse.max() < 1e150:
            halved *= twice[:, None]
            halved *= inverse
        else:
            with np.errstate(over="ignore"):
                halved *= twice[:, None]
                halved *= inverse
        affinity = np.exp(halved, out=halved)
        # (A - diag(A 1)) without the pairs of a point with itself, which
        # add nothing: the diagonal is minus the other affinities' sum
        diagonal[...] = 0.0
        diagonal -= affinity.sum(axis=1)
        Q = affinity @ points
        np.matmul(points.T, Q, out=products[0, len(stack)])
        np.matmul(points.T, points, out=products[1, len(stack)])
        products[1, len(stack)] -= size * np.outer(offset, offset)
        stack.append(size)
        if len(stack) == n_stack or index == len(classes) - 1:
            counts = np.array(stack, dtype=np.float64)
            n = len(stack)
            # X_c^T Q = -Lap_c
            within -= np.tensordot(1.0 / counts, products[0, :n], axes=1)
            between += np.tensordot(
                1.0 / counts - 1.0 / n_samples, products[0, :n], axes=1
            )
            between += np.tensordot(1.0 - counts / n_samples, products[1, :n], axes=1)
            stack = []
    return classes[0], within, between


def _rows_sq_scales(halved, scratch, rows, norms, k, factor):
    """Squared local scales of one class from its GEMM distances.

    ``halved`` holds minus half the GEMM squared distances (0 on the
    diagonal), ``scratch`` is a buffer of its shape, ``rows`` the class's
    float64 points and ``norms`` their squared norms; ``factor`` times
    ``norms_i + max(norms)`` bounds the error of row ``i``'s GEMM
    distances.
    """
    np.copyto(scratch, halved)
    # The row's own 0 sorts last: entry m - 1 - k is minus half the k-th
    # smallest distance to the others.
    last = halved.shape[1] - 1 - k
    scratch.partition(last, axis=1)
    kth = scratch[:, last] * -2.0
    largest = norms.max()
    if 2.0 * factor * largest <= _SCALE_RTOL * kth.min():  # every row's bound
        return kth
    slack = factor * (norms + largest)
    uncertain = ~(slack <= _SCALE_RTOL * kth)
    if uncertain.any():
        (inexact,) = np.nonzero(uncertain)
        kth[inexact] = _kth_distance(
            halved[inexact] * -2.0,
            rows[inexact],
            rows,
            np.zeros(inexact.shape[0], dtype=np.intp),
            inexact,
            k,
            slack[inexact],
        )
    return kth


def _first(term):
    return term[0]


def _inverse_scales(sq_scales, dtype):
    """``1 / sigma_i`` in ``dtype``, from the squared local scales.

    A scale of 0 (a point with k duplicates) is raised to sqrt(tiny), so
    that sigma_i sigma_j stays a positive normal number: a coinciding pair
    keeps d_ij / (sigma_i sigma_j) = 0 (affinity 1), any other pair gets a
    huge or infinite ratio (affinity 0), and no 0/0 arises.
    """
    tiny = np.finfo(dtype).tiny
    return (1.0 / np.maximum(np.sqrt(sq_scales), np.sqrt(tiny))).astype(dtype)


def _blocked_laplacian(X_class, class64, k, budget, exact=None):
    """``X_c^T (diag(A 1) - A) X_c`` for one class, in NumPy, by blocks of rows.

    One block when the class fits in ``budget`` MiB; otherwise two passes,
    the first for the local scales, the second (the distances again) for
    the affinities.
    """
    n_class = X_class.shape[0]
    k_class = min(k, n_class - 1)
    norms = np.einsum("ij,ij->i", class64, class64)
    factor = error_factor(X_class.dtype, X_class.shape[1])
    # the product, the float64 distances and their partitioned copy
    n_rows = rows_per_chunk(n_class * (X_class.itemsize + 24), budget, max_rows=n_class)
    ranges = [
        (start, min(start + n_rows, n_class)) for start in range(0, n_class, n_rows)
    ]
    sq_scales = np.empty(n_class)
    kept = None
    for start, stop in ranges:
        distances = _block_sq_distances(X_class, norms, start, stop)
        sq_scales[start:stop] = _kth_distance(
            distances,
            class64[start:stop],
            class64,
            np.zeros(stop - start, dtype=np.intp),
            np.arange(start, stop),
            k_class,
            factor * (norms[start:stop] + norms.max()),
        )
        kept = distances if len(ranges) == 1 else None
    if X_class.dtype != np.float64 and _too_coarse(factor, norms, sq_scales):
        # in float64, from the unrounded points if given
        exact = class64 if exact is None else exact
        return _blocked_laplacian(exact, exact, k, budget)
    inverse = _inverse_scales(sq_scales, X_class.dtype).astype(np.float64)
    laplacian = np.zeros((X_class.shape[1], X_class.shape[1]))
    for start, stop in ranges:
        affinity = (
            kept
            if kept is not None
            else _block_sq_distances(X_class, norms, start, stop)
        )
        # A_ij = exp(-d_ij / (sigma_i sigma_j)), in place.
        with np.errstate(over="ignore"):
            affinity *= inverse[start:stop, None]
            affinity *= -inverse[None, :]
        np.exp(affinity, out=affinity)
        degree = affinity.sum(axis=1)
        weighted = np.asarray(
            affinity.astype(X_class.dtype, copy=False) @ X_class, dtype=np.float64
        )
        # X_b^T (diag(degree) X_b - (A X)_b)
        weighted -= class64[start:stop] * degree[:, None]
        laplacian -= class64[start:stop].T @ weighted
    return laplacian


def _block_sq_distances(X_class, norms, start, stop):
    """Squared distances of rows ``start:stop`` to all rows, float64, by GEMM."""
    products = X_class[start:stop] @ X_class.T
    products *= -2.0
    if products.dtype == np.float64:  # in place
        distances = products
        distances += norms[start:stop, None]
        distances += norms[None, :]
    else:
        distances = norms[start:stop, None] + norms[None, :]
        distances += products
    np.maximum(distances, 0.0, out=distances)
    distances[np.arange(stop - start), np.arange(start, stop)] = 0.0
    return distances


def _kth_distance(distances, rows, columns, bases, selves, ks, slack):
    """Exact squared distance of each row to its k-th nearest other column.

    ``distances[r, j]`` is the GEMM squared distance from ``rows[r]`` to
    ``columns[bases[r] + j]`` (inf where there is no column), ``selves[r]``
    the row's own column, ``ks[r]`` its rank ``k`` (an int for all rows).
    Every GEMM value of row ``r`` is within ``slack[r]`` of the exact one,
    so with ``a_r`` the k-th smallest GEMM value of the row, the exact k-th
    smallest is at most ``a_r + slack_r`` and every pair that may lie under
    it has a GEMM value at most ``a_r + 2 slack_r``: only those are
    recomputed exactly (from the float64 ``rows`` and ``columns``).
    """
    n_rows = distances.shape[0]
    # The row's own 0 sorts first: entry k is the k-th smallest of the others.
    if isinstance(ks, numbers.Integral):
        kth = np.partition(distances, ks, axis=1)[:, ks]
        ks = np.full(n_rows, ks, dtype=np.intp)
    else:
        partitioned = np.partition(distances, np.unique(ks), axis=1)
        kth = np.take_along_axis(partitioned, ks[:, None], axis=1)[:, 0]
    candidate_rows, candidates = np.nonzero(distances <= (kth + 2.0 * slack)[:, None])
    others = candidates != selves[candidate_rows]
    candidate_rows, candidates = candidate_rows[others], candidates[others]
    counts = np.bincount(candidate_rows, minlength=n_rows)
    if counts.min() == counts.max():  # as many candidates in every row
        candidates = candidates.reshape(n_rows, counts[0]) + bases[:, None]
        differences = rows[:, None, :] - columns[candidates]
        exact = np.sort(np.einsum("ijk,ijk->ij", differences, differences), axis=1)
        return np.take_along_axis(exact, ks[:, None] - 1, axis=1)[:, 0]
    differences = rows[candidate_rows] - columns[candidates + bases[candidate_rows]]
    exact = np.einsum("ij,ij->i", differences, differences)
    order = np.lexsort((exact, candidate_rows))
    first = np.searchsorted(candidate_rows[order], np.arange(n_rows))
    return exact[order][first + ks - 1]


# Relative accuracy of a small class's local scales taken from the GEMM distances:
# rows whose k-th GEMM distance may be off by more (near duplicates, points
# far from their class mean) get it exactly (``_kth_distance``).
_SCALE_RTOL = 2.0**-36
_TINY64 = float(np.finfo(np.float64).tiny)


def _triangle_laplacian(X_class, class64, k, buffer=None, exact=None):
    """``X_c^T (diag(A 1) - A) X_c`` for one class, on one triangle of ``A``.

    SYRK gives the products ``x_i . x_j`` in the lower triangle of ``T``;
    the kernels of :mod:`linmetric._kernels.lfda` turn them into distances,
    the local scales and the exponents; TRMM gives ``U X_c`` with ``U`` the
    strict upper triangle of ``A``, and with ``S = X_c^T U X_c`` the
    Laplacian is ``X_c^T diag(d) X_c - S - S^T``, ``d`` the degrees without
    the diagonal. ``buffer``, of at least ``n_c**2`` entries of
    ``X_class``'s dtype, holds ``T`` if given.
    """
    from ._kernels import lfda as kernels

    n_class, n_features = X_class.shape
    k_class = min(k, n_class - 1)
    prefix = "d" if X_class.dtype == np.float64 else "s"
    syrk = getattr(blas, prefix + "syrk")
    trmm = getattr(blas, prefix + "trmm")
    # X_class.T is Fortran-ordered: no copy. The result's upper triangle,
    # transposed, is the lower triangle of T.
    if buffer is None:
        buffer = np.empty(n_class * n_class, dtype=X_class.dtype)
    square = buffer[: n_class * n_class].reshape((n_class, n_class), order="F")
    T = syrk(1.0, X_class.T, trans=1, c=square, overwrite_c=1).T
    norms = np.einsum("ij,ij->i", class64, class64)
    sq_scales = np.empty(n_class)
    factor = error_factor(X_class.dtype, n_features)
    kernels.triangle_kth_distance(T, X_class, norms, k_class, factor, sq_scales)
    if X_class.dtype != np.float64 and _too_coarse(factor, norms, sq_scales):
        # in float64, from the unrounded points if given
        exact = class64 if exact is None else exact
        return _triangle_laplacian(exact, exact, k)
    kernels.triangle_exponents(T, _inverse_scales(sq_scales, X_class.dtype))
    # exp of the triangle, and of the few entries above the diagonal that
    # complete each band of rows: those are never read, and may hold
    # anything left in the buffer (so their overflow is not reported).
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, n_class, _EXP_ROWS):
            stop = min(start + _EXP_ROWS, n_class)
            rows = T[start:stop, :stop]
            np.exp(rows, out=rows)
    # A pair of a point with itself adds nothing to the Laplacian: without
    # A_ii = 1 in the degrees and in S, the terms that cancel exactly are
    # not formed (a point whose other affinities are all 0 has a zero row,
    # instead of a difference of two roundings of x_i x_i^T)
    T[np.arange(n_class), np.arange(n_class)] = 0.0
    degree = np.empty(n_class)
    kernels.triangle_degrees(T, degree)
    # (TRMM overwrites its input: a copy, also where X_class is already
    # Fortran-ordered, as a single feature is)
    upper_times_X = trmm(1.0, T.T, np.array(X_class, order="F"), lower=0, overwrite_b=1)
    S = class64.T @ upper_times_X.astype(np.float64, copy=False)
    return (class64 * degree[:, None]).T @ class64 - S - S.T


def generalized_eigenvectors(between, within, regularization):
    """Solve ``between phi = lambda within phi``, largest ``lambda`` first.

    ``within`` is floored first: its eigenvalues are raised to at least
    ``regularization`` times the largest (to 1 if it is zero). With
    ``within = U diag(w) U^T`` the problem becomes the symmetric one of
    ``W^T between W`` with ``W = U diag(w)^-1/2``, and ``phi = W v`` satisfies
    ``phi^T within phi = 1``. When a Cholesky factor ``within = C C^T``
    shows that no eigenvalue is below the floor (``1 / ||C^-1||_F^2``, a
    lower bound of the smallest, above ``regularization`` times the trace,
    an upper bound of the largest), ``W = C^-T`` instead: the same
    ``phi``, without the eigendecomposition of ``within``.

    Returns
    -------
    eigenvalues : ndarray of shape (n_features,)
        Decreasing.
    directions : ndarray of shape (n_features, n_features)
        The ``phi`` as columns, each with its largest entry positive.
    """
    whitening = _cholesky_whitening(within, regularization)
    if whitening is None:
        w, U = symmetric_eigh(within)
        largest = max(w[-1], 0.0)
        floor = regularization * largest if largest > 0 else 1.0
        w = np.maximum(w, max(floor, np.finfo(np.float64).tiny))
        whitening = U / np.sqrt(w)
    reduced = _symmetric(whitening.T @ between @ whitening)
    eigenvalues, vectors = symmetric_eigh(reduced)
    eigenvalues, vectors = eigenvalues[::-1], vectors[:, ::-1]
    return eigenvalues, fix_signs(whitening @ vectors)


def symmetric_eigh(matrix):
    """``np.linalg.eigh`` of a symmetric float64 matrix, by LAPACK's syevd.

    SciPy's LAPACK: NumPy's spends many times longer on threads for small
    matrices when its BLAS may use more than one (3.6 ms instead of 0.3 ms
    for 61 x 61 on two busy cores).
    """
    eigenvalues, vectors, info = lapack.dsyevd(matrix, compute_v=1, lower=1)
    if info != 0:
        return np.linalg.eigh(matrix)
    return eigenvalues, vectors


def _cholesky_whitening(within, regularization):
    """``C^-T`` with ``within = C C^T``, or None when the floor may bind."""
    factor, info = lapack.dpotrf(within, lower=1, clean=1)
    if info != 0:
        return None
    inverse, info = lapack.dtrtri(factor, lower=1)
    if info != 0:
        return None
    bound = 1.0 / np.einsum("ij,ij->", inverse, inverse)
    if not (bound > regularization * np.trace(within) and bound > 0):
        return None
    return inverse.T


def fix_signs(directions):
    """Flip each column so that its entry of largest magnitude is positive."""
    largest = np.argmax(np.abs(directions), axis=0)
    signs = np.sign(directions[largest, np.arange(directions.shape[1])])
    signs[signs == 0] = 1
    return directions * signs


def _symmetric(matrix):
    return (matrix + matrix.T) / 2
