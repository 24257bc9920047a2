"""How learners choose the size and starting point of their linear map."""

import numbers
import warnings

import numpy as np
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.utils.validation import check_array

from ._whitening import _stable_mean

INIT_METHODS = ("auto", "identity", "pca", "lda", "random")


def resolve_n_components(n_components, n_features, *, max_components=None):
    """Turn the ``n_components`` parameter into a number of output dimensions.

    Parameters
    ----------
    n_components : int or None
        Requested output dimension; None means ``max_components``.
    n_features : int
        Input dimension.
    max_components : int, optional
        The largest allowed value; defaults to ``n_features``.

    Returns
    -------
    n_components : int
    """
    if max_components is None:
        max_components = n_features
    if n_components is None:
        return int(max_components)
    if not isinstance(n_components, numbers.Integral) or isinstance(n_components, bool):
        raise TypeError(f"n_components must be an int or None; got {n_components!r}.")
    if not 1 <= n_components <= max_components:
        raise ValueError(
            f"n_components={n_components} is out of range: it must be between 1 "
            f"and {max_components} (the number of features of X is {n_features})."
        )
    return int(n_components)


def initialize_components(init, X, y=None, *, n_components, random_state):
    """The starting linear map of an iterative learner.

    Parameters
    ----------
    init : {'auto', 'identity', 'pca', 'lda', 'random'} or array-like
        - 'identity': the first ``n_components`` rows of the identity.
        - 'pca': the leading principal directions of X (unit rows).
        - 'lda': the leading discriminant directions of (X, y); needs
          ``n_components <= min(n_features, n_classes - 1)``.
        - 'random': standard normal entries drawn from ``random_state``.
        - 'auto': 'lda' if ``n_components <= min(n_features, n_classes - 1)``,
          else 'pca' if ``n_components < min(n_features, n_samples)``, else
          'identity' (the rule of scikit-learn's NCA).
        - array of shape ``(n_components, n_features)``: used as given. It
          must not be all zeros (a zero map is a stationary point of every
          learner: nothing would be learned) and its metric ``L^T L`` must
          be representable in the dtype of X.

        The PCA and LDA starts are computed on the centred data divided by
        its largest entry, so that they work at any finite scale; a start
        that cannot be computed (constant X, no class separation) is an
        error for an explicit ``init`` and moves 'auto' on to the next
        method.
    X : ndarray of shape (n_samples, n_features)
        Validated training data.
    y : ndarray of shape (n_samples,), optional
        Class codes; needed by 'lda' and 'auto'.
    n_components : int
        Output dimension, already resolved.
    random_state : numpy.random.RandomState
        The fit's one random number generator.

    Returns
    -------
    components : ndarray of shape (n_components, n_features), dtype of X
    """
    n_samples, n_features = X.shape
    if not isinstance(init, str):
        components = check_array(init, dtype=X.dtype, input_name="init")
        if components.shape != (n_components, n_features):
            raise ValueError(
                f"init has shape {components.shape}, but it must have shape "
                f"(n_components, n_features) = ({n_components}, {n_features})."
            )
        largest = float(np.abs(components).max()) if components.size else 0.0
        if largest == 0.0:
            raise ValueError(
                "init is all zeros; a zero map learns nothing (every gradient "
                "vanishes there). Pass a map with nonzero entries, or one of "
                f"{INIT_METHODS}."
            )
        if largest * largest * n_features > np.finfo(X.dtype).max:
            raise ValueError(
                f"init has entries up to {largest:.3g}; its metric init.T @ init "
                f"overflows {X.dtype} (entries must stay below about "
                f"{np.sqrt(np.finfo(X.dtype).max / n_features):.3g})."
            )
        return np.array(components, dtype=X.dtype, order="C")

    if init not in INIT_METHODS:
        raise ValueError(
            f"init must be one of {INIT_METHODS} or an array; got {init!r}."
        )

    if init == "auto":
        n_classes = 0 if y is None else np.unique(y).shape[0]
        components = None
        if y is not None and n_components <= min(n_features, n_classes - 1):
            components = _lda_components(X, y, n_components)
        if components is None and n_components < min(n_features, n_samples):
            components = _pca_components(X, n_components, random_state)
        if components is None:
            components = np.eye(n_components, n_features)
        return np.ascontiguousarray(components, dtype=X.dtype)

    if init == "identity":
        components = np.eye(n_components, n_features)
    elif init == "random":
        components = random_state.standard_normal((n_components, n_features))
    elif init == "pca":
        if n_components > min(n_samples, n_features):
            raise ValueError(
                f"init='pca' gives at most min(n_samples, n_features) = "
                f"{min(n_samples, n_features)} components; n_components="
                f"{n_components} is too many."
            )
        components = _pca_components(X, n_components, random_state)
        if components is None:
            raise ValueError(
                "init='pca' needs X with varying features; X is constant. "
                "Use init='identity'."
            )
    else:  # lda
        if y is None:
            raise ValueError("init='lda' needs class labels y.")
        n_classes = np.unique(y).shape[0]
        max_lda = min(n_features, n_classes - 1)
        if n_components > max_lda:
            raise ValueError(
                f"init='lda' gives at most min(n_features, n_classes - 1) = "
                f"{max_lda} components; n_components={n_components} is too many."
            )
        components = _lda_components(X, y, n_components)
        if components is None:
            raise ValueError(
                f"init='lda' could not find {n_components} discriminant "
                "direction(s): X is constant or its classes do not differ in "
                "their means. Use init='pca' or 'identity'."
            )
    return np.ascontiguousarray(components, dtype=X.dtype)


def _unit_centred(X):
    # (X - mean) / unit with unit the largest centred entry; None if constant.
    X64 = np.asarray(X, dtype=np.float64)
    centred = X64 - _stable_mean(X64)
    unit = float(np.abs(centred).max()) if centred.size else 0.0
    if not 0.0 < unit < np.inf:
        return None, 0.0
    return centred / unit, unit


def _pca_components(X, n_components, random_state):
    """Leading principal directions (unit rows), or None for constant X."""
    centred, _ = _unit_centred(X)
    if centred is None:
        return None
    pca = PCA(n_components=n_components, random_state=random_state)
    components = pca.fit(centred).components_
    return components if np.all(np.isfinite(components)) else None


def _lda_components(X, y, n_components):
    """Leading discriminant directions, or None where there are none."""
    centred, unit = _unit_centred(X)
    if centred is None:
        return None
    lda = LinearDiscriminantAnalysis(n_components=n_components)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # collinear variables
            lda.fit(centred, y)
    except (ValueError, IndexError, np.linalg.LinAlgError):
        return None
    scalings = lda.scalings_.T[:n_components]
    if scalings.shape[0] < n_components or not np.all(np.isfinite(scalings)):
        return None
    if not np.any(scalings):
        return None
    # the scalings apply to X / unit: in units of X they are scalings / unit
    return scalings / unit
