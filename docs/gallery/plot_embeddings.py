"""
Two-dimensional embeddings of the digits
========================================

With ``n_components=2`` a learner's map ``L`` has two rows, so ``L x`` is a
picture of the data. Supervised learners place the classes apart; an
unsupervised one (whitening) shows the leading directions of variance. The
loop takes every learner in ``linmetric.__all__`` that accepts
``n_components`` and learns from class labels, so a newly added learner
appears here by itself; the others (a full-rank metric, or MLKR, which
learns from real-valued targets) are listed in the output.

The maps are learned on 600 training digits and the figure shows 600 other
digits, so it displays how the embedding generalises. The number above each
panel is the 3-NN accuracy of those digits in the 2-D embedding. Each panel
frames 98% of the digits along each axis, so a few outliers may lie outside.
"""

import inspect
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

import linmetric

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, train_size=600, test_size=600, stratify=y, random_state=0
)
scaler = StandardScaler().fit(X_train)
X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)

NOT_FROM_CLASSES = {"MLKR": "learns from real-valued targets"}

embeddings = {}
for name in linmetric.__all__:
    cls = getattr(linmetric, name)
    if (
        not isinstance(cls, type)
        or not issubclass(cls, linmetric.MetricLearner)
        or cls is linmetric.MetricLearner
    ):
        continue
    params = inspect.signature(cls).parameters
    if "n_components" not in params:
        print(f"{name}: skipped (no n_components: it learns a full-rank metric)")
        continue
    if name in NOT_FROM_CLASSES:
        print(f"{name}: skipped ({NOT_FROM_CLASSES[name]})")
        continue
    kwargs = {"n_components": 2}
    if "random_state" in params:
        kwargs["random_state"] = 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            learner = cls(**kwargs).fit(X_train, y_train)
    except Exception as exc:  # a learner that needs more than labels
        print(f"{name}: skipped ({type(exc).__name__}: {exc})")
        continue
    embeddings[name] = (learner.transform(X_train), learner.transform(X_test))

n = len(embeddings)
columns = min(n, 3)
rows = -(-n // columns)
fig, axes = plt.subplots(
    rows, columns, figsize=(4.3 * columns, 4.3 * rows), squeeze=False
)
cmap = plt.get_cmap("tab10")
for ax, (name, (Z_train, Z_test)) in zip(axes.flat, embeddings.items(), strict=False):
    accuracy = KNeighborsClassifier(3).fit(Z_train, y_train).score(Z_test, y_test)
    for digit in range(10):
        chosen = y_test == digit
        ax.scatter(*Z_test[chosen].T, s=6, color=cmap(digit), alpha=0.7)
        center = np.median(Z_test[chosen], axis=0)
        ax.text(
            *center,
            str(digit),
            fontsize=13,
            weight="bold",
            ha="center",
            va="center",
            color=cmap(digit),
            bbox={"facecolor": "white", "alpha": 0.7, "lw": 0, "pad": 1},
        )
    # frame the bulk of the digits: a few outliers would shrink the rest
    low, high = np.quantile(Z_test, [0.01, 0.99], axis=0)
    pad = 0.1 * (high - low)
    ax.set_xlim(low[0] - pad[0], high[0] + pad[0])
    ax.set_ylim(low[1] - pad[1], high[1] + pad[1])
    ax.set_title(f"{name}: 3-NN accuracy {accuracy:.2f}", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
for ax in axes.flat[n:]:
    ax.axis("off")
fig.tight_layout()
plt.show()
