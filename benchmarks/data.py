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
    # "classification", "regression" or "pairs" (the pairs suite's tuples)
    task: str = "classification"
    # the pairs suite's tuples, rows of X_train or X_test: see TUPLE_KEYS
    tuples: dict = field(default_factory=dict)

    @property
    def n_classes(self):
        if self.task == "regression":
            return None
        return int(np.unique(self.y_train).size)

    def tuple_points(self, kind, part="train"):
        """The ``kind`` tuples of ``part`` as points and their labels (or None).

        ``kind`` is ``"pairs"``, ``"triplets"`` or ``"quadruplets"``; the
        points have shape ``(n_tuples, 2|3|4, n_features)``; pairs carry
        labels +1 (same class) or -1, the others None.
        """
        X = self.X_train if part == "train" else self.X_test
        rows = self.tuples[f"{kind}_{part}"]
        labels = self.tuples.get(f"pair_labels_{part}") if kind == "pairs" else None
        return X[rows], labels


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
    pixel_max=1.0,
):
    """MNIST as in the LMNN paper: deskew, PCA to 164, 60,000/10,000 split.

    ``name="fashion-mnist"`` applies the same protocol, without deskewing, to
    Fashion-MNIST. ``subsample`` draws a stratified subset of the training
    images (the PCA is still the one fitted on all 60,000), ``test_subsample``
    one of the test images; both use ``seed``. ``pixel_max`` is the value of
    a white pixel: 1 for pixels scaled to [0, 1] (the default), 255 for pixels
    left in 0..255. Deskewing and PCA are linear in the pixel values, so this
    multiplies the projected arrays by ``pixel_max`` exactly.
    """
    if not (np.isfinite(pixel_max) and pixel_max > 0):
        raise ValueError(f"pixel_max={pixel_max!r} must be a positive finite number.")
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
    pixels = "pixels/255" if pixel_max == 1 else f"pixels*{pixel_max:g}/255"
    return Split(
        name,
        np.ascontiguousarray(Z_train, dtype=np.float64) * pixel_max,
        y_train.astype(np.intp),
        np.ascontiguousarray(Z_test, dtype=np.float64) * pixel_max,
        y_test.astype(np.intp),
        {
            "preprocessing": f"{pixels}, {steps}PCA {n_components} fit on 60000",
            "pixel_max": pixel_max,
            "subsample": subsample,
            "test_subsample": test_subsample,
            "seed": seed,
        },
    )


# the pairs suite's tuples, each drawn from the labels of the training part
# (``*_train``) and of the test part (``*_test``), as row indices of that part
TUPLE_KINDS = ("pairs", "triplets", "quadruplets")
TUPLE_KEYS = tuple(
    f"{key}_{part}"
    for part in ("train", "test")
    for key in ("pairs", "pair_labels", "triplets", "quadruplets")
)


def _same_and_other(y, anchors, rng):
    """For each anchor row, a random other row of its class and one of another class.

    Every anchor's class must have two rows and not hold every row.
    """
    order = np.argsort(y, kind="stable")
    classes, starts, sizes = np.unique(y[order], return_index=True, return_counts=True)
    position = np.empty(y.size, dtype=np.intp)
    position[order] = np.arange(y.size)
    code = np.searchsorted(classes, y[anchors])
    start, size = starts[code], sizes[code]
    # a uniform row of the class other than the anchor: skip the anchor's slot
    same = rng.integers(0, size - 1)
    same += same >= position[anchors] - start
    # a uniform row outside the class: skip the class's block
    other = rng.integers(0, y.size - size)
    other += np.where(other >= start, size, 0)
    return order[start + same], order[other]


