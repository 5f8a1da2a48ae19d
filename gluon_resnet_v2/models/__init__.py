"""Architectures only: the tables of every extension point (tables.py, no MXNet), residual
units (units.py), networks (resnet.py), names (registry.py).

The Gluon blocks import MXNet; the tables and the registry's names do not, so the
configuration and the command line can read them without loading MXNet.
"""
from .registry import architecture, build_resnet, get_model, list_models, overrides, resolve
from .tables import (BLOCKS, CIFAR_DEPTHS, FAMILIES, PLACEMENTS, SHORTCUT_OPTIONS, SHORTCUTS,
                     VERSIONS, ArchSpec, cifar_spec, imagenet_spec, unit_plan)

__all__ = ['overrides', 'architecture', 'build_resnet', 'get_model', 'list_models', 'resolve',
           'BLOCKS', 'CIFAR_DEPTHS', 'FAMILIES', 'PLACEMENTS', 'SHORTCUT_OPTIONS', 'SHORTCUTS',
           'VERSIONS', 'ArchSpec', 'cifar_spec', 'imagenet_spec', 'unit_plan', 'ResNet',
           'ResidualUnit']


def __getattr__(name):          # the Gluon blocks, imported (with MXNet) on first use
    if name in ('ResNet', 'ResidualUnit'):
        from . import resnet
        return getattr(resnet, name)
    raise AttributeError('module %r has no attribute %r' % (__name__, name))
