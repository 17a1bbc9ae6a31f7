"""Reading one image file, fast for large JPEGs and loud for broken ones.

Opri's images are 4K JPEGs that are resized to a few hundred pixels, so
decoding at full size dominates loading. PIL's draft mode lets the JPEG
decoder scale by 1/2, 1/4 or 1/8 while decoding; it is used when the source
is at least twice the target size, and the transforms resize the rest.

ImageFile.LOAD_TRUNCATED_IMAGES stays off: a truncated file is reported,
not silently padded with grey.

16-bit PNGs: PIL reduces 16-bit colour to 8 bits itself, but opens 16-bit
greyscale as mode I;16 (or I), whose convert("RGB") clips every value above
255 to white; those are scaled to 8 bits here.
"""
import numpy as np
from PIL import Image

from utils.errors import UserError

_SIXTEEN_BIT_GREY = ("I;16", "I;16B", "I;16L", "I;16N", "I")


class BadImageError(UserError):
    """An image file that cannot be decoded completely."""

    def __init__(self, path, reason):
        super().__init__(f"unreadable image {path}: {reason}")
        self.path = path


def _grey16_to_rgb(img):
    values = np.asarray(img).astype(np.int64).clip(0, 65535)
    return Image.fromarray(((values * 255 + 32767) // 65535).astype(np.uint8), "L").convert("RGB")


def decode_image(path, target_size=None, draft=True):
    """(RGB image, whether the file has 16 bits per channel); see read_image."""
    try:
        with Image.open(path) as img:
            sixteen_bit = img.mode in _SIXTEEN_BIT_GREY or any(";16" in str(tile[3]) for tile in img.tile)
            if draft and target_size is not None and img.format == "JPEG":
                height, width = target_size
                if img.width >= 2 * width and img.height >= 2 * height:
                    img.draft("RGB", (width, height))
            img.load()
            if img.mode in _SIXTEEN_BIT_GREY:
                return _grey16_to_rgb(img), True
            return img.convert("RGB"), sixteen_bit
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise BadImageError(path, err) from None


def read_image(path, target_size=None, draft=True):
    """The image at ``path`` as a fully loaded RGB PIL image.

    ``target_size`` is the (height, width) the image will be resized to
    (INPUT.SIZE_TRAIN / SIZE_TEST); with ``draft`` a JPEG at least twice that
    size in both dimensions is decoded reduced, never below the target size.
    Raises BadImageError for a missing, truncated or non-image file.
    """
    return decode_image(path, target_size, draft)[0]
