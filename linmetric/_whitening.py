"""PCA and ZCA whitening: the metric in which the data has unit covariance."""

import numbers

import numpy as np
from scipy import linalg

from ._base import MetricLearner
from ._params import Interval, StrOptions, validate_params
from ._psd import rank_tolerance
from ._validation import validate_X


class Whitening(MetricLearner):
    r"""PCA or ZCA whitening as a linear metric.

    With the centred training data's covariance ``Sigma = U diag(lambda) U^T``
    (eigenvalues in decreasing order), whitening scales each principal
    direction to unit variance:

    - ``method='pca'``: ``L = diag(lambda_k)^{-1/2} U_k^T``, shape
      ``(n_components, n_features)``; the output coordinates are the
      whitened principal components.
    - ``method='zca'``: ``L = U_k diag(lambda_k)^{-1/2} U_k^T``, shape
      ``(n_features, n_features)`` and symmetric; the whitened data is
      rotated back so that it stays as close as possible to the input
      (zero-phase component analysis).

    ``U_k`` holds the ``n_components`` leading directions. The learned
    distance is the Mahalanobis distance of the (truncated) covariance,
    ``M = L^T L = U_k diag(lambda_k)^{-1} U_k^T``. Eigenvalues smaller than
    ``regularization * lambda_max`` are raised to that floor, so directions
    in which the data hardly varies are not blown up. Directions in which
    the centred data does not vary at all (eigenvalues at most
    ``max(n_samples, n_features) * eps * lambda_max``: fewer samples than
    features, constant or collinear features) are dropped: by default only the
    ``rank`` varying directions are kept, and an ``n_components`` larger
    than the rank gives zero rows for the others, so that differences
    along them do not count. Constant data gives the Euclidean metric.
    The map is computed in units of the data, so any finite scale works.

    ``transform`` applies ``L`` only; it does not subtract ``mean_``, because
    a metric is invariant to translation. Subtract ``mean_`` first for
    zero-mean output.

    Parameters
    ----------
    method : {'pca', 'zca'}, default='pca'
        Whitening with a rotation to principal axes, or its symmetric form.
    n_components : int, float or None, default=None
        Directions kept. None keeps the numerical rank of the centred data
        (at most ``min(n_samples - 1, n_features)``); an int
        keeps that many; a float in (0, 1) keeps the fewest directions that
        explain at least that fraction of the variance.
    regularization : float, default=1e-6
        Relative floor of the eigenvalues, ``lambda_i >= regularization *
        lambda_max``. 0 disables the floor.

    Attributes
    ----------
    components_ : ndarray of shape (n_components_, n_features) or (n_features, n_features)
        The whitening map ``L``.
    mean_ : ndarray of shape (n_features,)
        Mean of the training data.
    explained_variance_ : ndarray of shape (n_components_,)
        Eigenvalues of the kept directions (before the floor); inf where a
        variance exceeds the float64 range (data beyond about 1e154).
    explained_variance_ratio_ : ndarray of shape (n_components_,)
        Fraction of the total variance that each kept direction explains.
    n_components_ : int
        Number of kept directions.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X has string column names.

    See Also
    --------
    Covariance : The inverse-covariance (Mahalanobis) metric, unreduced.
    sklearn.decomposition.PCA : ``PCA(whiten=True)`` gives the same output as
        ``method='pca'`` up to the sign of each component and the mean.

    References
    ----------
    .. [1] A. J. Bell and T. J. Sejnowski, "The 'independent components' of
       natural scenes are edge filters", Vision Research 37(23), 1997.
    .. [2] A. Kessy, A. Lewin and K. Strimmer, "Optimal whitening and
       decorrelation", The American Statistician 72(4), 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric import Whitening
    >>> rng = np.random.RandomState(0)
    >>> X = rng.standard_normal((500, 3)) @ np.array([[3, 0, 0], [1, 1, 0], [0, 0, 0.1]])
    >>> whitening = Whitening(method="zca").fit(X)
    >>> np.round(np.cov(whitening.transform(X), rowvar=False), 6) + 0.0
    array([[1., 0., 0.],
           [0., 1., 0.],
           [0., 0., 1.]])
    >>> bool(np.allclose(whitening.components_, whitening.components_.T))
    True
    """

    _parameter_constraints = {
        "method": [StrOptions({"pca", "zca"})],
        "n_components": [
            Interval(numbers.Integral, 1, None, closed="left"),
            Interval(numbers.Real, 0, 1, closed="neither"),
            None,
        ],
        "regularization": [Interval(numbers.Real, 0, None, closed="left")],
    }

    def __init__(self, method="pca", n_components=None, regularization=1e-6):
        self.method = method
        self.n_components = n_components
        self.regularization = regularization

    def fit(self, X, y=None):
        """Fit the whitening map to X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; at least two samples.
        y : None
            Ignored.

        Returns
        -------
        self : Whitening
        """
        validate_params(self)
        X = validate_X(self, X, ensure_min_samples=2)
        self.mean_, variances, directions, unit = centered_spectrum(X)
        unit = np.float64(unit)
        rank = int(np.count_nonzero(variances))
        n_kept = self._n_kept(variances, rank)
        total = variances.sum()
        variances, directions = variances[:n_kept], directions[:, :n_kept]
        with np.errstate(over="ignore", under="ignore"):
            self.explained_variance_ = variances * unit * unit
        self.explained_variance_ratio_ = (
            variances / total if total > 0 else np.full(n_kept, 1.0 / variances.size)
        )
        self.n_components_ = n_kept
        if rank == 0:  # constant data: the Euclidean metric
            scales = np.ones(n_kept)
        else:
            floored = floor_eigenvalues(variances, self.regularization)
            # zero-variance directions get a zero row, never 1 / sqrt(floor)
            varying = variances > 0
            scales = np.zeros(n_kept)
            scales[varying] = 1.0 / np.sqrt(floored[varying]) / unit
        components = scales[:, None] * directions.T
        if self.method == "zca":
            components = directions @ components
        self.components_ = np.ascontiguousarray(components, dtype=X.dtype)
        return self

    def _n_kept(self, variances, rank):
        n_max = variances.shape[0]
        n_components = self.n_components
        if n_components is None:
            return rank if rank else n_max
        if isinstance(n_components, numbers.Integral):
            if n_components > n_max:
                raise ValueError(
                    f"n_components={n_components} is out of range: whitening "
                    f"keeps at most min(n_samples, n_features) = {n_max} "
                    "directions."
                )
            return int(n_components)
        total = variances.sum()
        if total <= 0:
            return n_max
        cumulative = np.cumsum(variances) / total
        return int(min(np.searchsorted(cumulative, n_components) + 1, n_max))


