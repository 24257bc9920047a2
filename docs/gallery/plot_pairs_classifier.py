"""
Learning from pairs: PairsClassifier, ROC curves and a calibrated threshold
===========================================================================

Weak supervision gives pairs of points marked *similar* (+1) or
*dissimilar* (-1) instead of class labels: "these two faces are the same
person", "these two documents are duplicates". :class:`linmetric.PairsClassifier`
wraps a learner that learns from pairs (here ITML, MMC and KISSME) into a
scikit-learn classifier whose samples are the pairs themselves: it scores a
pair by its negated learned distance and calls it similar when the score
is above a threshold.

The pairs are drawn from the digits: two images are similar when they show
the same digit. The learners see only the pairs, never a digit's label.
Left: the ROC curves of the held-out pairs, before (Euclidean distance) and
after learning, with each classifier's calibrated threshold marked on its
curve. Right: the distances of the held-out pairs, similar and dissimilar,
before and after ITML, with its threshold.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from linmetric import ITML, KISSME, MMC, PairsClassifier

rng = np.random.default_rng(0)
X, digit = load_digits(return_X_y=True)
X_fit, X_held, digit_fit, digit_held = train_test_split(
    X, digit, test_size=0.5, stratify=digit, random_state=0
)
# 30 principal directions keep the example quick; the scaling and the PCA
# are fitted on the first half of the images only
reduce = make_pipeline(StandardScaler(), PCA(30, random_state=0)).fit(X_fit)
X_fit, X_held = reduce.transform(X_fit), reduce.transform(X_held)


def draw_pairs(points, labels, n_pairs):
    """Half similar, half dissimilar pairs, as points of shape (n, 2, d)."""
    first = rng.integers(0, len(points), 20 * n_pairs)
    second = rng.integers(0, len(points), 20 * n_pairs)
    same = labels[first] == labels[second]
    distinct = first != second
    similar = np.flatnonzero(same & distinct)[: n_pairs // 2]
    dissimilar = np.flatnonzero(~same)[: n_pairs - n_pairs // 2]
    chosen = rng.permutation(np.concatenate([similar, dissimilar]))
    pairs = np.stack([points[first[chosen]], points[second[chosen]]], axis=1)
    pair_labels = np.where(same[chosen], 1, -1)
    return pairs, pair_labels


# training pairs from the first half of the images; calibration and test
# pairs from the other half, so that no image is shared
train_pairs, train_labels = draw_pairs(X_fit, digit_fit, 1000)
held_pairs, held_labels = draw_pairs(X_held, digit_held, 2000)
calibration = slice(0, 1000)
test = slice(1000, 2000)

# %%
# Fit each learner on the training pairs; set the threshold on the
# calibration pairs (the most accurate cut) and score the test pairs.

learners = {
    "ITML": ITML(random_state=0),
    "MMC": MMC(random_state=0),
    "KISSME": KISSME(),
}
classifiers = {}
for name, learner in learners.items():
    classifier = PairsClassifier(learner, threshold=None)
    classifier.fit(train_pairs, train_labels)
    classifier.calibrate_threshold(
        held_pairs[calibration], held_labels[calibration], strategy="accuracy"
    )
    accuracy = classifier.score(held_pairs[test], held_labels[test])
    print(
        f"{name:>7}: threshold {classifier.threshold_:.3g}, "
        f"test accuracy {accuracy:.3f}"
    )
    classifiers[name] = classifier

euclidean_scores = -np.linalg.norm(held_pairs[:, 0] - held_pairs[:, 1], axis=1)

# %%
# ROC curves of the test pairs and the distances before and after.

fig, (roc_ax, before_ax, after_ax) = plt.subplots(1, 3, figsize=(14, 4.4))
y_test = held_labels[test]
fpr, tpr, _ = roc_curve(y_test, euclidean_scores[test])
auc = roc_auc_score(y_test, euclidean_scores[test])
roc_ax.plot(fpr, tpr, color="0.4", ls="--", label=f"Euclidean (AUC {auc:.3f})")
for (name, classifier), color in zip(
    classifiers.items(), ["tab:blue", "tab:orange", "tab:green"], strict=True
):
    scores = classifier.decision_function(held_pairs[test])
    fpr, tpr, _ = roc_curve(y_test, scores)
    auc = roc_auc_score(y_test, scores)
    roc_ax.plot(fpr, tpr, color=color, label=f"{name} (AUC {auc:.3f})")
    predicted = classifier.predict(held_pairs[test])  # at the threshold
    point_fpr = np.mean(predicted[y_test < 0] > 0)
    point_tpr = np.mean(predicted[y_test > 0] > 0)
    roc_ax.plot(point_fpr, point_tpr, "o", color=color, ms=8, mec="k")
roc_ax.plot([], [], "o", color="w", mec="k", label="calibrated threshold")
roc_ax.set_xlabel("false positive rate (dissimilar called similar)")
roc_ax.set_ylabel("true positive rate (similar called similar)")
roc_ax.set_title("ROC of the test pairs", fontsize=10)
roc_ax.legend(loc="lower right", fontsize=8)
roc_ax.grid(alpha=0.3)

itml = classifiers["ITML"]
for ax, distances, title, threshold in [
    (before_ax, -euclidean_scores[test], "Euclidean distance", None),
    (
        after_ax,
        -itml.decision_function(held_pairs[test]),
        "ITML distance",
        -itml.threshold_,
    ),
]:
    bins = np.linspace(0, np.quantile(distances, 0.97), 40)
    ax.hist(distances[y_test > 0], bins, alpha=0.6, color="tab:green", label="similar")
    ax.hist(distances[y_test < 0], bins, alpha=0.6, color="tab:red", label="dissimilar")
    if threshold is not None:
        ax.axvline(threshold, color="k", lw=1.5, label="threshold")
    ax.set_xlabel(title)
    ax.set_ylabel("test pairs")
    ax.set_title(f"{title} of the test pairs", fontsize=10)
    ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %%
# Before learning, similar and dissimilar pairs of digits overlap at every
# distance; after, the similar pairs gather at small distances, and a
# single threshold separates most of them. Because the samples of a
# :class:`~linmetric.PairsClassifier` are pairs, ``cross_val_score`` and
# ``GridSearchCV`` split, fit and score pairs; grid over the learner's
# parameters as ``learner__<name>``.
