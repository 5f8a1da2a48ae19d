"""What a run is built from: the network of a ModelConfig, the dtype check, the kvstore.

Model-option errors from the registry (unknown variants, invalid depths) are ValueErrors
listing the valid choices; here they become UserErrors, which the CLI prints as one line.
"""
import os

from .data import dataset_spec
from .errors import UserError
from .models import SHORTCUT_OPTIONS, build_resnet, get_model


def model_overrides(mcfg, classes):
    """get_model / build_resnet keyword arguments of a ModelConfig."""
    kw = dict(classes=classes, shortcut=mcfg.shortcut, projection=mcfg.projection)
    kw.update({k: getattr(mcfg, k) for k in SHORTCUT_OPTIONS})
    if mcfg.placement:
        kw['placement'] = mcfg.placement
    if mcfg.block:
        kw['block'] = mcfg.block
    return kw


def build_net(mcfg, dataset, data_classes):
    """The uninitialised network of `mcfg` for a dataset of `data_classes` classes.

    --model NAME picks a registry entry; otherwise --depth and --version pick the ResNet
    of that depth in the dataset's family (data.DATASETS: CIFAR or ImageNet)."""
    classes = mcfg.classes or data_classes
    if classes != data_classes:
        raise UserError('--classes %d does not match the %d classes of the dataset: drop '
                        '--classes (it defaults to the dataset\'s)' % (classes, data_classes))
    try:
        if mcfg.model:
            return get_model(mcfg.model, **model_overrides(mcfg, classes))
        return build_resnet(mcfg.depth, dataset_spec(dataset).family, mcfg.version,
                            **model_overrides(mcfg, classes))
    except ValueError as e:
        raise UserError('%s (--model/--depth/--block/--placement/--shortcut)' % e) from None


def check_model(mcfg, dataset):
    """Fail on a bad model option before any data is read (building is cheap: no weights)."""
    build_net(mcfg, dataset, mcfg.classes or dataset_spec(dataset).classes or 1)


def check_dtype(dtype, ctxs):
    """float16 needs GPUs: MXNet's CPU build has no float16 GEMM/convolution."""
    if dtype == 'float16' and any(c.device_type == 'cpu' for c in ctxs):
        raise UserError('--dtype float16 is not supported on CPU contexts (MXNet has no CPU '
                        'float16 GEMM): use --dtype float32, or train on --gpus')


def kvstore_setup(name, ctxs):
    """(kvstore for gluon.Trainer, worker rank, number of workers).

    dist_* kvstores need the launcher's DMLC_* environment (scheduler, servers, workers);
    the global batch is then shared by the workers in rank order."""
    if name == 'None':
        if len(ctxs) > 1:
            raise UserError('--kvstore None does not aggregate gradients, so %d devices would '
                            'train %d different models: use --kvstore device (or local)'
                            % (len(ctxs), len(ctxs)))
        return None, 0, 1
    if name.startswith('dist'):
        if 'DMLC_ROLE' not in os.environ:
            raise UserError('--kvstore %s needs a distributed launch (DMLC_ROLE, DMLC_PS_ROOT_URI, '
                            '... set by mxnet\'s tools/launch.py): start it with the launcher, '
                            'or use --kvstore device on one machine' % name)
        import mxnet as mx
        kv = mx.kv.create(name)
        return kv, kv.rank, kv.num_workers
    if name == 'nccl' and any(c.device_type != 'gpu' for c in ctxs):
        raise UserError('--kvstore nccl needs GPU contexts: use --kvstore device with --cpus')
    return name, 0, 1
