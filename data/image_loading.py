"""Reading one image file, fast for large JPEGs and loud for broken ones.

Opri's images are 4K JPEGs that are resized to a few hundred pixels, so
decoding at full size dominates loading. PIL's draft mode lets the JPEG
decoder scale by 1/2, 1/4 or 1/8 while decoding; it is used when the source
is at least twice the target size, and the transforms resize the rest.

ImageFile.LOAD_TRUNCATED_IMAGES stays off: a truncated file is reported,
not silently padded with grey.
"""
from PIL import Image

from utils.errors import UserError


class BadImageError(UserError):
    """An image file that cannot be decoded completely."""

    def __init__(self, path, reason):
        super().__init__(f"unreadable image {path}: {reason}")
        self.path = path


def read_image(path, target_size=None, draft=True):
    """The image at ``path`` as a fully loaded RGB PIL image.

    ``target_size`` is the (height, width) the image will be resized to
    (INPUT.SIZE_TRAIN / SIZE_TEST); with ``draft`` a JPEG at least twice that
    size in both dimensions is decoded reduced, never below the target size.
    Raises BadImageError for a missing, truncated or non-image file.
    """
    try:
        with Image.open(path) as img:
            if draft and target_size is not None and img.format == "JPEG":
                height, width = target_size
                if img.width >= 2 * width and img.height >= 2 * height:
                    img.draft("RGB", (width, height))
            img.load()
            return img.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise BadImageError(path, err) from None