def sample_tuples(y, n_tuples, rng):
    """Pairs, triplets and quadruplets drawn from labels ``y``, as row indices.

    ``n_tuples`` similar pairs (both rows of one class) and as many
    dissimilar ones (labels +1 and -1), ``n_tuples`` triplets ``(a, b, c)``
    with ``b`` of ``a``'s class and ``c`` of another (``d(a, b) < d(a, c)``
    wanted) and ``n_tuples`` quadruplets ``(a, b, c, d)`` made of a similar
    and a dissimilar pair (``d(a, b) < d(c, d)`` wanted). Anchors are drawn
    uniformly among the rows whose class has another row; partners uniformly
    in their class (the anchor excluded) or outside it.

    >>> out = sample_tuples(np.array([0, 0, 1, 1, 1]), 4, np.random.default_rng(0))
    >>> out["pairs"].shape, out["pair_labels"].tolist()
    ((8, 2), [1, 1, 1, 1, -1, -1, -1, -1])
    """
    y = np.asarray(y)
    _, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
    if counts.size < 2:
        raise ValueError("tuples need labels of at least two classes.")
    candidates = np.flatnonzero(counts[codes] >= 2)
    if candidates.size == 0:
        raise ValueError("tuples need a class with at least two rows.")

    def anchors():
        return candidates[rng.integers(0, candidates.size, n_tuples)]

    first = anchors()
    same, _ = _same_and_other(y, first, rng)
    second = anchors()
    _, other = _same_and_other(y, second, rng)
    pairs = np.concatenate([np.stack([first, same], 1), np.stack([second, other], 1)])
    labels = np.repeat(np.array([1, -1]), n_tuples)
    a = anchors()
    b, c = _same_and_other(y, a, rng)
    triplets = np.stack([a, b, c], 1)
    a = anchors()
    b, _ = _same_and_other(y, a, rng)
    c2 = anchors()
    _, d = _same_and_other(y, c2, rng)
    quadruplets = np.stack([a, b, c2, d], 1)
    return {
        "pairs": pairs.astype(np.intp),
        "pair_labels": labels,
        "triplets": triplets.astype(np.intp),
        "quadruplets": quadruplets.astype(np.intp),
    }


def default_n_tuples(n_classes):
    """Tuples of each kind by default: 20 * n_classes ** 2.

    metric-learn's ``*_Supervised`` learners draw that many constraints from
    labels by default.
    """
    return 20 * n_classes**2


def load_embedded_tuples(name, seed=0, *, n_tuples=None, test_size=0.3):
    """An embedded data set's split (:func:`load_embedded`) with tuples of both parts.

    The tuples (:func:`sample_tuples`, ``n_tuples`` of each kind, by default
    :func:`default_n_tuples`) of the training part are what the learners
    fit; those of the test part, drawn the same way, are held out for
    scoring. Both are drawn with ``seed``.
    """
    split = load_embedded(name, seed=seed, test_size=test_size)
    n = default_n_tuples(split.n_classes) if n_tuples is None else int(n_tuples)
    if n < 1:
        raise ValueError(f"n_tuples={n} must be at least 1.")
    rng = np.random.default_rng(seed)
    tuples = {}
    for part, y in (("train", split.y_train), ("test", split.y_test)):
        for key, value in sample_tuples(y, n, rng).items():
            tuples[f"{key}_{part}"] = value
    split.task = "pairs"
    split.tuples = tuples
    split.info.update(
        tuples=f"{n} similar + {n} dissimilar pairs, {n} triplets, "
        f"{n} quadruplets per part, drawn from the labels with seed {seed}",
        n_tuples=n,
    )
    return split


REGRESSION_DATASETS = ("diabetes", "friedman1")


def _regression_arrays(name):
    """Features and real targets: scikit-learn's diabetes, or make_friedman1."""
    from sklearn import datasets

    if name == "diabetes":
        X, y = datasets.load_diabetes(return_X_y=True)
    elif name == "friedman1":
        # five informative features and five noise features
        X, y = datasets.make_friedman1(
            n_samples=1000, n_features=10, noise=1.0, random_state=0
        )
    else:
        raise ValueError(
            f"dataset={name!r} is not a regression data set; choose from "
            f"{', '.join(REGRESSION_DATASETS)}."
        )
    return X.astype(np.float64), y.astype(np.float64)


def load_regression(name, seed=0, test_size=0.3):
    """A regression data set, split 70/30 with ``seed``, features standardised.

    ``friedman1`` is ``make_friedman1(n_samples=1000, n_features=10,
    noise=1.0, random_state=0)`` (the data is fixed; ``seed`` draws the
    split). The standardisation of the features is fitted on the training
    part; the targets keep their units.
    """
    from sklearn.model_selection import train_test_split

    X, y = _regression_arrays(name)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, random_state=seed
    )
    info = {"split": f"random {1 - test_size:.0%}/{test_size:.0%}", "seed": seed}
    split = _standardised_split(name, X_train, y_train, X_test, y_test, info)
    split.task = "regression"
    return split
