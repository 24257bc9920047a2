"""Geometric Mean Metric Learning (GMML)."""

import numbers

import numpy as np
from scipy import linalg

from ._base import SupervisedMetricLearner
from ._kissme import (
    choose_candidate,
    label_moments_in_units,
    loo_knn_error,
    pair_moments_in_units,
    validation_rows,
)
from ._params import Interval, StrOptions, validate_params
from ._psd import check_spd
from ._threads import limit_threads


class GMML(SupervisedMetricLearner):
    r"""Geometric Mean Metric Learning.

    GMML asks similar pairs to be close in the metric ``A`` and dissimilar
    pairs to be close in its inverse, ``min_A tr(A S) + tr(A^-1 D)`` over
    symmetric positive definite ``A``, with ``S = sum_{similar} x_ij
    x_ij^T`` and ``D = sum_{dissimilar} x_ij x_ij^T`` (``x_ij = x_i -
    x_j``). The minimiser is the midpoint of the geodesic from ``S^-1`` to
    ``D`` on the manifold of SPD matrices, and [1]_ generalises it to any
    point ``t`` of that geodesic::

        A = S^-1 #_t D = S^-1/2 (S^1/2 D S^1/2)^t S^-1/2,

    the weighted geometric mean (``P #_t Q = P^1/2 (P^-1/2 Q P^-1/2)^t
    P^1/2``, so ``t = 0`` gives ``S^-1`` and ``t = 1`` gives ``D``). The
    regularised problem adds ``lambda`` times the symmetrised LogDet
    divergence to a prior ``A0`` and has the closed form::

        A = (S + lambda A0^-1)^-1 #_t (D + lambda A0).

    It is computed with two symmetric eigendecompositions,
    ``S_lambda = U diag(s) U^T`` and ``S_lambda^1/2 D_lambda S_lambda^1/2 =
    V diag(c) V^T``, which give the factor directly: ``components_ = L =
    diag(c^(t/2)) V^T S_lambda^-1/2`` with ``L^T L = A`` (rows in
    decreasing order of ``c``; eigenvalues ``c`` within rounding of zero,
    ``n_features * eps * max(c)``, are set to zero).

    **Scale.** ``S`` and ``D`` are taken as means over the pairs rather than
    sums, and divided by ``sigma^2 = (tr S + tr D) / (2 d)`` before the
    formula is applied; the prior becomes ``sigma^2 A0`` (the same metric in
    the rescaled units) and the result is divided by ``sigma^2``. Then
    ``lambda`` does not depend on the number of pairs or the units of the
    data, and rescaling the data only rescales ``components_``, inversely
    (the sums are computed on the centred data in units of its spread, so
    any finite scale works).
    Without regularisation this changes the paper's ``A`` by a positive
    factor only, which leaves every ranking of distances, and so every
    nearest neighbour, unchanged.

    **Pairs.** ``fit_pairs(pairs, pair_labels)`` takes the pairs; ``fit(X,
    y)`` uses all pairs of distinct samples (``n_constraints=None``,
    computed in closed form from class scatters as in :class:`KISSME`) or
    draws ``n_constraints`` pairs, half similar and half dissimilar.

    Parameters
    ----------
    t : float or 'auto', default='auto'
        Position on the geodesic from ``S^-1`` (0) to ``D`` (1). 'auto'
        chooses it from 0, 0.1, ..., 1 as [1]_ does, by validation rather
        than by a fixed value: the leave-one-out 3-NN error on the training
        data (on a stratified subset of 2000 rows when there are more,
        evenly spread in the order of the first two features); within one
        standard error of the lowest error, the value nearest the midpoint
        0.5 wins. ``fit_pairs`` has no labels to validate with and uses
        0.5.
    regularization : float, default=1e-3
        ``lambda``, relative to the data's scale as described above. 0
        needs a positive definite ``S`` (a singular ``D`` is fine).
    prior : 'identity' or array-like of shape (n_features, n_features), default='identity'
        ``A0``: the identity (in the rescaled units), or a symmetric
        positive definite array (a metric in the data's units).
    n_constraints : int or None, default=None
        Number of pairs drawn from labels in ``fit(X, y)``; None uses all
        pairs. Not used by ``fit_pairs``.
    random_state : int, RandomState instance or None, default=None
        Draws the pairs when ``n_constraints`` is an int.

    Attributes
    ----------
    components_ : ndarray of shape (n_features, n_features)
        The map ``L``, in the dtype of the training data.
    t_ : float
        The ``t`` used (the chosen one with ``t='auto'``).
    n_similar_, n_dissimilar_ : int
        Numbers of similar and dissimilar pairs behind ``S`` and ``D``.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X has string column names.

    See Also
    --------
    KISSME : ``S^-1 - D^-1`` from the same two matrices.

    Notes
    -----
    Deviations from [1]_: means instead of sums and the scale
    normalisation above (the paper's ``A`` for ``lambda = 0`` up to a
    positive factor); all pairs in closed form by default (the paper draws
    random pairs); ``t`` is chosen by leave-one-out validation on the
    training data instead of the paper's cross-validation, and ``lambda``
    is not tuned (wrap GMML in :class:`~sklearn.model_selection.GridSearchCV`
    for that). The validation costs 11 nearest-neighbour passes over at
    most 2000 rows, a few tenths of a second at that size.

    References
    ----------
    .. [1] P. Zadeh, R. Hosseini and S. Sra, "Geometric mean metric
       learning", ICML 2016.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.model_selection import train_test_split
    >>> from sklearn.neighbors import KNeighborsClassifier
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from linmetric import GMML
    >>> X, y = load_digits(return_X_y=True)
    >>> X_train, X_test, y_train, y_test = train_test_split(
    ...     X, y, stratify=y, random_state=0)
    >>> euclidean = make_pipeline(StandardScaler(), KNeighborsClassifier(3))
    >>> round(euclidean.fit(X_train, y_train).score(X_test, y_test), 3)
    0.982
    >>> model = make_pipeline(StandardScaler(), GMML(), KNeighborsClassifier(3))
    >>> round(model.fit(X_train, y_train).score(X_test, y_test), 3)
    0.982
    >>> model[1].t_  # chosen by validation
    0.5

    The midpoint ``t = 0.5`` solves the Riccati equation ``A S A = D`` (up to
    the scale convention, ``A S A`` is proportional to ``D``):

    >>> import numpy as np
    >>> from sklearn.datasets import load_iris
    >>> from linmetric.reference.kissme import pair_covariances
    >>> X, y = load_iris(return_X_y=True)
    >>> S, D = pair_covariances(X[::3], y[::3])
    >>> A = GMML(t=0.5, regularization=0).fit(X[::3], y[::3]).get_mahalanobis_matrix()
    >>> ratio = (A @ S @ A) / D
    >>> bool(np.allclose(ratio, ratio[0, 0]))
    True
    """

    _parameter_constraints = {
        "t": [Interval(numbers.Real, 0, 1, closed="both"), StrOptions({"auto"})],
        "regularization": [Interval(numbers.Real, 0, None, closed="left")],
        "prior": [StrOptions({"identity"}), "array-like"],
        "n_constraints": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        t="auto",
        regularization=1e-3,
        prior="identity",
        n_constraints=None,
        random_state=None,
    ):
        self.t = t
        self.regularization = regularization
        self.prior = prior
        self.n_constraints = n_constraints
        self.random_state = random_state

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
        self : GMML
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
        self : GMML
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
        # X and the moments are in units of 2**exponent (centred_in_units);
        # the scale of the data in its own units is 4**exponent * scale.
        n_features = similar.shape[0]
        scale = (np.trace(similar) + np.trace(dissimilar)) / (2 * n_features)
        if not scale > 0:
            raise ValueError(
                "Every pair has two identical points (all differences are "
                "zero); no metric can be learned from them."
            )
        similar, dissimilar = similar / scale, dissimilar / scale
        if isinstance(self.prior, str):
            prior = prior_inverse = np.eye(n_features)
        else:
            # The prior metric expressed in the rescaled units.
            prior = check_spd(self.prior, param_name="prior", n_features=n_features)
            with np.errstate(over="ignore", under="ignore"):
                prior = np.ldexp(scale * prior, 2 * exponent)
            _check_prior_in_range(prior)
            prior_inverse = linalg.inv(prior)
        lam = float(self.regularization)
        if lam > 0:
            similar = similar + lam * prior_inverse
            dissimilar = dissimilar + lam * prior
        spectrum, directions = geometric_mean_parts(similar, dissimilar)
        if self.t != "auto":
            self.t_ = float(self.t)
        elif y_codes is None:
            self.t_ = 0.5
        else:
            self.t_ = _validated_t(X, y_codes, spectrum, directions)
        components = (spectrum ** (self.t_ / 2))[:, None] * directions
        components = np.ldexp(components / np.sqrt(scale), -exponent)
        self.components_ = np.ascontiguousarray(components, dtype=X.dtype)
        self.n_similar_ = int(n_similar)
        self.n_dissimilar_ = int(n_dissimilar)
        return self


