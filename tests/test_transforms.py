"""BoT's training and test transforms."""
import torch
from PIL import Image

from config import get_default_cfg
from data.transforms import build_transforms, input_size


def small_cfg():
    cfg = get_default_cfg()
    cfg.INPUT.SIZE_TRAIN = [32, 48]
    cfg.INPUT.SIZE_TEST = [40, 24]
    return cfg


def test_test_transform_resizes_and_normalises():
    cfg = small_cfg()
    out = build_transforms(cfg, is_train=False)(Image.new("RGB", (100, 60), (255, 0, 128)))
    assert out.shape == (3, 40, 24)
    # (1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225
    expected = torch.tensor([2.2489, -2.0357, 0.4265])
    assert torch.allclose(out[:, 20, 12], expected, atol=1e-3)
    assert input_size(cfg, is_train=False) == (40, 24)


def _augment_only(**inputs):
    """A config whose training transform does only the augmentations named in ``inputs`` (train size = test
    size, so that the test transform is the training one without augmentation)."""
    cfg = small_cfg()
    cfg.INPUT.SIZE_TEST = cfg.INPUT.SIZE_TRAIN
    cfg.INPUT.PROB, cfg.INPUT.RE_PROB, cfg.INPUT.PADDING = 0.0, 0.0, 0
    for key, value in inputs.items():
        cfg.INPUT[key] = value
    return cfg


def _two_tone_image():
    image = Image.new("RGB", (50, 50), (200, 100, 50))
    image.paste((0, 0, 0), (0, 0, 25, 50))
    image.paste((30, 220, 90), (30, 5, 45, 20))
    return image


def test_train_transform_gives_the_train_size():
    torch.manual_seed(0)
    cfg = small_cfg()
    transform = build_transforms(cfg, is_train=True)
    outs = [transform(_two_tone_image()) for _ in range(8)]
    assert all(out.shape == (3, 32, 48) for out in outs)
    assert input_size(cfg, is_train=True) == (32, 48)


def test_flip_mirrors_the_image():
    cfg = _augment_only(PROB=1.0)
    plain = build_transforms(cfg, is_train=False)(_two_tone_image())
    flipped = build_transforms(cfg, is_train=True)(_two_tone_image())
    torch.testing.assert_close(flipped, plain.flip(-1))


def test_padding_and_crop_shift_the_image_within_the_padding():
    torch.manual_seed(0)
    pad = 3
    cfg = _augment_only(PADDING=pad)
    plain = build_transforms(cfg, is_train=False)(_two_tone_image())
    # Padded pixels are black before normalisation.
    black = ((0 - torch.tensor(cfg.INPUT.PIXEL_MEAN)) / torch.tensor(cfg.INPUT.PIXEL_STD)).view(3, 1, 1)
    padded = black.expand(3, plain.shape[1] + 2 * pad, plain.shape[2] + 2 * pad).clone()
    padded[:, pad:-pad, pad:-pad] = plain
    transform = build_transforms(cfg, is_train=True)
    offsets = set()
    for _ in range(12):
        out = transform(_two_tone_image())
        found = [(top, left) for top in range(2 * pad + 1) for left in range(2 * pad + 1)
                 if torch.allclose(out, padded[:, top:top + out.shape[1], left:left + out.shape[2]], atol=1e-6)]
        assert found, "the crop is not a window of the padded image"
        offsets.update(found)
    assert len(offsets) > 1


def test_random_erasing_sets_one_rectangle_to_the_mean_colour():
    torch.manual_seed(0)
    cfg = _augment_only(RE_PROB=1.0)
    plain = build_transforms(cfg, is_train=False)(_two_tone_image())
    out = build_transforms(cfg, is_train=True)(_two_tone_image())
    changed = (out != plain).any(dim=0)
    assert changed.any()
    rows, cols = changed.any(dim=1).nonzero().flatten(), changed.any(dim=0).nonzero().flatten()
    box = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
    # Erased pixels are 0 (the mean colour) over a whole rectangle; the rest is the image.
    assert (out[:, box[0], box[1]] == 0).all()
    outside = torch.ones_like(changed)
    outside[box] = False
    assert torch.equal(out[:, outside], plain[:, outside])


def test_train_transform_without_augmentation_is_the_test_one():
    cfg = small_cfg()
    cfg.INPUT.SIZE_TEST = cfg.INPUT.SIZE_TRAIN
    cfg.INPUT.PROB = 0.0
    cfg.INPUT.RE_PROB = 0.0
    cfg.INPUT.PADDING = 0
    image = Image.new("RGB", (64, 64), (10, 120, 240))
    image.paste((250, 250, 0), (10, 10, 40, 30))
    train = build_transforms(cfg, is_train=True)(image)
    test = build_transforms(cfg, is_train=False)(image)
    assert torch.equal(train, test)
