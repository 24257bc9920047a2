"""Metric Learning for Kernel Regression (MLKR)."""

import numbers
import warnings

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils._tags import RegressorTags
from sklearn.utils.validation import validate_data

from ._base import SupervisedMetricLearner
from ._init import initialize_components, resolve_n_components
from ._kernels import rows_per_chunk
from ._kernels.mlkr import loo_kernel_regression
from ._optimize import IterationLog, minimize_lbfgs
from ._params import Interval, StrOptions, validate_params
from ._threads import fit_threads
from ._validation import DENSE_FLOATS, centred_in_units

# Up to this many output dimensions the fused numba kernel is faster than
# BLAS blocks (measured: about 2.5x at 10, even at 64).
FUSED_MAX_COMPONENTS = 48


class MLKR(SupervisedMetricLearner):
    r"""Metric Learning for Kernel Regression.

    MLKR [1]_ learns the linear map ``A`` under which leave-one-out
    Nadaraya-Watson kernel regression with a Gaussian kernel predicts the
    training targets best:

    .. math::

        \hat y_i = \frac{\sum_{j \ne i} y_j k_{ij}}{\sum_{j \ne i} k_{ij}},
        \qquad k_{ij} = \exp(-\|A (x_i - x_j)\|^2),
        \qquad \mathcal{L}(A) = \sum_i (y_i - \hat y_i)^2,

    with gradient ``4 A sum_i (yhat_i - y_i) sum_j p_ij (yhat_i - y_j)
    x_ij x_ij^T``, ``p_ij = k_ij / sum_l k_il`` and ``x_ij = x_i - x_j``.
    The kernel width is part of ``A``'s scale. The loss is minimised by
    L-BFGS-B; every evaluation goes through blocks of rows of the ``n x n``
    kernel matrix, sized by ``working_memory``, in the projected space: one
    GEMM for the distances, the softmax, and two GEMMs of the weights with
    the projected points. Time ``O(n^2 n_components)`` per evaluation plus
    ``O(n n_components n_features)``; memory ``O(n (n_features +
    n_components))`` plus one block.

    Scale of the start. The Gaussian kernel has no width parameter, so the
    units of X matter. With ``init_scale='auto'`` a string ``init`` is
    multiplied by the scalar that gives the projected training data an
    average variance of 1 per output dimension (on standardised data with
    ``init='identity'`` that scalar is 1: the start is the identity), and
    the optimisation runs in units of that start. Rescaling X by ``s`` then
    rescales ``components_`` by ``1/s`` and changes nothing else; the
    objective is also divided by ``sum_i (y_i - mean(y))^2``, so ``tol``
    does not depend on the units of y. X and y are centred and divided by a
    power of two near their spread first (exact, and it keeps distances and
    residuals finite at any scale).

    Parameters
    ----------
    n_components : int, default=None
        Dimension of the learned space; None means ``n_features``.
    init : {'auto', 'pca', 'identity', 'random'} or ndarray of shape (n_components, n_features), default='auto'
        Starting map: 'auto' is 'pca' if ``n_components < min(n_features,
        n_samples)``, else 'identity'.
    init_scale : {'auto'} or None, default='auto'
        'auto' rescales a string ``init`` as described above; None uses it
        as it is (unit rows, whatever the units of X). An array ``init`` is
        always used as given.
    max_iter : int, default=200
        The most L-BFGS-B iterations.
    tol : float, default=1e-6
        Convergence when the largest gradient entry (in the units of the
        start) falls below ``tol``, or one iteration lowers the normalised
        loss by less than ``tol`` times its value.
    working_memory : float, default=None
        Budget in MiB for one block of the kernel matrix; None means
        ``sklearn.get_config()['working_memory']``.
    callback : callable, default=None
        Called as ``callback(components, n_iter)`` after every iteration.
    verbose : int, default=0
        If positive, print one row per iteration.
    random_state : int, RandomState instance or None, default=None
        Seeds ``init='random'`` and the randomised PCA of ``init='pca'``.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        The learned map ``A``, in the dtype of X.
    n_iter_ : int
        Number of L-BFGS-B iterations run.
    loss_curve_ : ndarray of shape (n_iter_,)
        The normalised loss ``L(A) / sum_i (y_i - mean(y))^2`` after each
        iteration (the fraction of the target's variance left unexplained
        by the leave-one-out kernel regression).
    history_ : dict of str to ndarray
        Per-iteration 'loss' and 'seconds'.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X has string column names.

    Notes
    -----
    Deviations from [1]_: the paper prints the inner factor of the gradient
    as ``(yhat_j - y_j)``; the derivative of its own loss is ``(yhat_i -
    y_j)``, used here. The loss is divided by a constant (the total sum of
    squares of y), which does not move the minimum. The start is rescaled
    as described above. Targets are one-dimensional.

    References
    ----------
    .. [1] K. Q. Weinberger and G. Tesauro, "Metric Learning for Kernel
       Regression", Proceedings of the 11th International Conference on
       Artificial Intelligence and Statistics (AISTATS), 2007.

    Examples
    --------
    >>> import numpy as np
    >>> from linmetric import MLKR
    >>> rng = np.random.RandomState(0)
    >>> X = rng.standard_normal((200, 5))
    >>> y = np.sin(2 * X[:, 0]) + 0.1 * X[:, 1]  # depends on two features
    >>> mlkr = MLKR(n_components=2, random_state=0).fit(X, y)
    >>> mlkr.transform(X).shape
    (200, 2)
    >>> bool(mlkr.loss_curve_[-1] < 0.5 * mlkr.loss_curve_[0])
    True
    """

    _parameter_constraints = {
        "n_components": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "init": [StrOptions({"auto", "pca", "identity", "random"}), np.ndarray],
        "init_scale": [StrOptions({"auto"}), None],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "working_memory": [Interval(numbers.Real, 0, None, closed="neither"), None],
        "callback": [None, "callable"],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_components=None,
        *,
        init="auto",
        init_scale="auto",
        max_iter=200,
        tol=1e-6,
        working_memory=None,
        callback=None,
        verbose=0,
        random_state=None,
    ):
        self.n_components = n_components
        self.init = init
        self.init_scale = init_scale
        self.max_iter = max_iter
        self.tol = tol
        self.working_memory = working_memory
        self.callback = callback
        self.verbose = verbose
        self.random_state = random_state

    def fit(self, X, y):
        """Fit the MLKR map to regression targets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, at least two samples; float32 is kept for
            ``components_`` (the objective is computed in float64).
        y : array-like of shape (n_samples,)
            Real-valued targets (constant targets leave nothing to learn:
            the start is returned, with a warning).

        Returns
        -------
        self : MLKR
        """
        validate_params(self)
        check_targets(y)
        X, y = validate_data(
            self, X, y, ensure_min_samples=2, y_numeric=True, **DENSE_FLOATS
        )
        y = np.asarray(y, dtype=np.float64)
        if not np.ptp(y) > 0:
            warnings.warn(
                f"y is constant (a single value, {y[0]:.6g}): every map predicts "
                "it exactly, so MLKR has nothing to learn and returns its start.",
                UserWarning,
                stacklevel=2,
            )
        n_components = resolve_n_components(self.n_components, X.shape[1])
        random_state = check_random_state(self.random_state)
        # The objective does not change with a shift of X; centring keeps
        # the GEMM expansion of the distances accurate, and the units of
        # 2**exponent keep them finite at any scale of X.
        X_units, exponent = centred_in_units(X)
        if isinstance(self.init, str):
            # PCA and the identity do not depend on the units (the scale of
            # the start is set below).
            components = initialize_components(
                self.init,
                X_units,
                None,
                n_components=n_components,
                random_state=random_state,
            )
        else:  # the given map, checked against X, in the units of X_units
            components = initialize_components(
                self.init, X, None, n_components=n_components, random_state=None
            )
            components = np.ldexp(components.astype(np.float64), exponent)
        X64 = np.asarray(X_units, dtype=np.float64)
        scale = 1.0
        if isinstance(self.init, str):
            if self.init_scale == "auto":
                scale = start_scale(X64, components)
            else:  # unit rows in the units of X
                scale = float(np.ldexp(1.0, exponent))
        X_scaled = X64 * scale
        # Predictions are affine in y, so the normalised loss is the same for
        # y centred and in units of its spread, where it cannot overflow.
        y, _ = centred_in_units(y[:, None])
        y = y[:, 0]
        total = float(y @ y)
        normaliser = 1.0 / total if total > 0 else 1.0

        def objective(flat):
            loss, grad = loss_and_gradient(
                flat.reshape(components.shape),
                X_scaled,
                y,
                working_memory=self.working_memory,
            )
            return loss * normaliser, grad * normaliser, {}

        log = IterationLog("MLKR", verbose=self.verbose, callback=self.callback)
        with fit_threads("mlkr", X.shape[0]):
            result = minimize_lbfgs(
                objective,
                components.astype(np.float64),
                max_iter=self.max_iter,
                tol=self.tol,
                log=log,
                shape=components.shape,
                ftol=self.tol,
            )
        components = np.ldexp(result.x * scale, -exponent)
        self.components_ = np.ascontiguousarray(components, dtype=X.dtype)
        self.n_iter_ = result.n_iter
        self.loss_curve_ = log.loss_curve
        self.history_ = log.history
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Real-valued targets: a regression learner, not a classifier.
        tags.regressor_tags = RegressorTags()
        return tags


