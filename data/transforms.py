"""BoT's input pipeline (shared/design/method.md section 0).

All randomness comes from torch's RNG, which DataLoader workers seed from the
loader's generator; see data/build.py for how that makes epochs repeatable.
"""
import torchvision.transforms as T


def input_size(cfg, is_train):
    """(height, width) that images are resized to; also the JPEG draft target."""
    return tuple(cfg.INPUT.SIZE_TRAIN if is_train else cfg.INPUT.SIZE_TEST)


def build_transforms(cfg, is_train):
    """PIL RGB image -> normalised 3 x H x W tensor."""
    normalize = T.Normalize(mean=cfg.INPUT.PIXEL_MEAN, std=cfg.INPUT.PIXEL_STD)
    size = input_size(cfg, is_train)
    if not is_train:
        return T.Compose([T.Resize(size), T.ToTensor(), normalize])
    return T.Compose([
        T.Resize(size),
        T.RandomHorizontalFlip(p=cfg.INPUT.PROB),
        T.Pad(cfg.INPUT.PADDING),
        T.RandomCrop(size),
        T.ToTensor(),
        normalize,
        # Erased pixels become 0 in normalised space, i.e. the mean colour.
        T.RandomErasing(p=cfg.INPUT.RE_PROB, value=0),
    ])
