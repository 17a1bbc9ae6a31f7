"""ResNet trunks for re-ID, built from torchvision's layouts.

The trunk keeps torchvision's module names (conv1, bn1, layer1..layer4) so
that its state-dict keys are torchvision's minus ``fc.``: ImageNet files load
as they are, and Bag-of-Tricks checkpoints load under ``base.``.
"""
import os

from torch import nn
from torchvision.models import resnet as tv_resnet

from modeling.weight_loading import check_weight_values, read_weights_file
from utils.errors import UserError

# torchvision's ImageNet weight files (IMAGENET1K_V1), named here so that an
# offline user knows exactly which file to fetch elsewhere.
IMAGENET_FILES = {
    "resnet18": "resnet18-f37072fd.pth",
    "resnet34": "resnet34-b627a593.pth",
    "resnet50": "resnet50-0676ba61.pth",
}


class ResNet(nn.Module):
    """Convolutional part of a torchvision ResNet: image -> B x C x h x w map."""

    STAGES = ("layer1", "layer2", "layer3", "layer4")

    def __init__(self, arch, torchvision_resnet, last_stride=1, stem_relu=False, mixstyle=None):
        """``mixstyle``: {stage name: a MixStyle layer applied after that stage in training}."""
        super().__init__()
        self.arch = arch
        self.conv1 = torchvision_resnet.conv1
        self.bn1 = torchvision_resnet.bn1
        # Bag-of-Tricks' ResNet has no ReLU here; its checkpoints only give
        # their numbers without it, hence the switch.
        self.relu = nn.ReLU(inplace=True) if stem_relu else nn.Identity()
        self.maxpool = torchvision_resnet.maxpool
        self.layer1 = torchvision_resnet.layer1
        self.layer2 = torchvision_resnet.layer2
        self.layer3 = torchvision_resnet.layer3
        self.layer4 = torchvision_resnet.layer4
        _set_first_block_stride(self.layer4, last_stride)
        self.out_channels = 512 * type(self.layer4[0]).expansion
        # No parameters: the state-dict keys stay torchvision's.
        self.mixstyle = nn.ModuleDict(mixstyle or {})

    def forward(self, x, domains=None):
        """``domains`` (training only): each image's domain label, for cross-domain MixStyle."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name in self.STAGES:
            x = getattr(self, name)(x)
            if name in self.mixstyle:
                x = self.mixstyle[name](x, domains)
        return x


def _set_first_block_stride(layer, stride):
    block = layer[0]
    # torchvision strides a Bottleneck in its 3x3 conv2, a BasicBlock in conv1.
    strided_conv = block.conv2 if isinstance(block, tv_resnet.Bottleneck) else block.conv1
    strided_conv.stride = (stride, stride)
    if block.downsample is not None:
        block.downsample[0].stride = (stride, stride)


def resnet18(last_stride=1, stem_relu=False, mixstyle=None):
    return ResNet("resnet18", tv_resnet.resnet18(weights=None), last_stride, stem_relu, mixstyle)


def resnet34(last_stride=1, stem_relu=False, mixstyle=None):
    return ResNet("resnet34", tv_resnet.resnet34(weights=None), last_stride, stem_relu, mixstyle)


def resnet50(last_stride=1, stem_relu=False, mixstyle=None):
    return ResNet("resnet50", tv_resnet.resnet50(weights=None), last_stride, stem_relu, mixstyle)


def load_imagenet_weights(backbone, path):
    """Copy a torchvision ImageNet state dict (its ``fc.*`` dropped) into ``backbone``."""
    file_name = IMAGENET_FILES.get(backbone.arch, f"{backbone.arch}-<hash>.pth")
    if not path or not os.path.isfile(path):
        raise UserError(
            f"MODEL.PRETRAIN_PATH = {path!r} is not a file. MODEL.PRETRAIN_CHOICE 'imagenet' needs "
            f"torchvision's ImageNet weights for {backbone.arch}: the file {file_name} from "
            f"torchvision's model zoo (https://download.pytorch.org/models/{file_name}), downloaded "
            f"on a machine with internet and copied here; set MODEL.PRETRAIN_PATH to its path. "
            f"Or set MODEL.PRETRAIN_CHOICE none to start from random weights.")
    state = {k: v for k, v in read_weights_file(path, "MODEL.PRETRAIN_PATH").items()
             if not k.startswith("fc.")}
    expected = backbone.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong_shape:
        if wrong_shape:
            key = wrong_shape[0]
            detail = (f"{key} has shape {tuple(state[key].shape)} in the file but "
                      f"{tuple(expected[key].shape)} in {backbone.arch}")
        elif missing:
            detail = f"{len(missing)} keys of {backbone.arch} are missing, e.g. {missing[0]}"
        else:
            detail = f"{len(unexpected)} keys are not in {backbone.arch}, e.g. {unexpected[0]}"
        raise UserError(
            f"MODEL.PRETRAIN_PATH = {path!r} is not torchvision's ImageNet {backbone.arch} "
            f"state dict ({file_name}): {detail}. Check MODEL.NAME, or use MODEL.PRETRAIN_CHOICE "
            f"self for a re-ID checkpoint.")
    check_weight_values(state, expected, f"MODEL.PRETRAIN_PATH = {path!r}")
    backbone.load_state_dict(state)
