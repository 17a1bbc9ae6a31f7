"""Every picture this project draws: rank lists, swap grids, the CMC curve and t-SNE feature maps.

Drawing only (PIL, matplotlib): callers pass images already read (or None
for an unreadable file), tensors in [0, 1] and numbers; nothing here knows
about models or datasets. Which images a picture shows is the engine's
choice (engine/visualization.py).
"""
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from .file_faults import reported_write_faults

# -----------------------------------------------------------------------------
# Rank lists: the query, then its top gallery images framed green or red.
# Layout, left to right: a margin, the query's cell, a wider gap, the gallery
# cells separated by GAP. A cell is the tile (image fitted inside, aspect kept,
# on a grey background) framed by a BORDER-pixel border. Above the cells a
# header line of text, below each cell a caption line.
# -----------------------------------------------------------------------------
MATCH_COLOUR = (0, 170, 0)
WRONG_COLOUR = (220, 0, 0)
QUERY_COLOUR = (40, 90, 220)
BACKGROUND = (255, 255, 255)
TILE_BACKGROUND = (200, 200, 200)
TEXT_COLOUR = (0, 0, 0)

BORDER = 4
GAP = 6
QUERY_GAP = 3 * GAP
HEADER = 24
CAPTION = 18
FONT_SIZE = 12


def cell_origins(num_gallery, tile_size):
    """Top-left corners (x, y) of the query's cell, then of each gallery cell."""
    cell_width = tile_size[0] + 2 * BORDER
    x = GAP + cell_width + QUERY_GAP
    return [(GAP, HEADER)] + [(x + i * (cell_width + GAP), HEADER) for i in range(num_gallery)]


def canvas_size(num_gallery, tile_size):
    """(width, height) of the picture of a query and ``num_gallery`` gallery images."""
    cell_width, cell_height = tile_size[0] + 2 * BORDER, tile_size[1] + 2 * BORDER
    width = GAP + cell_width + QUERY_GAP + num_gallery * (cell_width + GAP)
    return width, HEADER + cell_height + CAPTION


def _font():
    try:
        return ImageFont.load_default(size=FONT_SIZE)
    except (OSError, ImportError):
        # Without FreeType PIL only has its fixed bitmap font.
        return ImageFont.load_default()


