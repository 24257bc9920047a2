"""KISSME: the metric of the likelihood-ratio test on pair differences."""

import numbers

import numpy as np
from scipy import linalg
from sklearn.utils import check_random_state

from ._base import SupervisedMetricLearner
from ._itml import sample_label_pairs
from ._kernels.dmlmj import loo_knn_wrong
from ._kernels.outer import weighted_outer_sum
from ._params import Interval, StrOptions, validate_params
from ._threads import limit_threads
from ._validation import centred_in_units, points_of_pairs, validate_X_y
from ._whitening import centered_spectrum

# The relative ridges compared by regularization="auto", smallest first.
AUTO_RIDGES = (1e-3, 1e-2, 1e-1, 1.0)


class KISSME(SupervisedMetricLearner):
    r"""Keep It Simple and Straightforward MEtric (KISSME).

    KISSME models the difference ``x_ij = x_i - x_j`` of a similar pair and
    of a dissimilar pair as zero-mean Gaussians with covariances
    ``Sigma_S`` and ``Sigma_D``. The log-likelihood ratio of the two
    hypotheses is, up to a constant, a squared Mahalanobis distance::

        delta(x_ij) = x_ij^T (Sigma_S^-1 - Sigma_D^-1) x_ij,

    ``Sigma_S = (1 / |S|) sum_{(i, j) in S} x_ij x_ij^T`` (likewise
    ``Sigma_D`` over the dissimilar pairs ``D``). ``M = Sigma_S^-1 -
    Sigma_D^-1`` is in general indefinite; as in [1]_ it is projected onto
    the cone of positive semi-definite matrices by setting its negative
    eigenvalues to zero, and ``components_`` is ``L = diag(sqrt(w)) V^T``
    for ``M_+ = V diag(w) V^T`` (rows in decreasing order of ``w``; the
    rows of the clipped directions are zero). No iteration: the cost is a
    few ``n_features x n_features`` eigendecompositions once the two
    covariances are known.

    **Pairs.** ``fit_pairs(pairs, pair_labels)`` takes the pairs themselves.
    ``fit(X, y)`` builds them from labels, as ``pair_sampling`` says:

    - ``'neighbors'`` (default): each sample with its ``n_neighbors``
      nearest samples of its own class (similar pairs) and its
      ``n_neighbors`` nearest samples of the other classes (dissimilar
      pairs), found exactly as in :class:`DMLMJ`. These are the pairs a
      nearest-neighbour rule confuses, like the hard pairs of the face and
      person verification data KISSME was made for, and ``M`` then
      separates classes locally.
    - ``'uniform'``: with ``n_constraints=None`` every pair of distinct
      samples counts, similar when both have the same class. Both
      covariances are then computed in closed form from the class means
      and scatter matrices, without enumerating the ``n (n - 1) / 2``
      pairs; with class scatters ``W_c``, sizes ``n_c``, means ``mu_c``
      and ``B = sum_c n_c (mu_c - mu)(mu_c - mu)^T``::

          sum_{similar} x_ij x_ij^T    = sum_c n_c W_c,
          sum_{dissimilar} x_ij x_ij^T = sum_c (n - n_c) W_c + n B.

      With an int ``n_constraints``, that many pairs are drawn instead
      (half similar, half dissimilar, as in :class:`ITML`). Over uniform
      pairs ``Sigma_S`` is about twice the within-class covariance and
      ``Sigma_D`` twice the within-class plus the between-class
      covariance, so ``M`` has rank about ``n_classes - 1`` and acts like
      linear discriminant analysis: good when classes are Gaussian blobs,
      poor when a class has several modes.

    **Regularisation.** Both covariances get the same ridge
    ``epsilon I`` with ``epsilon = regularization * (tr Sigma_S + tr
    Sigma_D) / (2 d)``: relative to the scale of the data, so that
    rescaling the data only rescales ``components_`` (inversely). In a
    direction in which no pair differs at all (a constant feature), both
    inverses equal ``1 / epsilon`` and ``M`` is zero there.
    ``regularization=0`` needs both covariances positive definite. The
    covariances are computed on the centred data divided by a power of two
    near its spread, so any shift and any finite scale (1e-200 or 1e200)
    give the same map, rescaled.

    **PCA.** The paper reduces the data by PCA first; ``n_components``
    does the same: the covariances are projected onto the leading
    ``n_components`` principal directions ``P`` of the training points
    (for ``fit_pairs``, all points of all pairs) and ``components_ = L P``.

    Parameters
    ----------
    n_components : int or None, default=None
        Principal directions kept before learning; None learns in the full
        space.
    pair_sampling : {'neighbors', 'uniform'}, default='neighbors'
        How ``fit(X, y)`` forms pairs from labels, see above. Not used by
        ``fit_pairs``.
    n_neighbors : int, default=5
        Same-class and other-class neighbours of each sample with
        ``pair_sampling='neighbors'``.
    n_constraints : int or None, default=None
        With ``pair_sampling='uniform'``, the number of pairs drawn from
        the labels in ``fit(X, y)``; None uses all pairs (exactly, in
        closed form). Must be None with ``'neighbors'``. Not used by
        ``fit_pairs``.
    regularization : float or 'auto', default='auto'
        Relative ridge added to both covariances, see above. 'auto' chooses
        it from 1e-3, 1e-2, 0.1 and 1 by the leave-one-out 3-NN error on
        the training data (on a stratified subset of 2000 rows when there
        are more); within one standard error of the lowest error the
        smallest ridge wins, the closest to the paper's unregularised
        estimate. With few samples per feature the inverse covariances
        are noisy, and a larger ridge helps. ``fit_pairs`` has no labels to
        validate with and uses 1e-3.
    random_state : int, RandomState instance or None, default=None
        Draws the pairs when ``n_constraints`` is an int.
    working_memory : float or None, default=None
        Budget in MiB for one block of the neighbour search; None means
        ``sklearn.get_config()["working_memory"]``.

    Attributes
    ----------
    components_ : ndarray of shape (n_components_, n_features)
        The map ``L``, in the dtype of the training data.
    n_components_ : int
        Rows of ``components_``: ``n_components``, or ``n_features``.
    regularization_ : float
        The relative ridge used (the chosen one with 'auto').
    n_similar_, n_dissimilar_ : int
        Numbers of similar and dissimilar pairs the covariances come from.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X has string column names.

    See Also
    --------
    GMML : Another closed-form metric from the same two covariances.
    Covariance : The inverse covariance of the data itself.

    Notes
    -----
    Deviations from [1]_: the ridge regularisation, chosen by validation
    by default (the paper inverts the covariances as they are, which fails
    when a covariance is singular);
    learning from labels with each sample's nearest same-class and
    other-class neighbours, or with all pairs in closed form (the paper
    samples pairs from the identities of its face and person data); and
    PCA optional (the paper always applies it).

    References
    ----------
    .. [1] M. Köstinger, M. Hirzer, P. Wohlhart, P. M. Roth and H. Bischof,
       "Large scale metric learning from equivalence constraints", CVPR 2012.

    Examples
    --------
    >>> from sklearn.datasets import load_wine
    >>> from sklearn.model_selection import train_test_split
    >>> from sklearn.neighbors import KNeighborsClassifier
    >>> from sklearn.pipeline import make_pipeline
    >>> from linmetric import KISSME
    >>> X, y = load_wine(return_X_y=True)
    >>> X_train, X_test, y_train, y_test = train_test_split(
    ...     X, y, stratify=y, random_state=0)
    >>> euclidean = KNeighborsClassifier(3).fit(X_train, y_train)
    >>> round(euclidean.score(X_test, y_test), 2)
    0.64
    >>> model = make_pipeline(KISSME(), KNeighborsClassifier(3))
    >>> round(model.fit(X_train, y_train).score(X_test, y_test), 2)
    0.96

    From pairs of points labelled +1 (similar) or -1 (dissimilar):

    >>> import numpy as np
    >>> pairs = np.array([[0, 1], [0, 70], [70, 71], [71, 140], [1, 2], [2, 140]])
    >>> kissme = KISSME().fit_pairs(X[pairs], [1, -1, 1, -1, 1, -1])
    >>> kissme.components_.shape
    (13, 13)
    """

    _parameter_constraints = {
        "n_components": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "pair_sampling": [StrOptions({"neighbors", "uniform"})],
        "n_neighbors": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_constraints": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "regularization": [
            Interval(numbers.Real, 0, None, closed="left"),
            StrOptions({"auto"}),
        ],
        "random_state": ["random_state"],
        "working_memory": [Interval(numbers.Real, 0, None, closed="neither"), None],
    }

    def __init__(
        self,
        n_components=None,
        n_constraints=None,
        regularization="auto",
        random_state=None,
        *,
        pair_sampling="neighbors",
        n_neighbors=5,
        working_memory=None,
    ):
        self.n_components = n_components
        self.pair_sampling = pair_sampling
        self.n_neighbors = n_neighbors
        self.n_constraints = n_constraints
        self.regularization = regularization
        self.random_state = random_state
        self.working_memory = working_memory

    def fit(self, X, y):
        """Learn the metric from class labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,)
            Class labels, at least two classes and one class with two
            members.

        Returns
        -------
        self : KISSME
        """
        validate_params(self)
        return self._fit_moments(*label_moments_in_units(self, X, y))

    def fit_pairs(self, pairs, pair_labels):
        """Learn the metric from pairs of points labelled similar or dissimilar.

        Parameters
        ----------
        pairs : array-like of shape (n_pairs, 2, n_features)
            ``pairs[p, 0]`` and ``pairs[p, 1]`` are the two points of pair p.
        pair_labels : array-like of shape (n_pairs,)
            +1 (similar) or -1 (dissimilar); both kinds must occur.

        Returns
        -------
        self : KISSME
        """
        validate_params(self)
        return self._fit_moments(*pair_moments_in_units(self, pairs, pair_labels))

    def _fit_moments(
        self,
        X,
        exponent,
        similar,
        dissimilar,
        n_similar,
        n_dissimilar,
        y_codes=None,
    ):
        # X and the moments are in units of 2**exponent (centred_in_units).
        projection = pca_projection(X, self.n_components)
        if projection is not None:
            similar = projection @ similar @ projection.T
            dissimilar = projection @ dissimilar @ projection.T
        if self.regularization != "auto":
            candidates = [float(self.regularization)]
        elif y_codes is None:
            candidates = [AUTO_RIDGES[0]]
        else:
            candidates = AUTO_RIDGES
        factors = [kissme_factor(similar, dissimilar, r) for r in candidates]
        chosen = 0
        if len(candidates) > 1:
            rows = validation_rows(X, y_codes)
            points = X[rows] if projection is None else X[rows] @ projection.T
            with limit_threads(blas=1):
                errors = [loo_knn_error(points @ L.T, y_codes[rows]) for L in factors]
            chosen = choose_candidate(errors, rows.size, range(len(candidates)))
        self.regularization_ = candidates[chosen]
        components = factors[chosen]
        if projection is not None:
            components = components @ projection
        components = np.ldexp(components, -exponent)
        self.components_ = np.ascontiguousarray(components, dtype=X.dtype)
        self.n_components_ = components.shape[0]
        self.n_similar_ = int(n_similar)
        self.n_dissimilar_ = int(n_dissimilar)
        return self


