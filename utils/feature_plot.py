"""A 2-D t-SNE map of re-ID features, drawn twice: coloured by domain, and by identity."""
import os

import numpy as np

# Colours of the domains, then of the highlighted identities (matplotlib's tab10 and tab20 orders).
_DOMAIN_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
_OTHER_IDENTITIES = "#d0d0d0"
_MARKERS = ("o", "^", "s", "D", "v", "P", "X", "*")


def tsne_2d(features, seed=0):
    """N x 2 t-SNE coordinates of N x D features (scikit-learn; PCA initialisation, fixed seed)."""
    from sklearn.manifold import TSNE

    features = np.asarray(features, dtype=np.float32)
    perplexity = float(min(30.0, max(2.0, (len(features) - 1) / 3.0)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)


def save_feature_map(path, points, domains, identities, domain_names, highlighted, title):
    """A PNG at ``path``: left, every point coloured by its domain; right, the ``highlighted`` identities in colours
    and the others in grey; marker shape = domain in both.

    ``domains`` holds an index into ``domain_names`` per point, ``identities`` a hashable identity per point
    (e.g. (domain, pid): pids of different datasets are different vehicles).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    domains = np.asarray(domains)
    colour_of = {identity: rank for rank, identity in enumerate(highlighted)}
    rank = np.array([colour_of.get(identity, -1) for identity in identities])
    fig, (by_domain, by_identity) = plt.subplots(1, 2, figsize=(13, 6.2), dpi=100)
    for index, name in enumerate(domain_names):
        mine = domains == index
        marker = _MARKERS[index % len(_MARKERS)]
        by_domain.scatter(points[mine, 0], points[mine, 1], s=9, alpha=0.7, marker=marker,
                          color=_DOMAIN_COLOURS[index % len(_DOMAIN_COLOURS)], label=f"{name} ({int(mine.sum())})")
        others = mine & (rank < 0)
        by_identity.scatter(points[others, 0], points[others, 1], s=6, marker=marker, color=_OTHER_IDENTITIES)
    palette = plt.get_cmap("tab20")
    for colour in range(len(highlighted)):
        mine = rank == colour
        marker = _MARKERS[int(domains[mine][0]) % len(_MARKERS)]
        by_identity.scatter(points[mine, 0], points[mine, 1], s=28, marker=marker, color=palette(colour % 20),
                            edgecolors="black", linewidths=0.4)
    by_domain.set_title("coloured by domain (marker: domain)")
    by_domain.legend(loc="best", fontsize=8, markerscale=2)
    by_identity.set_title(f"{len(highlighted)} identities in colour, the others grey")
    for axis in (by_domain, by_identity):
        axis.set_xticks([])
        axis.set_yticks([])
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
