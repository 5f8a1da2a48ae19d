"""Architectures only: residual units (units.py), networks (resnet.py), names (registry.py)."""
from .registry import CIFAR_DEPTHS, OVERRIDES, VERSIONS, build_resnet, get_model, list_models
from .resnet import ArchSpec, ResNet, cifar_spec, imagenet_spec
from .units import PLACEMENTS, SHORTCUTS, SHORTCUT_DEFAULTS, ResidualUnit
