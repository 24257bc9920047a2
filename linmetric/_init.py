"""How learners choose the size and starting point of their linear map."""

import numbers

import numpy as np
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.utils.validation import check_array

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
        - array of shape ``(n_components, n_features)``: used as given.
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
        return np.array(components, dtype=X.dtype, order="C")

    if init not in INIT_METHODS:
        raise ValueError(
            f"init must be one of {INIT_METHODS} or an array; got {init!r}."
        )

    if init == "auto":
        n_classes = 0 if y is None else np.unique(y).shape[0]
        if y is not None and n_components <= min(n_features, n_classes - 1):
            init = "lda"
        elif n_components < min(n_features, n_samples):
            init = "pca"
        else:
            init = "identity"

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
        pca = PCA(n_components=n_components, random_state=random_state)
        components = pca.fit(X).components_
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
        lda = LinearDiscriminantAnalysis(n_components=n_components)
        lda.fit(X, y)
        components = lda.scalings_.T[:n_components]
    return np.ascontiguousarray(components, dtype=X.dtype)
