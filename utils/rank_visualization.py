"""One query's ranked list as a picture: the query, then its top gallery images framed green or red.

Pure PIL: the caller passes images already read (or None for an unreadable
file) and the match flags; nothing here knows about models or datasets.

Layout, left to right: a margin, the query's cell, a wider gap, the gallery
cells separated by GAP. A cell is the tile (image fitted inside, aspect kept,
on a grey background) framed by a BORDER-pixel border. Above the cells a
header line of text, below each cell a caption line.
"""
from PIL import Image, ImageDraw, ImageFont, ImageOps

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
