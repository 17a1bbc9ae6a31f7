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


def test_train_transform_gives_train_size_and_augments():
    torch.manual_seed(0)
    cfg = small_cfg()
    image = Image.new("RGB", (50, 50), (200, 100, 50))
    image.paste((0, 0, 0), (0, 0, 25, 50))
    transform = build_transforms(cfg, is_train=True)
    outs = [transform(image) for _ in range(8)]
    assert all(out.shape == (3, 32, 48) for out in outs)
    assert input_size(cfg, is_train=True) == (32, 48)
    # flip, crop and erasing make the views differ
    assert len({tuple(out.flatten()[::97].tolist()) for out in outs}) > 1


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
