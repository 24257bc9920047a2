"""Local Fisher Discriminant Analysis (LFDA)."""

import numbers

import numpy as np
from scipy import linalg

from ._base import SupervisedMetricLearner
from ._init import resolve_n_components
from ._kernels.distances import sq_distance_blocks
from ._kernels.neighbors import target_neighbors
from ._params import Interval, StrOptions, validate_params
from ._threads import fit_threads
from ._validation import centred_in_units, validate_X_y


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
    are ever formed: blocks of a class's rows against all its rows, sized by
    ``working_memory``. Time ``O(sum_c n_c^2 d)``, memory ``O(n d + d^2)``
    plus one block. The scatter matrices are computed on the centred data
    in units of its spread, so any shift and any finite scale work.

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
        Budget in MiB for one block of within-class distances; None means
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
    direction's sign is fixed so that its largest entry is positive.

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
        # In units of 2**exponent: the scatter matrices of data at any finite
        # scale neither over- nor underflow.
        X, exponent = centred_in_units(X)
        n_components = resolve_n_components(self.n_components, X.shape[1])
        with fit_threads("lfda", int(np.bincount(labels).max())):
            within, between = local_scatter_matrices(
                X, labels, self.k, working_memory=self.working_memory
            )
        eigenvalues, directions = generalized_eigenvectors(
            between, within, self.regularization
        )
        eigenvalues = eigenvalues[:n_components]
        directions = directions[:, :n_components]
        if self.embedding == "weighted":
            directions = directions * np.sqrt(np.maximum(eigenvalues, 0))
        if self.embedding == "orthonormalized":
            directions, _ = linalg.qr(directions, mode="economic")
            directions = fix_signs(directions)
        else:  # back to the units of the data
            directions = np.ldexp(directions, -exponent)
        self.components_ = np.ascontiguousarray(directions.T, dtype=X.dtype)
        self.eigenvalues_ = eigenvalues
        return self


def local_scatter_matrices(X, labels, k, *, working_memory=None):
    """The local within-class and between-class scatter matrices of LFDA.

    With ``Lap_c(W) = 1/2 sum_ij W_ij (x_i - x_j)(x_i - x_j)^T =
    X_c^T (diag(W 1) - W) X_c`` over the pairs of class ``c``, ``S_t`` the
    total scatter and ``S_c`` the scatter of class ``c`` about its mean:

    - ``S^w = sum_c Lap_c(A) / n_c``;
    - ``S^b = S_t - sum_c n_c S_c / n + sum_c Lap_c(A) (1/n - 1/n_c)``,

    which is the paper's ``S^b`` rewritten so that only same-class pairs
    appear (the ``1/n`` weight of every pair sums to ``S_t``). Each class is
    centred on its mean first (``Lap_c`` does not change, accuracy does).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64
    labels : ndarray of shape (n_samples,), intp
        Class codes.
    k : int
        Neighbour rank of the local scale.
    working_memory : float or None
        Budget in MiB for one block of distances.

    Returns
    -------
    within, between : ndarray of shape (n_features, n_features), float64
    """
    n_samples, n_features = X.shape
    X64 = np.asarray(X, dtype=np.float64)
    centred = X64 - X64.mean(axis=0)
    total = centred.T @ centred
    within = np.zeros((n_features, n_features))
    between = total.copy()
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        n_class = members.shape[0]
        if n_class < 2:
            continue
        X_class = X[members]
        X_class = X_class - X_class.mean(axis=0, dtype=np.float64).astype(X.dtype)
        laplacian = _affinity_laplacian(X_class, k, working_memory)
        class_centred = X_class.astype(np.float64)
        within += laplacian / n_class
        between += laplacian * (1.0 / n_samples - 1.0 / n_class)
        between -= class_centred.T @ class_centred * (n_class / n_samples)
    return _symmetric(within), _symmetric(between)


def _affinity_laplacian(X_class, k, working_memory):
    """``X_c^T (diag(A 1) - A) X_c`` for one class, block of rows by block."""
    n_class = X_class.shape[0]
    k_class = min(k, n_class - 1)
    _, sq_distances = target_neighbors(
        X_class,
        np.zeros(n_class, dtype=np.intp),
        k_class,
        working_memory=working_memory,
        return_distance=True,
    )
    scales = np.sqrt(sq_distances[:, k_class - 1].astype(np.float64))
    # A scale of 0 (a point with k duplicates) is raised to sqrt(tiny), so
    # that sigma_i sigma_j stays a positive normal number: a coinciding pair
    # keeps d_ij / (sigma_i sigma_j) = 0 (affinity 1), any other pair gets a
    # huge or infinite ratio (affinity 0), and no 0/0 arises.
    tiny = np.finfo(X_class.dtype).tiny
    inverse_scales = (1.0 / np.maximum(scales, np.sqrt(tiny))).astype(X_class.dtype)
    X64 = X_class.astype(np.float64)
    laplacian = np.zeros((X_class.shape[1], X_class.shape[1]))
    for start, stop, affinity in sq_distance_blocks(
        X_class, working_memory=working_memory
    ):
        # A_ij = exp(-d_ij / (sigma_i sigma_j)), in place.
        with np.errstate(over="ignore"):
            affinity *= inverse_scales[start:stop, None]
            affinity *= -inverse_scales[None, :]
        np.exp(affinity, out=affinity)
        degree = affinity.sum(axis=1, dtype=np.float64)
        block = X64[start:stop]
        weighted_neighbours = (affinity @ X_class).astype(np.float64)
        laplacian += (block * degree[:, None]).T @ block
        laplacian -= block.T @ weighted_neighbours
    return laplacian


def generalized_eigenvectors(between, within, regularization):
    """Solve ``between phi = lambda within phi``, largest ``lambda`` first.

    ``within`` is floored first: its eigenvalues are raised to at least
    ``regularization`` times the largest (to 1 if it is zero). With
    ``within = U diag(w) U^T`` the problem becomes the symmetric one of
    ``W^T between W`` with ``W = U diag(w)^-1/2``, and ``phi = W v`` satisfies
    ``phi^T within phi = 1``.

    Returns
    -------
    eigenvalues : ndarray of shape (n_features,)
        Decreasing.
    directions : ndarray of shape (n_features, n_features)
        The ``phi`` as columns, each with its largest entry positive.
    """
    w, U = linalg.eigh(within, check_finite=False)
    largest = max(w[-1], 0.0)
    floor = regularization * largest if largest > 0 else 1.0
    w = np.maximum(w, max(floor, np.finfo(np.float64).tiny))
    whitening = U / np.sqrt(w)
    reduced = _symmetric(whitening.T @ between @ whitening)
    eigenvalues, vectors = linalg.eigh(reduced, check_finite=False)
    eigenvalues, vectors = eigenvalues[::-1], vectors[:, ::-1]
    return eigenvalues, fix_signs(whitening @ vectors)


def fix_signs(directions):
    """Flip each column so that its entry of largest magnitude is positive."""
    largest = np.argmax(np.abs(directions), axis=0)
    signs = np.sign(directions[largest, np.arange(directions.shape[1])])
    signs[signs == 0] = 1
    return directions * signs


def _symmetric(matrix):
    return (matrix + matrix.T) / 2
