"""Distance Metric Learning through Maximisation of the Jeffrey divergence (DMLMJ)."""

import numbers

import numpy as np
from scipy import linalg

from ._base import SupervisedMetricLearner
from ._kernels.dmlmj import class_neighbors
from ._kernels.outer import weighted_outer_sum
from ._kissme import choose_candidate, loo_knn_error, ridge, validation_rows
from ._params import Interval, StrOptions, validate_params
from ._psd import rank_tolerance
from ._threads import limit_threads
from ._validation import centred_in_units, validate_X_y


class DMLMJ(SupervisedMetricLearner):
    r"""Distance Metric Learning through Maximisation of the Jeffrey divergence.

    DMLMJ looks at the differences ``x_i - x_j`` of neighbouring pairs: the
    "positive" difference space holds those of each point and its
    ``n_neighbors`` nearest neighbours of the same class, the "negative"
    one those of each point and its ``n_neighbors`` nearest neighbours of
    the other classes. Modelled as zero-mean Gaussians with covariances
    ``Sigma_S`` and ``Sigma_D`` (``1 / |S| sum x_ij x_ij^T`` over each
    space), their images under ``x -> L x`` are as far apart as possible in
    Jeffrey divergence (the symmetrised Kullback-Leibler divergence)::

        J(L) = 1/2 tr((L Sigma_S L^T)^-1 (L Sigma_D L^T))
             + 1/2 tr((L Sigma_D L^T)^-1 (L Sigma_S L^T)) - n_components.

    The maximiser [1]_ is spanned by generalised eigenvectors,
    ``Sigma_D v = lambda Sigma_S v``, each adding ``(lambda + 1 / lambda) /
    2 - 1`` to ``J``: the rows of ``components_`` are the ``n_components``
    eigenvectors with the largest ``lambda + 1 / lambda``, directions in
    which differences across classes are much larger *or* much smaller than
    within. ``J`` does not fix the scale of the rows; they are normalised
    as the authors' code does, ``v^T Sigma_S v = 1``, so the kept
    directions are whitened with respect to neighbouring same-class
    differences. Keeping all of them gives ``M = Sigma_S^-1`` (on the
    directions in which the data varies, see below).

    **Neighbours.** Found exactly, block by block (one matrix product per
    block of rows, then a compiled top-k selection), so memory stays within
    ``working_memory`` and never grows with ``n^2``; ties go to the smaller
    index. A class with ``n_neighbors`` or fewer members contributes all
    its other members as same-class neighbours (as in the authors' code).
    Both searches are one pass over the rows sorted by class, each block
    multiplied with the rows of its own class and of the later classes:
    every pair of rows is visited once, ``n^2 d`` multiply-adds in total
    (half those of comparing each class with all others), and both rows
    of a pair are updated from one product. The selection keeps each
    row's ``k`` best exact distances and recomputes a distance in float64
    only when the GEMM value's error bound cannot exclude the pair, so the
    result is exact and does not depend on blocking or threads.

    **Regularisation.** Both covariances get the ridge ``epsilon I``,
    ``epsilon = regularization * (tr Sigma_S + tr Sigma_D) / (2 d)``. A
    direction in which no neighbouring pair differs (a constant or
    collinear feature, fewer samples than features) carries no information
    (``lambda = 1``, it adds nothing to ``J``); it comes last, as a zero
    row of ``components_``, so that differences along it do not count
    (scaled to ``v^T Sigma_S v = 1`` it would weigh ``1 / sqrt(epsilon)``
    and swamp the learned directions). (The authors' code adds ``0.001 I``
    to a covariance with determinant below ``1e-10``, which depends on the
    units of the data.) The fit is computed on the centred data in units
    of its spread, so any shift and any finite scale work.

    Parameters
    ----------
    n_components : int, 'auto' or None, default='auto'
        Directions kept; None keeps ``n_features`` (zero rows for those in
        which the data does not vary). 'auto' chooses among ``n_classes -
        1`` (fewer cannot in general separate the class means), the sizes
        1, 2, 3, 4, 6, 8, 12, 16, ... above it, and ``n_features``, by the
        leave-one-out 3-NN error on
        the training data (on a stratified subset of 2000 rows when there
        are more), as the authors choose the dimension by validation;
        within one standard error of the lowest error the most directions
        win.
    n_neighbors : int, default=5
        Neighbours of each point in each of the two difference spaces (the
        authors' default, ``k1 = k2 = 5``).
    regularization : float, default=1e-3
        Relative ridge added to both covariances. 0 needs ``Sigma_S``
        positive definite.
    working_memory : float or None, default=None
        Budget in MiB for one block of the neighbour search; None means
        ``sklearn.get_config()["working_memory"]``.

    Attributes
    ----------
    components_ : ndarray of shape (n_components_, n_features)
        The map ``L``, in the dtype of the training data.
    eigenvalues_ : ndarray of shape (n_components_,)
        ``lambda`` of each kept direction, in the order of the rows.
    n_components_ : int
        Number of kept directions.
    n_similar_, n_dissimilar_ : int
        Numbers of neighbour pairs in the two difference spaces.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X has string column names.

    See Also
    --------
    KISSME : The same two Gaussian models, over all pairs, combined into a
        likelihood ratio.

    Notes
    -----
    Deviations from [1]_: one ``n_neighbors`` for both spaces (the
    authors' code has ``k1`` and ``k2``); the relative ridge above;
    ``n_components`` chosen by leave-one-out validation on the training
    data rather than on a hold-out set; no kernel version.

    References
    ----------
    .. [1] B. Nguyen, C. Morell and B. De Baets, "Supervised distance
       metric learning through maximization of the Jeffrey divergence",
       Pattern Recognition 64 (2017), 215-225.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.model_selection import train_test_split
    >>> from sklearn.neighbors import KNeighborsClassifier
    >>> from sklearn.pipeline import make_pipeline
    >>> from linmetric import DMLMJ
    >>> X, y = load_digits(return_X_y=True)
    >>> X_train, X_test, y_train, y_test = train_test_split(
    ...     X, y, stratify=y, random_state=0)
    >>> euclidean = KNeighborsClassifier(3).fit(X_train, y_train)
    >>> round(euclidean.score(X_test, y_test), 3)
    0.987
    >>> model = make_pipeline(DMLMJ(), KNeighborsClassifier(3))
    >>> round(model.fit(X_train, y_train).score(X_test, y_test), 3)
    0.987
    >>> model[0].n_components_  # chosen by validation, of 64
    32
    """

    _parameter_constraints = {
        "n_components": [
            Interval(numbers.Integral, 1, None, closed="left"),
            StrOptions({"auto"}),
            None,
        ],
        "n_neighbors": [Interval(numbers.Integral, 1, None, closed="left")],
        "regularization": [Interval(numbers.Real, 0, None, closed="left")],
        "working_memory": [Interval(numbers.Real, 0, None, closed="neither"), None],
    }

    def __init__(
        self,
        n_components="auto",
        n_neighbors=5,
        regularization=1e-3,
        working_memory=None,
    ):
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.regularization = regularization
        self.working_memory = working_memory

    def fit(self, X, y):
        """Learn the map from class labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,)
            Class labels, at least two classes and one class with two
            members.

        Returns
        -------
        self : DMLMJ
        """
        validate_params(self)
        X, y_codes, _ = validate_X_y(self, X, y)
        # Centred, in units of 2**exponent: the neighbour search expands
        # squared distances, which lose every digit far from the origin.
        X, exponent = centred_in_units(X)
        n_features = X.shape[1]
        fixed = self.n_components not in (None, "auto")
        if fixed and self.n_components > n_features:
            raise ValueError(
                f"n_components={self.n_components} is out of range: at most "
                f"n_features = {n_features} directions."
            )
        k, memory = self.n_neighbors, self.working_memory
        covariances = []
        counts = []
        for rows, cols in neighbor_pairs(X, y_codes, k, working_memory=memory):
            counts.append(rows.shape[0])
            if rows.shape[0] == 0:
                raise ValueError(
                    "No same-class neighbours: every class has a single "
                    "sample. DMLMJ needs a class with at least two."
                )
            outer = weighted_outer_sum(
                X, rows, cols, np.ones(rows.shape[0]), working_memory=memory
            )
            covariances.append(outer / rows.shape[0])
        varying = varying_directions(sum(covariances), X.shape[0])
        similar, dissimilar = ridge(*covariances, self.regularization)
        eigenvalues, directions = jeffrey_directions(similar, dissimilar, varying)
        if self.n_components is None:
            n_kept = n_features
        elif self.n_components == "auto":
            n_kept = _validated_n_components(X, y_codes, directions)
        else:
            n_kept = self.n_components
        components = np.ldexp(directions[:, :n_kept].T, -exponent)
        self.components_ = np.ascontiguousarray(components, dtype=X.dtype)
        self.eigenvalues_ = eigenvalues[:n_kept]
        self.n_components_ = n_kept
        self.n_similar_, self.n_dissimilar_ = counts
        return self