def check_targets(y):
    """Reject class labels given as regression targets, saying what they are."""
    if y is None:
        return
    values = np.asarray(y)
    if values.dtype.kind not in "OUS":
        return
    kinds = set()
    for value in values.ravel():
        if value is None:
            raise ValueError(
                "y contains None; MLKR needs a real-valued target (a number) "
                "for every sample."
            )
        if isinstance(value, numbers.Real):
            kinds.add("number")
        else:
            kinds.add("str" if isinstance(value, str) else type(value).__name__)
    if "number" in kinds and len(kinds) > 1:
        names = " and ".join([*sorted(kinds - {"number"}), "numbers"])
        raise ValueError(
            f"y mixes labels of different types ({names}); MLKR needs "
            "real-valued regression targets."
        )
    if "number" not in kinds:
        first = values.ravel()[0]
        first = first.item() if isinstance(first, np.generic) else first
        raise ValueError(
            f"y holds {' and '.join(sorted(kinds))} values, such as "
            f"{first!r}; MLKR is a regression learner and needs "
            "real-valued targets."
        )


def start_scale(X, components):
    """The scalar that gives ``X @ components.T`` unit mean variance per column.

    1 when the projected data does not vary (constant X).
    """
    projected = X @ components.T
    variance = float(np.mean(projected.var(axis=0)))
    return 1.0 / np.sqrt(variance) if variance > 0 else 1.0


