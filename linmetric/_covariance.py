"""The inverse-covariance (Mahalanobis) metric."""

import numbers

import numpy as np
from sklearn.covariance import ledoit_wolf_shrinkage

from ._base import MetricLearner
from ._params import Interval, StrOptions, validate_params
from ._psd import rank_tolerance
from ._validation import validate_X
from ._whitening import _stable_mean, centered_spectrum


class Covariance(MetricLearner):
    r"""The Mahalanobis metric of the training data's covariance.

    The learned distance is the classical Mahalanobis distance
    ``d(x, x')^2 = (x - x')^T Sigma^{-1} (x - x')``, so ``M = Sigma^{-1}`` and
    ``L = Sigma^{-1/2}``, the symmetric inverse square root (``L`` has shape
    ``(n_features, n_features)``). No labels are used.

    A singular covariance (fewer samples than features, constant or
    collinear features) has no inverse. Two behaviours are offered:

    - ``shrinkage=None`` (default): the pseudo-inverse. With
      ``Sigma = U diag(lambda) U^T``, ``M = U diag(1/lambda) U^T`` over the
      directions with ``lambda > 0`` (numerical rank of the centred data:
      eigenvalues at most ``max(n_samples, n_features) * eps * lambda_max``
      count as zero),
      and ``M`` is zero on the others: differences along a direction in
      which the training data never varied do not count.
    - ``shrinkage`` a float ``a`` in [0, 1] or ``'ledoit_wolf'``: the
      shrunk covariance ``(1 - a) Sigma + a (trace(Sigma) / n_features) I``
      (a chosen by the Ledoit-Wolf formula for ``'ledoit_wolf'``), which is
      positive definite for ``a > 0`` and is inverted exactly.

    Parameters
    ----------
    shrinkage : None, float in [0, 1] or 'ledoit_wolf', default=None
        How a singular covariance is handled; see above.

    Attributes
    ----------
    components_ : ndarray of shape (n_features, n_features)
        The map ``L = Sigma^{-1/2}`` (pseudo-inverse or shrunk).
    covariance_ : ndarray of shape (n_features, n_features)
        The covariance that was inverted (shrunk if asked), float64; inf
        where it exceeds the float64 range (data beyond about 1e154). The
        map itself is computed in units of the data, so any finite scale
        works.
    shrinkage_ : float
        The shrinkage used (0 with ``shrinkage=None``).
    rank_ : int
        Rank of the inverted covariance, which is the rank of ``M``.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X has string column names.

    See Also
    --------
    Whitening : The same metric restricted to leading principal directions,
        with an eigenvalue floor.

    References
    ----------
    .. [1] P. C. Mahalanobis, "On the generalised distance in statistics",
       Proceedings of the National Institute of Sciences of India 2(1), 1936.
    .. [2] O. Ledoit and M. Wolf, "A well-conditioned estimator for
       large-dimensional covariance matrices", Journal of Multivariate
       Analysis 88(2), 2004.

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric import Covariance
    >>> rng = np.random.RandomState(0)
    >>> X = rng.standard_normal((1000, 2)) * [10.0, 1.0]
    >>> metric = Covariance().fit(X)
    >>> M = metric.get_mahalanobis_matrix()
    >>> bool(np.allclose(M, np.linalg.inv(np.cov(X, rowvar=False))))
    True
    >>> metric.pair_distance([[[0.0, 0.0], [10.0, 0.0]], [[0.0, 0.0], [0.0, 1.0]]]).round(1)
    array([1., 1.])
    """

    _parameter_constraints = {
        "shrinkage": [
            None,
            Interval(numbers.Real, 0, 1, closed="both"),
            StrOptions({"ledoit_wolf"}),
        ],
    }

    def __init__(self, shrinkage=None):
        self.shrinkage = shrinkage

    def fit(self, X, y=None):
        """Fit the inverse-covariance metric to X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; at least two samples.
        y : None
            Ignored.

        Returns
        -------
        self : Covariance
        """
        validate_params(self)
        X = validate_X(self, X, ensure_min_samples=2)
        n_features = X.shape[1]
        if self.shrinkage is None:
            _, variances, directions, unit = centered_spectrum(X)
            shrinkage = 0.0
        else:
            # in units of the centred data, so that no product overflows
            centred = np.asarray(X, dtype=np.float64)
            centred = centred - _stable_mean(centred)
            unit = float(np.abs(centred).max())
            if not 0.0 < unit < np.inf:
                unit = 1.0
            centred /= unit
            if self.shrinkage == "ledoit_wolf":
                shrinkage = float(ledoit_wolf_shrinkage(centred, assume_centered=True))
            else:
                shrinkage = float(self.shrinkage)
            covariance = (centred.T @ centred) / (X.shape[0] - 1)
            mu = np.trace(covariance) / n_features
            covariance = (1 - shrinkage) * covariance + shrinkage * mu * np.eye(
                n_features
            )
            variances, directions = np.linalg.eigh(covariance)
            variances, directions = variances[::-1], directions[:, ::-1]
            tol = rank_tolerance(variances)
            variances = np.where(variances > tol, variances, 0.0)
        unit = np.float64(unit)
        kept = variances > 0
        directions = directions[:, kept]
        inv_sqrt = 1.0 / np.sqrt(variances[kept]) / unit
        with np.errstate(over="ignore", under="ignore"):
            scaled = (directions * variances[kept]) @ directions.T
            self.covariance_ = scaled * unit * unit
        self.shrinkage_ = shrinkage
        self.rank_ = int(kept.sum())
        self.components_ = np.ascontiguousarray(
            (directions * inv_sqrt) @ directions.T, dtype=X.dtype
        )
        return self