def _draw_cell(canvas, draw, origin, tile_size, image, colour):
    x, y = origin
    width, height = tile_size
    draw.rectangle((x, y, x + width + 2 * BORDER - 1, y + height + 2 * BORDER - 1), fill=colour)
    draw.rectangle((x + BORDER, y + BORDER, x + BORDER + width - 1, y + BORDER + height - 1), fill=TILE_BACKGROUND)
    if image is None:
        draw.line((x + BORDER, y + BORDER, x + BORDER + width - 1, y + BORDER + height - 1), fill=TEXT_COLOUR)
        return
    fitted = ImageOps.contain(image.convert("RGB"), tile_size, Image.BILINEAR)
    canvas.paste(fitted, (x + BORDER + (width - fitted.width) // 2, y + BORDER + (height - fitted.height) // 2))


def draw_ranking(query, gallery, matches, header, captions=None, tile_size=(128, 128)):
    """The picture (PIL RGB, of canvas_size(len(gallery), tile_size)) of one query's ranked list.

    ``query`` and each of ``gallery`` is a PIL image or None (drawn as a
    crossed-out tile); ``matches[i]`` True frames gallery[i] in MATCH_COLOUR,
    False in WRONG_COLOUR. ``header`` is the line of text above, ``captions``
    one line under each cell, query first (len(gallery) + 1 of them).
    """
    if len(matches) != len(gallery):
        raise ValueError(f"{len(gallery)} gallery images but {len(matches)} match flags")
    if captions is not None and len(captions) != len(gallery) + 1:
        raise ValueError(f"need {len(gallery) + 1} captions (query first), got {len(captions)}")
    canvas = Image.new("RGB", canvas_size(len(gallery), tile_size), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = _font()
    origins = cell_origins(len(gallery), tile_size)
    colours = [QUERY_COLOUR] + [MATCH_COLOUR if match else WRONG_COLOUR for match in matches]
    for origin, image, colour in zip(origins, [query, *gallery], colours):
        _draw_cell(canvas, draw, origin, tile_size, image, colour)
    draw.text((GAP, (HEADER - FONT_SIZE) // 2), header, fill=TEXT_COLOUR, font=font)
    caption_y = HEADER + tile_size[1] + 2 * BORDER + (CAPTION - FONT_SIZE) // 2
    for (x, _), caption in zip(origins, captions or []):
        draw.text((x, caption_y), caption, fill=TEXT_COLOUR, font=font)
    return canvas


# -----------------------------------------------------------------------------
# Swap grids: rows are ID sources, columns are domain sources. Cell (r, c)
# shows Dec(c_r, s_c); the first row holds the domain sources and the first
# column the ID sources, so each swap sits between its two parents.
# -----------------------------------------------------------------------------
_SWAP_GAP = 2
_SWAP_MARGIN_GAP = 6


def to_pil(image):
    """A 3 x H x W tensor in [0, 1] -> an RGB PIL image (0..255)."""
    array = image.detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(np.ascontiguousarray(array))


def draw_swap_grid(id_images, domain_images, swaps, min_tile=1):
    """id_images N x 3 x H x W, domain_images M x 3 x H x W, swaps N x M x 3 x H x W, all in [0, 1].

    Returns a PIL image of (N + 1) x (M + 1) cells with a blank top-left cell
    and a wider gap after the margins. Images whose longer side is below
    ``min_tile`` pixels are enlarged by a whole factor (nearest pixel, so
    nothing is smoothed that the generator did not smooth).
    """
    rows, cols = len(id_images), len(domain_images)
    if swaps.shape[:2] != (rows, cols):
        raise ValueError(f"swaps has shape {tuple(swaps.shape[:2])}, expected ({rows}, {cols})")
    height, width = id_images.shape[-2:]
    factor = max(1, -(-min_tile // max(height, width)))
    height, width = height * factor, width * factor

    def tile(image):
        picture = to_pil(image)
        return picture if factor == 1 else picture.resize((width, height), Image.NEAREST)

    def offset(index, size):
        return 0 if index == 0 else size + _SWAP_MARGIN_GAP + (index - 1) * (size + _SWAP_GAP)

    canvas = Image.new("RGB", (offset(cols + 1, width) - _SWAP_GAP, offset(rows + 1, height) - _SWAP_GAP),
                       BACKGROUND)
    for col in range(cols):
        canvas.paste(tile(domain_images[col]), (offset(col + 1, width), 0))
    for row in range(rows):
        top = offset(row + 1, height)
        canvas.paste(tile(id_images[row]), (0, top))
        for col in range(cols):
            canvas.paste(tile(swaps[row, col]), (offset(col + 1, width), top))
    return canvas


# -----------------------------------------------------------------------------
# matplotlib pictures: the CMC curve and feature maps
# -----------------------------------------------------------------------------
def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path):
    """Write ``fig`` to ``path`` (a write fault names the file) and release it."""
    try:
        with reported_write_faults(path):
            fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def plot_cmc(output_dir, metrics, label=""):
    """Save the CMC curve beside metrics.json as cmc.png."""
    plt = _pyplot()
    cmc = [100.0 * v for v in metrics["cmc"]]
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    ax.plot(range(1, len(cmc) + 1), cmc, marker=".", label=label or None)
    ax.set_xlabel("rank")
    ax.set_ylabel("matching rate (%)")
    ax.set_title(f"CMC (mAP {100.0 * metrics['mAP']:.1f}%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    if label:
        ax.legend(loc="lower right")
    return _save(plt, fig, os.path.join(output_dir, "cmc.png"))


# Feature maps: a 2-D t-SNE map of re-ID features, drawn twice: coloured by domain, and by identity.
# Colours of the domains, then of the highlighted identities (matplotlib's tab10 and tab20 orders).
DOMAIN_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
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
    plt = _pyplot()
    domains = np.asarray(domains)
    colour_of = {identity: rank for rank, identity in enumerate(highlighted)}
    rank = np.array([colour_of.get(identity, -1) for identity in identities])
    fig, (by_domain, by_identity) = plt.subplots(1, 2, figsize=(13, 6.2), dpi=100)
    for index, name in enumerate(domain_names):
        mine = domains == index
        marker = _MARKERS[index % len(_MARKERS)]
        by_domain.scatter(points[mine, 0], points[mine, 1], s=9, alpha=0.7, marker=marker,
                          color=DOMAIN_COLOURS[index % len(DOMAIN_COLOURS)], label=f"{name} ({int(mine.sum())})")
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
    return _save(plt, fig, path)
