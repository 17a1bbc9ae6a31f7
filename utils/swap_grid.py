"""The swap grid picture: rows are ID sources, columns are domain sources.

Cell (r, c) shows Dec(c_r, s_c); the first row holds the domain sources and
the first column the ID sources, so each swap sits between its two parents.
"""
import numpy as np
from PIL import Image

_GAP = 2
_MARGIN_GAP = 6
_BACKGROUND = (255, 255, 255)


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
        return 0 if index == 0 else size + _MARGIN_GAP + (index - 1) * (size + _GAP)

    canvas = Image.new("RGB", (offset(cols + 1, width) - _GAP, offset(rows + 1, height) - _GAP),
                       _BACKGROUND)
    for col in range(cols):
        canvas.paste(tile(domain_images[col]), (offset(col + 1, width), 0))
    for row in range(rows):
        top = offset(row + 1, height)
        canvas.paste(tile(id_images[row]), (0, top))
        for col in range(cols):
            canvas.paste(tile(swaps[row, col]), (offset(col + 1, width), top))
    return canvas
