"""Reading images: JPEG draft decoding and the detection of broken files."""
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFile

from data.image_loading import BadImageError, read_image
from utils.errors import UserError


def drawn_image(width, height):
    """A picture with edges and gradients, so that decoding errors would show."""
    x = np.linspace(0, 255, width)[None, :, None]
    y = np.linspace(0, 255, height)[:, None, None]
    pixels = np.concatenate([np.broadcast_to(x, (height, width, 1)),
                             np.broadcast_to(y, (height, width, 1)),
                             np.full((height, width, 1), 90.0)], axis=2)
    img = Image.fromarray(pixels.astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for i in range(6):
        draw.rectangle((i * width // 7, height // 4, i * width // 7 + width // 14, height // 2),
                       fill=(250 - 40 * i, 40 * i, 200))
    draw.ellipse((width // 3, height // 2, 2 * width // 3, height - 10), fill=(20, 20, 20))
    return img


@pytest.fixture
def big_jpeg(tmp_path):
    path = tmp_path / "0001_c001_00000001_0.jpg"
    drawn_image(1024, 768).save(path, quality=92)
    return str(path)


def test_large_jpeg_is_decoded_reduced_but_not_below_target(big_jpeg):
    img = read_image(big_jpeg, target_size=(96, 128))
    # 1024 // 128 = 8 and 768 // 96 = 8: the decoder scales by 1/8
    assert img.size == (128, 96) and img.mode == "RGB"
    assert read_image(big_jpeg, target_size=(96, 128), draft=False).size == (1024, 768)
    # less than twice the target: decoded at full size
    assert read_image(big_jpeg, target_size=(400, 600)).size == (1024, 768)


def test_draft_decoding_matches_full_decoding_after_resize(big_jpeg):
    target = (64, 64)
    drafted = read_image(big_jpeg, target).resize(target, Image.BILINEAR)
    full = read_image(big_jpeg, target, draft=False).resize(target, Image.BILINEAR)
    difference = np.abs(np.asarray(drafted, dtype=float) - np.asarray(full, dtype=float)).mean()
    assert difference < 3.0


def test_png_and_grey_images_come_back_rgb(tmp_path):
    png = tmp_path / "a.png"
    Image.new("RGBA", (40, 30), (10, 20, 30, 128)).save(png)
    grey = tmp_path / "b.jpg"
    Image.new("L", (300, 300), 77).save(grey)
    assert read_image(str(png), (16, 16)).mode == "RGB"
    img = read_image(str(grey), (16, 16))
    assert img.mode == "RGB" and img.size == (38, 38)
    assert abs(int(np.asarray(img)[5, 5, 0]) - 77) <= 2


def test_truncated_jpeg_is_reported_with_its_path(big_jpeg, tmp_path):
    data = open(big_jpeg, "rb").read()
    broken = tmp_path / "0001_c001_00000002_0.jpg"
    broken.write_bytes(data[:len(data) // 2])
    with pytest.raises(BadImageError, match=r"0001_c001_00000002_0\.jpg.*truncated"):
        read_image(str(broken), (64, 64))
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_non_image_and_missing_files_are_bad_images(tmp_path):
    fake = tmp_path / "0001_c001_00000003_0.jpg"
    fake.write_text("not a picture")
    with pytest.raises(BadImageError, match="0001_c001_00000003_0.jpg"):
        read_image(str(fake))
    with pytest.raises(UserError, match="missing.jpg"):
        read_image(str(tmp_path / "missing.jpg"))