def candidate_sizes(n_features, smallest=1):
    """Numbers of directions compared by ``n_components="auto"``.

    ``smallest`` (at most ``n_features``), then the powers of two and three
    times the powers of two (1, 2, 3, 4, 6, 8, 12, 16, 24, ...) between it
    and ``n_features``, and ``n_features``.
    """
    smallest = min(smallest, n_features)
    sizes, power = {smallest}, 1
    while power < n_features:
        sizes.update((power, 3 * power))
        power *= 2
    inside = sorted(size for size in sizes if smallest <= size < n_features)
    return [*inside, n_features]


def _validated_n_components(X, y_codes, directions):
    # Leave-one-out k-NN error of each prefix of the directions on (a subset
    # of) the training data; ties within one standard error go to the most
    # directions. Fewer than n_classes - 1 directions cannot in general
    # separate the class means (the bound of discriminant analysis), so the
    # candidates start there.
    rows = validation_rows(X, y_codes)
    projected = X[rows] @ directions
    n_classes = np.unique(y_codes).size
    sizes = candidate_sizes(X.shape[1], smallest=max(1, n_classes - 1))
    with limit_threads(blas=1):
        errors = [loo_knn_error(projected[:, :size], y_codes[rows]) for size in sizes]
    preference = range(len(sizes) - 1, -1, -1)
    return sizes[choose_candidate(errors, rows.size, preference)]