def label_moments_in_units(estimator, X, y):
    """Validate ``X`` and ``y``; the pair moments of the classes in units.

    ``X`` is centred in units of ``2**exponent`` (``centred_in_units``);
    the moments are :func:`label_pair_moments` of it, with the estimator's
    ``n_constraints`` and ``random_state``.

    Returns
    -------
    X, exponent, similar, dissimilar, n_similar, n_dissimilar, y_codes
    """
    sampling = getattr(estimator, "pair_sampling", "uniform")
    if sampling == "neighbors" and estimator.n_constraints is not None:
        raise ValueError(
            f"n_constraints={estimator.n_constraints} draws uniform pairs, but "
            "pair_sampling='neighbors' forms the pairs from each sample's "
            "neighbours; set pair_sampling='uniform' or n_constraints=None."
        )
    X, y_codes, _ = validate_X_y(estimator, X, y)
    X, exponent = centred_in_units(X)
    if sampling == "neighbors":
        moments = neighbor_pair_moments(
            X, y_codes, estimator.n_neighbors, estimator.working_memory
        )
    else:
        random_state = check_random_state(estimator.random_state)
        moments = label_pair_moments(X, y_codes, estimator.n_constraints, random_state)
    return (X, exponent, *moments, y_codes)


def neighbor_pair_moments(X, y_codes, n_neighbors, working_memory=None):
    """Second moments of the differences of neighbouring pairs.

    Similar pairs: each row with its ``n_neighbors`` nearest rows of its
    class; dissimilar pairs: each row with its ``n_neighbors`` nearest rows
    of the other classes (:func:`linmetric._dmlmj.neighbor_pairs`).

    Returns
    -------
    similar, dissimilar, n_similar, n_dissimilar
        As :func:`label_pair_moments`.
    """
    from ._dmlmj import neighbor_pairs  # _dmlmj imports this module

    pairs = neighbor_pairs(X, y_codes, n_neighbors, working_memory=working_memory)
    counts = [rows.shape[0] for rows, _ in pairs]
    _check_counts(*counts)
    moments = [
        weighted_outer_sum(
            X, rows, cols, np.ones(rows.shape[0]), working_memory=working_memory
        )
        / rows.shape[0]
        for rows, cols in pairs
    ]
    return moments[0], moments[1], counts[0], counts[1]