def centered_spectrum(X):
    """Mean and covariance spectrum of X, in units that cannot overflow.

    The centred data is divided by its largest absolute entry ``unit``
    before any product, so that data of any finite scale (1e-200 or 1e200)
    gives the same directions and relative variances; the variances of X
    are ``variances * unit**2``. With at least as many samples as features,
    the spectrum comes from the eigendecomposition of the
    ``n_features x n_features`` scatter matrix (one GEMM, fast for tall
    data); otherwise from the SVD of the centred data.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    mean : ndarray of shape (n_features,)
    variances : ndarray of shape (min(n_samples, n_features),), float64
        Eigenvalues of the covariance of ``(X - mean) / unit`` (divisor
        ``n_samples - 1``), in decreasing order. Those at or below
        :func:`linmetric._psd.rank_tolerance` (with size
        ``max(n_samples, n_features)``) are rounding noise of a lower rank
        and set to 0.
    directions : ndarray of shape (n_features, min(n_samples, n_features))
        Matching orthonormal eigenvectors, as columns. The sign of each is
        fixed so that its largest entry is positive.
    unit : float
        The scale of the centred data (1 for constant data).
    """
    X64 = np.asarray(X, dtype=np.float64)
    n_samples, n_features = X64.shape
    mean = _stable_mean(X64)
    centred = X64 - mean
    unit = float(np.abs(centred).max()) if centred.size else 0.0
    if not 0.0 < unit < np.inf:
        unit = 1.0
    centred /= unit
    if n_samples >= n_features:
        scatter = centred.T @ centred
        eigenvalues, vectors = linalg.eigh(scatter, check_finite=False)
        variances = np.maximum(eigenvalues[::-1], 0) / (n_samples - 1)
        directions = vectors[:, ::-1]
    else:
        _, singular, Vt = linalg.svd(centred, full_matrices=False, check_finite=False)
        variances = singular**2 / (n_samples - 1)
        directions = Vt.T
    tol = rank_tolerance(variances, size=max(n_samples, n_features))
    variances[variances <= tol] = 0
    largest = np.argmax(np.abs(directions), axis=0)
    signs = np.sign(directions[largest, np.arange(directions.shape[1])])
    signs[signs == 0] = 1
    return mean.astype(X.dtype), variances, directions * signs, unit


def _stable_mean(X64):
    # The mean of data near the float64 limit: X.mean() would overflow.
    scale = float(np.abs(X64).max()) if X64.size else 0.0
    if scale > 1e300:
        return (X64 / scale).mean(axis=0) * scale
    return X64.mean(axis=0)


def floor_eigenvalues(variances, regularization):
    """Raise eigenvalues to at least ``regularization * max(variances)``.

    All-zero spectra (constant data) are mapped to ones, so that the metric
    falls back to the Euclidean one instead of dividing by zero.
    """
    largest = variances.max() if variances.size else 0.0
    if largest <= 0:
        return np.ones_like(variances)
    floor = max(regularization * largest, np.finfo(np.float64).tiny)
    return np.maximum(variances, floor)