def varying_directions(covariance, n_samples):
    """Orthonormal basis of the range of a covariance, as columns.

    Eigenvalues at or below :func:`linmetric._psd.rank_tolerance` (size
    ``max(n_samples, n_features)``) count as zero: the data does not vary
    in their directions.
    """
    values, vectors = linalg.eigh(covariance, check_finite=False)
    tol = rank_tolerance(values, size=max(n_samples, covariance.shape[0]))
    return vectors[:, values > tol]


def jeffrey_directions(similar, dissimilar, varying=None):
    """Generalised eigenpairs of ``(dissimilar, similar)`` by Jeffrey criterion.

    Parameters
    ----------
    similar, dissimilar : ndarray of shape (d, d)
        The two (ridged) covariances.
    varying : ndarray of shape (d, r), optional
        Orthonormal basis of the directions in which the data varies. The
        problem is solved in their span; the other ``d - r`` directions
        (where both covariances are the ridge alone, ``lambda = 1``, no
        information) get zero columns and ``lambda = 1``, last.

    Returns
    -------
    eigenvalues : ndarray of shape (d,)
        ``lambda`` with ``dissimilar v = lambda similar v``, in decreasing
        order of ``lambda + 1 / lambda`` (ties: larger ``lambda`` first).
    directions : ndarray of shape (d, d)
        The matching ``v`` as columns, ``v^T similar v = 1``, each with its
        largest entry positive.
    """
    n_all = similar.shape[0]
    if varying is not None:
        similar = varying.T @ similar @ varying
        dissimilar = varying.T @ dissimilar @ varying
    n_features = similar.shape[0]
    if n_features == 0:
        return np.ones(n_all), np.zeros((n_all, n_all))
    spectrum = linalg.eigvalsh(similar, check_finite=False)
    if not spectrum[0] > n_features * np.finfo(np.float64).eps * spectrum[-1]:
        raise ValueError(
            "The same-class neighbour covariance is singular (smallest "
            f"eigenvalue {spectrum[0]:.3g}); set regularization > 0."
        )
    values, vectors = linalg.eigh(dissimilar, similar, check_finite=False)
    values = np.maximum(values, np.finfo(np.float64).tiny)
    criterion = values + 1.0 / values
    order = np.lexsort((-values, -criterion))
    values, vectors = values[order], vectors[:, order]
    if varying is not None:
        vectors = np.hstack((varying @ vectors, np.zeros((n_all, n_all - n_features))))
        values = np.concatenate((values, np.ones(n_all - n_features)))
    biggest = np.argmax(np.abs(vectors), axis=0)
    signs = np.sign(vectors[biggest, np.arange(n_all)])
    signs[signs == 0] = 1
    return values, vectors * signs


def neighbor_pairs(X, y_codes, n_neighbors, *, working_memory=None):
    """Same-class and other-class neighbour pairs of every row.

    Each row with its ``n_neighbors`` nearest rows of the same class and
    its ``n_neighbors`` nearest rows of the other classes, found exactly by
    :func:`linmetric._kernels.dmlmj.class_neighbors` (each pair of rows
    visited once). A row with fewer candidates gets all of them: a class
    with ``n_neighbors`` or fewer members pairs each member with all the
    others; a single-member class gives no same-class pair.

    Returns
    -------
    similar, dissimilar : tuple of two ndarrays of shape (n_pairs,), intp
        ``(rows, cols)`` of the pairs of each kind.
    """
    lists = class_neighbors(X, y_codes, n_neighbors, working_memory=working_memory)
    pairs = []
    for neighbors in lists:
        rows = np.repeat(np.arange(X.shape[0], dtype=np.intp), neighbors.shape[1])
        cols = neighbors.ravel()
        found = cols < X.shape[0]
        pairs.append((rows[found], cols[found]))
    return pairs[0], pairs[1]


def same_class_neighbor_pairs(X, y_codes, n_neighbors, *, working_memory=None):
    """Each row with its ``n_neighbors`` nearest rows of the same class."""
    return neighbor_pairs(X, y_codes, n_neighbors, working_memory=working_memory)[0]


def other_class_neighbor_pairs(X, y_codes, n_neighbors, *, working_memory=None):
    """Each row with its ``n_neighbors`` nearest rows of the other classes."""
    return neighbor_pairs(X, y_codes, n_neighbors, working_memory=working_memory)[1]
