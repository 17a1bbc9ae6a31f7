from .resnet import ResNet, load_imagenet_weights, resnet18, resnet34, resnet50

__all__ = ["ResNet", "load_imagenet_weights", "resnet18", "resnet34", "resnet50"]
