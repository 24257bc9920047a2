"""
Image retrieval on handwritten digits
=====================================

Retrieval is nearest-neighbour search without the vote: given a query
image, return the most similar images of a collection. Its quality is
*precision@k*, the fraction of the ``k`` images returned that show the
query's digit. A learned metric raises it.

This example uses scikit-learn's 8x8 digits, which ship with scikit-learn,
so it runs anywhere in seconds. MNIST works the same way with
:func:`linmetric.datasets.load_mnist` (60,000 training images of 28x28
pixels, downloaded once and cached).
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from linmetric import LMNN

X, y = load_digits(return_X_y=True)
images = X.reshape(-1, 8, 8)
index = np.arange(len(y))
train, test = train_test_split(index, test_size=0.3, stratify=y, random_state=0)

scale = StandardScaler().fit(X[train])
metric = make_pipeline(StandardScaler(), LMNN(n_neighbors=3, random_state=0))
metric.fit(X[train], y[train])
spaces = {"Euclidean": scale.transform, "LMNN": metric.transform}

# %%
# The 10 nearest training images of every test image, in each space.

k_max = 10
retrieved = {}
for name, transform in spaces.items():
    search = NearestNeighbors(n_neighbors=k_max).fit(transform(X[train]))
    _, neighbours = search.kneighbors(transform(X[test]))
    retrieved[name] = train[neighbours]

# %%
# Six hard queries (the ones the Euclidean search gets most wrong) and
# their five nearest images before and after. A red frame marks a wrong
# digit.

wrong = (y[retrieved["Euclidean"][:, :5]] != y[test][:, None]).sum(axis=1)
queries = np.argsort(-wrong, kind="stable")[:6]

fig, axes = plt.subplots(len(queries), 13, figsize=(11.5, 6.2))
for row, q in enumerate(queries):
    panels = [
        test[q],
        None,
        *retrieved["Euclidean"][q, :5],
        None,
        *retrieved["LMNN"][q, :5],
    ]
    for column, item in enumerate(panels):
        ax = axes[row, column]
        ax.set_xticks([])
        ax.set_yticks([])
        if item is None:
            ax.axis("off")
            continue
        ax.imshow(images[item], cmap="gray_r")
        if column >= 2:
            color = "tab:green" if y[item] == y[test[q]] else "tab:red"
            for spine in ax.spines.values():
                spine.set_color(color)
                spine.set_linewidth(2)
axes[0, 0].set_title("query", fontsize=10)
axes[0, 4].set_title("Euclidean: 5 nearest", fontsize=10)
axes[0, 10].set_title("LMNN: 5 nearest", fontsize=10)
fig.tight_layout()
plt.show()

# %%
# Precision@k over all test queries.

fig, ax = plt.subplots(figsize=(5.5, 3.8))
ks = np.arange(1, k_max + 1)
for name, found in retrieved.items():
    hits = y[found] == y[test][:, None]
    precision = np.cumsum(hits, axis=1).mean(axis=0) / ks
    ax.plot(ks, precision, marker="o", label=name)
    print(
        f"{name}: precision@1 = {precision[0]:.3f}, precision@10 = {precision[-1]:.3f}"
    )
ax.set_xlabel("k")
ax.set_ylabel("precision@k")
ax.set_xticks(ks)
ax.legend()
ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()
