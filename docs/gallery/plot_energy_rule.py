"""
The energy-based classification rule
====================================

Besides the kNN vote, the LMNN paper classifies a test point by its loss:
:class:`linmetric.EnergyClassifier` gives a point the label under which it
would add the least to LMNN's loss, counting its pull to its would-be
target neighbours, the impostors inside its own margin, and the margins of
training points it would invade.

Left: the 3-NN decision regions under the learned metric. Middle: the
regions of the energy rule, with the same metric. Right: the energy of each
label for the three marked test points (lower is better).
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.neighbors import KNeighborsClassifier

from linmetric import LMNN, EnergyClassifier

rng = np.random.default_rng(4)
n_per_class = 30
y = np.repeat(np.arange(3), n_per_class)
centers = np.array([[0.0, 0.0], [2.2, 0.4], [1.0, 2.0]])
X = centers[y] + rng.normal(0.0, 0.75, size=(y.size, 2))

lmnn = LMNN(n_neighbors=3, random_state=0).fit(X, y)
energy = EnergyClassifier(lmnn).fit(X, y)
knn = KNeighborsClassifier(3).fit(lmnn.transform(X), y)

span_x = np.linspace(X[:, 0].min() - 0.5, X[:, 0].max() + 0.5, 120)
span_y = np.linspace(X[:, 1].min() - 0.5, X[:, 1].max() + 0.5, 120)
grid = np.column_stack([a.ravel() for a in np.meshgrid(span_x, span_y)])
shape = (span_y.size, span_x.size)
regions = {
    "3-NN vote, learned metric": knn.predict(lmnn.transform(grid)).reshape(shape),
    "energy rule, learned metric": energy.predict(grid).reshape(shape),
}
probes = np.array([[1.1, 0.6], [1.6, 1.2], [0.4, 1.0]])

colors = np.array(["tab:blue", "tab:orange", "tab:green"])
fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
for ax, (name, labels) in zip(axes, regions.items(), strict=False):
    ax.contourf(
        span_x, span_y, labels, levels=[-0.5, 0.5, 1.5, 2.5], colors=colors, alpha=0.25
    )
    ax.scatter(X[:, 0], X[:, 1], c=colors[y], s=12)
    for number, probe in enumerate(probes, start=1):
        ax.scatter(*probe, marker="*", s=160, color="k")
        ax.annotate(str(number), probe, xytext=(5, 5), textcoords="offset points")
    ax.set_title(name, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
changed = np.mean(
    regions["3-NN vote, learned metric"] != regions["energy rule, learned metric"]
)
print(f"the two rules disagree on {changed:.1%} of the plane")

ax = axes[2]
values = energy.energies(probes)
width = 0.25
for label in range(3):
    ax.bar(
        np.arange(3) + (label - 1) * width,
        values[:, label],
        width,
        color=colors[label],
        label=f"label {label}",
    )
ax.set_xticks(np.arange(3), [f"point {i}" for i in range(1, 4)])
ax.set_ylabel("energy E(t, c)")
ax.legend(fontsize=9)
ax.set_title("energy of each label", fontsize=10)
fig.tight_layout()
plt.show()

# %%
# Far from the other classes both rules agree. Near the boundaries the
# energy rule also weighs the margins of the training points a new point
# would invade, which moves the boundaries away from points with tight
# neighbourhoods; the label with the lowest bar wins.
