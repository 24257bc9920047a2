"""
Clustering digits in a learned space
====================================

Clustering uses no labels, but it is only as good as the distance it
groups by. Here a metric is learned on a labelled half of the digits and
new digits (the other half) are clustered in the learned space with KMeans
and with agglomerative clustering (Ward linkage). The agreement of the
clusters with the true digits is measured by the normalised mutual
information (NMI) and the adjusted Rand index (ARI); 1 is perfect agreement
and 0 is chance.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.cluster import AgglomerativeClustering, KMeans
from sklearn.datasets import load_digits
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from linmetric import LMNN, NCA

X, y = load_digits(return_X_y=True)
X_labelled, X_new, y_labelled, y_new = train_test_split(
    X, y, test_size=0.5, stratify=y, random_state=0
)

spaces = {
    "Euclidean": make_pipeline(StandardScaler()),
    "LMNN": make_pipeline(StandardScaler(), LMNN(n_neighbors=3, random_state=0)),
    "NCA": make_pipeline(StandardScaler(), NCA(random_state=0)),
}
clusterers = {
    "KMeans": lambda: KMeans(n_clusters=10, n_init=3, random_state=0),
    "agglomerative (Ward)": lambda: AgglomerativeClustering(n_clusters=10),
}

scores = {}
for space, pipeline in spaces.items():
    Z = pipeline.fit(X_labelled, y_labelled).transform(X_new)
    for method, make in clusterers.items():
        clusters = make().fit_predict(Z)
        scores[space, method] = (
            normalized_mutual_info_score(y_new, clusters),
            adjusted_rand_score(y_new, clusters),
        )
        print(
            f"{space:>9} {method:>20}: NMI {scores[space, method][0]:.3f}, "
            f"ARI {scores[space, method][1]:.3f}"
        )

# %%
# The scores before (Euclidean) and after each learned metric.

fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
width = 0.8 / len(spaces)
positions = np.arange(len(clusterers))
for column, (ax, measure) in enumerate(zip(axes, ["NMI", "ARI"], strict=True)):
    for offset, space in enumerate(spaces):
        values = [scores[space, method][column] for method in clusterers]
        bars = ax.bar(positions + (offset - 1) * width, values, width, label=space)
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xticks(positions, list(clusterers))
    ax.set_title(measure)
    ax.set_ylim(0, 1.05)
axes[0].set_ylabel("agreement with the true digits")
axes[0].legend(loc="lower left", fontsize=9)
fig.tight_layout()
plt.show()

# %%
# The metrics were learned on other digits than those clustered: they carry
# what "the same digit" means over to new data, and both clustering methods
# find groups that agree much better with the digits.
