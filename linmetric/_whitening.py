"""PCA and ZCA whitening: the metric in which the data has unit covariance."""

import numbers

import numpy as np
from scipy import linalg

from ._base import MetricLearner
from ._params import Interval, StrOptions, validate_params
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
    in which the data (almost) does not vary are not blown up; this also makes
    the map well defined when ``n_features > n_samples``.

    ``transform`` applies ``L`` only; it does not subtract ``mean_``, because
    a metric is invariant to translation. Subtract ``mean_`` first for
    zero-mean output.

    Parameters
    ----------
    method : {'pca', 'zca'}, default='pca'
        Whitening with a rotation to principal axes, or its symmetric form.
    n_components : int, float or None, default=None
        Directions kept. None keeps ``min(n_samples, n_features)``; an int
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
        Eigenvalues of the kept directions (before the floor).
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
        self.mean_, variances, directions = centered_spectrum(X)
        n_kept = self._n_kept(variances)
        total = variances.sum()
        variances, directions = variances[:n_kept], directions[:, :n_kept]
        self.explained_variance_ = variances
        self.explained_variance_ratio_ = (
            variances / total if total > 0 else np.full(n_kept, 1.0 / variances.size)
        )
        self.n_components_ = n_kept
        scales = 1.0 / np.sqrt(floor_eigenvalues(variances, self.regularization))
        components = scales[:, None] * directions.T
        if self.method == "zca":
            components = directions @ components
        self.components_ = np.ascontiguousarray(components, dtype=X.dtype)
        return self

    def _n_kept(self, variances):
        n_max = variances.shape[0]
        n_components = self.n_components
        if n_components is None:
            return n_max
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
    """Mean and covariance spectrum of X.

    With at least as many samples as features, the spectrum comes from the
    eigendecomposition of the ``n_features x n_features`` scatter matrix (one
    GEMM, fast for tall data); otherwise from the SVD of the centred data.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    mean : ndarray of shape (n_features,)
    variances : ndarray of shape (min(n_samples, n_features),), float64
        Eigenvalues of the covariance (divisor ``n_samples - 1``), in
        decreasing order. Those below ``max(n_samples, n_features) * eps``
        times the largest are rounding noise of a lower rank and set to 0.
    directions : ndarray of shape (n_features, min(n_samples, n_features))
        Matching orthonormal eigenvectors, as columns. The sign of each is
        fixed so that its largest entry is positive.
    """
    X64 = np.asarray(X, dtype=np.float64)
    n_samples, n_features = X64.shape
    mean = X64.mean(axis=0)
    centred = X64 - mean
    if n_samples >= n_features:
        scatter = centred.T @ centred
        eigenvalues, vectors = linalg.eigh(scatter, check_finite=False)
        variances = np.maximum(eigenvalues[::-1], 0) / (n_samples - 1)
        directions = vectors[:, ::-1]
    else:
        _, singular, Vt = linalg.svd(centred, full_matrices=False, check_finite=False)
        variances = singular**2 / (n_samples - 1)
        directions = Vt.T
    if variances.size:
        variances[
            variances
            <= variances[0] * max(n_samples, n_features) * np.finfo(np.float64).eps
        ] = 0
    largest = np.argmax(np.abs(directions), axis=0)
    signs = np.sign(directions[largest, np.arange(directions.shape[1])])
    signs[signs == 0] = 1
    return mean.astype(X.dtype), variances, directions * signs


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
