"""The data sets of the suites, split and preprocessed the same way for all."""

from dataclasses import dataclass, field

import numpy as np

EMBEDDED_DATASETS = ("iris", "wine", "breast_cancer", "digits")


@dataclass
class Split:
    """A train/test split ready for the learners."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def n_classes(self):
        return int(np.unique(self.y_train).size)


def _embedded_arrays(name):
    """The features (float64) and labels of one of scikit-learn's data sets."""
    from sklearn import datasets

    loaders = {
        "iris": datasets.load_iris,
        "wine": datasets.load_wine,
        "breast_cancer": datasets.load_breast_cancer,
        "digits": datasets.load_digits,
    }
    if name not in loaders:
        raise ValueError(
            f"dataset={name!r} is not an embedded data set; choose from "
            f"{', '.join(EMBEDDED_DATASETS)}."
        )
    X, y = loaders[name](return_X_y=True)
    return X.astype(np.float64), y


def _standardised_split(name, X_train, y_train, X_test, y_test, info):
    """A :class:`Split` standardised with statistics of the training part only."""
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(X_train)
    return Split(
        name,
        np.ascontiguousarray(scaler.transform(X_train)),
        y_train,
        np.ascontiguousarray(scaler.transform(X_test)),
        y_test,
        info,
    )


def load_embedded(name, seed=0, test_size=0.3):
    """Load one of scikit-learn's embedded data sets, split and standardised.

    The split is stratified (``test_size`` of each class held out, drawn with
    ``seed``); the standardisation is fitted on the training part only.
    """
    from sklearn.model_selection import train_test_split

    X, y = _embedded_arrays(name)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, stratify=y, random_state=seed
    )
    info = {"split": f"stratified {1 - test_size:.0%}/{test_size:.0%}", "seed": seed}
    return _standardised_split(name, X_train, y_train, X_test, y_test, info)


def load_embedded_fold(name, seed=0, *, fold=0, n_folds=2):
    """One fold of stratified k-fold cross-validation of an embedded data set.

    The data set is shuffled with ``seed`` and cut into ``n_folds`` stratified
    folds; fold ``fold`` is the test part, the others the training part, which
    alone fixes the standardisation.
    """
    from sklearn.model_selection import StratifiedKFold

    if not 0 <= fold < n_folds:
        raise ValueError(f"fold={fold} must be in [0, n_folds={n_folds}).")
    X, y = _embedded_arrays(name)
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    train, test = list(folds.split(X, y))[fold]
    info = {
        "split": f"stratified {n_folds}-fold cross-validation",
        "seed": seed,
        "fold": fold,
        "n_folds": n_folds,
    }
    return _standardised_split(name, X[train], y[train], X[test], y[test], info)


IMAGE_DATASETS = ("mnist", "fashion-mnist")


def _mnist_pca(data_home, n_components, name="mnist"):
    """MNIST (deskewed) or Fashion-MNIST projected by PCA, cached.

    Pixels are scaled to [0, 1]; MNIST digits are deskewed (Fashion-MNIST's
    clothes are not); PCA is fitted on the 60,000 training images. The result
    is stored, in float32, next to the data set's files so that later runs skip
    this step.
    """
    from sklearn.decomposition import PCA

    from linmetric.datasets import (
        deskew,
        get_data_home,
        load_fashion_mnist,
        load_mnist,
    )

    if name == "mnist":
        cache = get_data_home(data_home) / "mnist" / f"deskew-pca{n_components}.npz"
    else:
        cache = get_data_home(data_home) / "fashion-mnist" / f"pca{n_components}.npz"
    if cache.is_file():
        with np.load(cache) as stored:
            return tuple(
                stored[key] for key in ("Z_train", "y_train", "Z_test", "y_test")
            )
    if name == "mnist":
        X_train, y_train, X_test, y_test = load_mnist(data_home)
        flat_train = deskew(X_train / 255.0).reshape(len(X_train), -1)
        flat_test = deskew(X_test / 255.0).reshape(len(X_test), -1)
    else:
        X_train, y_train, X_test, y_test = load_fashion_mnist(data_home, flatten=True)
        flat_train, flat_test = X_train / 255.0, X_test / 255.0
    pca = PCA(n_components=n_components, random_state=0).fit(flat_train)
    Z_train = pca.transform(flat_train).astype(np.float32)
    Z_test = pca.transform(flat_test).astype(np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    temporary = cache.with_suffix(".partial.npz")
    np.savez(temporary, Z_train=Z_train, y_train=y_train, Z_test=Z_test, y_test=y_test)
    temporary.replace(cache)
    return Z_train, y_train, Z_test, y_test


def load_mnist_protocol(
    name="mnist",
    *,
    subsample=None,
    test_subsample=None,
    seed=0,
    n_components=164,
    data_home=None,
):
    """MNIST as in the LMNN paper: deskew, PCA to 164, 60,000/10,000 split.

    ``name="fashion-mnist"`` applies the same protocol, without deskewing, to
    Fashion-MNIST. ``subsample`` draws a stratified subset of the training
    images (the PCA is still the one fitted on all 60,000), ``test_subsample``
    one of the test images; both use ``seed``.
    """
    from sklearn.model_selection import train_test_split

    if name not in IMAGE_DATASETS:
        raise ValueError(f"name={name!r} is not one of {', '.join(IMAGE_DATASETS)}.")
    Z_train, y_train, Z_test, y_test = _mnist_pca(data_home, n_components, name)
    if subsample is not None and subsample < len(Z_train):
        Z_train, _, y_train, _ = train_test_split(
            Z_train, y_train, train_size=subsample, stratify=y_train, random_state=seed
        )
    if test_subsample is not None and test_subsample < len(Z_test):
        Z_test, _, y_test, _ = train_test_split(
            Z_test,
            y_test,
            train_size=test_subsample,
            stratify=y_test,
            random_state=seed,
        )
    steps = "deskew, " if name == "mnist" else ""
    return Split(
        name,
        np.ascontiguousarray(Z_train, dtype=np.float64),
        y_train.astype(np.intp),
        np.ascontiguousarray(Z_test, dtype=np.float64),
        y_test.astype(np.intp),
        {
            "preprocessing": f"pixels/255, {steps}PCA {n_components} fit on 60000",
            "subsample": subsample,
            "test_subsample": test_subsample,
            "seed": seed,
        },
    )