def loss_and_gradient(components, X, y, *, working_memory=None, fused=None):
    """The MLKR loss ``sum_i (y_i - yhat_i)^2`` and its gradient.

    With ``Z = X A^T`` and weights ``W_ij = (yhat_i - y_i) p_ij (yhat_i -
    y_j)``, the gradient is ``4 A X^T S X = 4 (S Z)^T X`` with ``S = D_r +
    D_c - W - W^T`` (``D_r``, ``D_c`` the diagonal row and column sums of
    ``W``). A row ``i`` of ``W`` needs only ``yhat_i``, so ``S Z`` is
    accumulated row by row (fused numba kernel,
    :func:`linmetric._kernels.mlkr.loo_kernel_regression`) or block of rows
    by block (BLAS): ``D_r Z - W Z`` on the rows, ``- W^T Z`` and the column
    sums on all rows. No ``n x n`` array is formed.

    Parameters
    ----------
    components : ndarray of shape (n_components, n_features)
        The map ``A``.
    X : ndarray of shape (n_samples, n_features), float64
    y : ndarray of shape (n_samples,), float64
    working_memory : float or None
        Budget in MiB for one block of the BLAS path (two ``rows x
        n_samples`` float64 arrays).
    fused : bool or None
        Use the fused kernel; None chooses it up to 48 components.

    Returns
    -------
    loss : float
    gradient : ndarray of shape (n_components, n_features), float64
    """
    if fused is None:
        fused = components.shape[0] <= FUSED_MAX_COMPONENTS
    if fused:
        residuals, SZ = loo_kernel_regression(X @ components.T, y)
        return float(residuals @ residuals), 4.0 * (SZ.T @ X)
    return _blocked_loss_and_gradient(components, X, y, working_memory)


def _blocked_loss_and_gradient(components, X, y, working_memory):
    """:func:`loss_and_gradient` with BLAS blocks of rows."""
    n_samples = X.shape[0]
    Z = X @ components.T
    norms = np.einsum("ij,ij->i", Z, Z)
    SZ = np.zeros_like(Z)
    column_sums = np.zeros(n_samples)
    loss = 0.0
    n_rows = rows_per_chunk(2 * n_samples * 8, working_memory, max_rows=n_samples)
    for start in range(0, n_samples, n_rows):
        stop = min(start + n_rows, n_samples)
        rows = np.arange(stop - start)
        Z_block = Z[start:stop]
        # Squared distances, then the leave-one-out softmax in place.
        weights = Z_block @ Z.T
        weights *= -2.0
        weights += norms[start:stop, None]
        weights += norms[None, :]
        np.maximum(weights, 0.0, out=weights)
        weights[rows, start + rows] = np.inf
        weights -= weights.min(axis=1, keepdims=True)
        np.negative(weights, out=weights)
        np.exp(weights, out=weights)
        weights /= weights.sum(axis=1, keepdims=True)
        y_hat = weights @ y
        residual = y_hat - y[start:stop]
        loss += float(residual @ residual)
        # W_ij = residual_i p_ij (yhat_i - y_j); one temporary block.
        weights *= y_hat[:, None] - y[None, :]
        weights *= residual[:, None]
        row_sums = weights.sum(axis=1)
        column_sums += weights.sum(axis=0)
        SZ[start:stop] += row_sums[:, None] * Z_block - weights @ Z
        SZ -= weights.T @ Z_block
    SZ += column_sums[:, None] * Z
    return loss, 4.0 * (SZ.T @ X)
