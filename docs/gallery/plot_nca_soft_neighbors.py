"""
NCA's soft neighbourhoods
=========================

NCA replaces the hard choice of a nearest neighbour by a random one: point
``i`` picks ``j`` with probability ``p_ij``, a softmax of ``-||L x_i - L x_j||^2``.
It is classified correctly with probability ``p_i``, the sum of ``p_ij``
over its own class, and NCA maximises the sum of the ``p_i``.

The panels draw, for one query point (black ring), every other point with
an area proportional to ``p_ij``, before (the Euclidean distance) and after
NCA. The probabilities are computed with the package's NumPy reference,
``linmetric.reference.nca.soft_neighbors``, the code the tests hold the
fast implementation to.
"""

import matplotlib.pyplot as plt
import numpy as np

from linmetric import NCA
from linmetric.reference.nca import soft_neighbors

rng = np.random.default_rng(2)
n_per_class = 30
y = np.repeat(np.arange(3), n_per_class)
angles = rng.uniform(0, 2 * np.pi, size=y.size)
X = np.column_stack(
    [
        1.5 * np.cos(angles) + rng.normal(0, 0.2, y.size),
        0.6 * y + 0.25 * np.sin(angles) + rng.normal(0, 0.1, y.size),
    ]
)

nca = NCA(random_state=0).fit(X, y)
maps = {"Euclidean": np.eye(2), "NCA": nca.components_}
query = 10

colors = np.array(["tab:blue", "tab:orange", "tab:green"])
fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
for ax, (name, L) in zip(axes, maps.items(), strict=False):
    p = soft_neighbors(L, X)
    Z = X @ L.T
    correct = p[query, y == y[query]].sum()
    ax.scatter(Z[:, 0], Z[:, 1], s=2, c=colors[y], alpha=0.5)
    ax.scatter(Z[:, 0], Z[:, 1], s=800 * p[query], c=colors[y], alpha=0.6)
    ax.scatter(*Z[query], s=120, facecolor="none", edgecolor="k", lw=2)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(f"{name}: p_i = {correct:.2f} for the ringed point", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])

# the probability of a correct classification for every point
ax = axes[2]
for name, L in maps.items():
    p = soft_neighbors(L, X)
    p_i = (p * (y[:, None] == y[None, :])).sum(axis=1)
    ax.hist(
        p_i,
        bins=np.linspace(0, 1, 21),
        alpha=0.6,
        label=f"{name}: sum = {p_i.sum():.1f} of {y.size}",
    )
ax.set_xlabel("p_i, probability of a correct soft-neighbour vote")
ax.set_ylabel("points")
ax.legend(loc="upper left", fontsize=9)
fig.tight_layout()
plt.show()

# %%
# Under the Euclidean distance the ringed point spreads its choice over
# points of all three classes. NCA rotates and rescales the plane so that
# the classes lie side by side: the ringed point's neighbourhood
# concentrates on a nearby point of its own class, and ``p_i`` is close to
# one for most points (the histogram), close to zero for the few that end
# up among another class.