def pair_moments_in_units(estimator, pairs, pair_labels):
    """Validate labelled pairs; their moments in units, as ``label_moments_in_units``."""
    X, rows, cols, signs = points_of_pairs(estimator, pairs, pair_labels)
    X, exponent = centred_in_units(X)
    return (X, exponent, *pair_moments(X, rows, cols, signs))


def label_pair_moments(X, y_codes, n_constraints, random_state):
    """Second moments of the differences of similar and dissimilar pairs.

    With ``n_constraints=None`` over all pairs of distinct samples, in
    closed form from the class means and scatters; otherwise over
    ``n_constraints`` pairs drawn by :func:`linmetric._itml.sample_label_pairs`.

    Returns
    -------
    similar, dissimilar : ndarray of shape (n_features, n_features), float64
        ``mean x_ij x_ij^T`` over the similar and the dissimilar pairs.
    n_similar, n_dissimilar : int
        The numbers of pairs.
    """
    if n_constraints is not None:
        rows, cols, signs = sample_label_pairs(y_codes, n_constraints, random_state)
        return pair_moments(X, rows, cols, signs)
    X64 = np.asarray(X, dtype=np.float64)
    n_samples, n_features = X64.shape
    mean = X64.mean(axis=0)
    counts = np.bincount(y_codes)
    within = np.zeros((n_features, n_features))  # sum_c n_c W_c
    weighted_within = np.zeros((n_features, n_features))  # sum_c (n - n_c) W_c
    between = np.zeros((n_features, n_features))  # B
    for label in np.flatnonzero(counts):
        members = X64[y_codes == label]
        class_mean = members.mean(axis=0)
        centred = members - class_mean
        scatter = centred.T @ centred
        within += counts[label] * scatter
        weighted_within += (n_samples - counts[label]) * scatter
        offset = class_mean - mean
        between += counts[label] * np.outer(offset, offset)
    n_similar = int(np.sum(counts * (counts - 1)) // 2)
    n_dissimilar = int((n_samples**2 - np.sum(counts**2)) // 2)
    _check_counts(n_similar, n_dissimilar)
    dissimilar = weighted_within + n_samples * between
    return within / n_similar, dissimilar / n_dissimilar, n_similar, n_dissimilar


def pair_moments(X, rows, cols, signs):
    """``mean x_ij x_ij^T`` over the similar (+1) and dissimilar (-1) pairs."""
    similar = signs > 0
    n_similar = int(similar.sum())
    n_dissimilar = signs.shape[0] - n_similar
    _check_counts(n_similar, n_dissimilar)
    moments = []
    for chosen, count in ((similar, n_similar), (~similar, n_dissimilar)):
        outer = weighted_outer_sum(X, rows[chosen], cols[chosen], np.ones(count))
        moments.append(outer / count)
    return moments[0], moments[1], n_similar, n_dissimilar


def _check_counts(n_similar, n_dissimilar):
    if n_similar == 0:
        raise ValueError(
            "There are no similar pairs: every class has a single sample, or "
            "no pair is labelled +1. The similar-pair covariance needs at "
            "least one."
        )
    if n_dissimilar == 0:
        raise ValueError(
            "There are no dissimilar pairs: no pair is labelled -1. The "
            "dissimilar-pair covariance needs at least one."
        )


def kissme_factor(similar, dissimilar, regularization):
    """``L`` with ``L^T L`` the PSD part of the ridged ``Sigma_S^-1 - Sigma_D^-1``."""
    similar, dissimilar = ridge(similar, dissimilar, regularization)
    inverse_similar = spd_inverse(similar, "the similar-pair covariance")
    inverse_dissimilar = spd_inverse(dissimilar, "the dissimilar-pair covariance")
    return psd_factor(inverse_similar - inverse_dissimilar)


def pca_projection(X, n_components):
    """The leading ``n_components`` principal directions of X, as rows; or None."""
    if n_components is None:
        return None
    _, _, directions, _ = centered_spectrum(X)
    n_max = directions.shape[1]
    if n_components > n_max:
        raise ValueError(
            f"n_components={n_components} is out of range: PCA keeps at most "
            f"min(n_samples, n_features) = {n_max} directions."
        )
    return np.ascontiguousarray(directions[:, :n_components].T)


def ridge(similar, dissimilar, regularization):
    """Add ``epsilon I`` to both, ``epsilon`` relative to their mean eigenvalue."""
    n_features = similar.shape[0]
    scale = (np.trace(similar) + np.trace(dissimilar)) / (2 * n_features)
    if not scale > 0:
        raise ValueError(
            "Every pair has two identical points (all differences are zero); "
            "no metric can be learned from them."
        )
    epsilon = regularization * scale
    identity = np.eye(n_features)
    return similar + epsilon * identity, dissimilar + epsilon * identity


def spd_inverse(matrix, name):
    """Inverse of a symmetric positive definite matrix via its eigenvalues.

    Raises a ValueError naming ``regularization`` when ``matrix`` is
    singular to working precision (eigenvalues at or below
    ``n_features * eps * largest``).
    """
    values, vectors = linalg.eigh((matrix + matrix.T) / 2, check_finite=False)
    tol = matrix.shape[0] * np.finfo(np.float64).eps * max(values[-1], 0.0)
    if not values[0] > tol:
        raise ValueError(
            f"{name[0].upper()}{name[1:]} is singular (smallest eigenvalue "
            f"{values[0]:.3g}); set regularization > 0."
        )
    return (vectors / values) @ vectors.T


def psd_factor(metric):
    """``L`` with ``L^T L`` the projection of ``metric`` onto the PSD cone.

    Negative eigenvalues are set to zero, and so are those within rounding
    of zero (``n_features * eps * max|w|``). Rows come in decreasing order
    of eigenvalue; each row's largest entry is positive.
    """
    values, vectors = linalg.eigh((metric + metric.T) / 2, check_finite=False)
    values, vectors = values[::-1], vectors[:, ::-1]
    tol = metric.shape[0] * np.finfo(np.float64).eps * max(np.abs(values).max(), 0)
    values = np.where(values > tol, values, 0.0)
    largest = np.argmax(np.abs(vectors), axis=0)
    signs = np.sign(vectors[largest, np.arange(vectors.shape[1])])
    signs[signs == 0] = 1
    return np.sqrt(values)[:, None] * (vectors * signs).T


# Internal validation of the one free parameter of the closed-form learners
# (KISSME's ridge, GMML's t, DMLMJ's number of directions): the
# leave-one-out k-NN error on the training data, or on a subset of it.
VALIDATION_MAX_SAMPLES = 2000
VALIDATION_NEIGHBORS = 3


def validation_rows(X, y_codes, max_samples=VALIDATION_MAX_SAMPLES):
    """Rows on which candidates are compared: all, or a stratified subset.

    Up to ``max_samples`` rows: all of them. Otherwise each class keeps its
    share of ``max_samples`` rows, evenly spaced in the order of the first
    two features (so the subset does not depend on the order of the rows).
    """
    n_samples = y_codes.shape[0]
    if n_samples <= max_samples:
        return np.arange(n_samples)
    keys = (X[:, 1], X[:, 0]) if X.shape[1] > 1 else (X[:, 0],)
    order = np.lexsort(keys)
    rows = []
    for label in np.unique(y_codes):
        members = order[y_codes[order] == label]
        share = max(2, round(max_samples * members.size / n_samples))
        picked = np.linspace(0, members.size - 1, min(share, members.size))
        rows.append(members[np.round(picked).astype(np.intp)])
    return np.sort(np.concatenate(rows))


def loo_knn_error(Z, y_codes, n_neighbors=VALIDATION_NEIGHBORS):
    """Leave-one-out error of the k-NN classifier on the rows of ``Z``.

    Majority vote of the ``n_neighbors`` nearest other rows; a tied vote
    goes to the smallest class code (as scikit-learn's classifier does).
    """
    n_rows = Z.shape[0]
    k = min(n_neighbors, n_rows - 1)
    if k < 1:
        return 0.0
    return loo_knn_wrong(Z, y_codes, k) / n_rows


def choose_candidate(errors, n_rows, preference):
    """Index of the chosen candidate, by the one-standard-error rule.

    Among the candidates whose validation error is within one standard
    error (``sqrt(e (1 - e) / n_rows)`` at the lowest error ``e``) of the
    lowest, the first in ``preference``: the learner's paper default is
    kept unless the data clearly favour another value.
    """
    errors = np.asarray(errors, dtype=np.float64)
    best = errors.min()
    margin = np.sqrt(best * (1.0 - best) / max(n_rows, 1))
    for index in preference:
        if errors[index] <= best + margin + 1e-12:
            return int(index)
    return int(np.argmin(errors))  # pragma: no cover (the best is in the list)