def _check_prior_in_range(prior):
    # A prior given in the units of data near the float64 limits may not be
    # representable in those of the problem.
    diagonal = np.diagonal(prior)
    if not (np.all(np.isfinite(prior)) and np.all(diagonal > 0)):
        raise ValueError(
            "prior is out of range for the scale of the data: relative to the "
            "pair covariances its entries over- or underflow float64. Rescale "
            "the data, or use prior='identity'."
        )


# The points of the geodesic compared by t="auto"; ties (within one
# standard error) go to the one nearest the midpoint.
AUTO_T = np.linspace(0.0, 1.0, 11)


def _validated_t(X, y_codes, spectrum, directions):
    rows = validation_rows(X, y_codes)
    base = X[rows] @ directions.T
    with limit_threads(blas=1):
        errors = [
            loo_knn_error(base * spectrum ** (t / 2), y_codes[rows]) for t in AUTO_T
        ]
    preference = np.argsort(np.abs(AUTO_T - 0.5), kind="stable")
    return float(AUTO_T[choose_candidate(errors, rows.size, preference)])


def geometric_mean_factor(similar, dissimilar, t):
    """``L`` with ``L^T L = similar^-1 #_t dissimilar``.

    Parameters
    ----------
    similar : ndarray of shape (d, d)
        Symmetric positive definite ``S``.
    dissimilar : ndarray of shape (d, d)
        Symmetric positive semi-definite ``D``.
    t : float in [0, 1]

    Returns
    -------
    L : ndarray of shape (d, d), float64
        ``diag(c^(t/2)) V^T S^-1/2`` for ``S^1/2 D S^1/2 = V diag(c) V^T``.
    """
    spectrum, directions = geometric_mean_parts(similar, dissimilar)
    # c ** 0 is 1 also for c = 0: t = 0 gives S^-1 exactly.
    return (spectrum ** (t / 2))[:, None] * directions


def geometric_mean_parts(similar, dissimilar):
    """``c`` and ``V^T S^-1/2`` of :func:`geometric_mean_factor`, for any ``t``."""
    n_features = similar.shape[0]
    eps = n_features * np.finfo(np.float64).eps
    s, U = linalg.eigh((similar + similar.T) / 2, check_finite=False)
    if not s[0] > eps * max(s[-1], 0.0):
        raise ValueError(
            f"The similar-pair matrix S is singular (smallest eigenvalue "
            f"{s[0]:.3g}); set regularization > 0."
        )
    sqrt_s = np.sqrt(s)
    half = (U * sqrt_s) @ U.T  # S^1/2
    inverse_half = (U / sqrt_s) @ U.T  # S^-1/2
    middle = half @ dissimilar @ half
    c, V = linalg.eigh((middle + middle.T) / 2, check_finite=False)
    c, V = c[::-1], V[:, ::-1]
    c = np.where(c > eps * max(c[0], 0.0), c, 0.0)
    largest = np.argmax(np.abs(V), axis=0)
    signs = np.sign(V[largest, np.arange(n_features)])
    signs[signs == 0] = 1
    return c, (V * signs).T @ inverse_half
