"""What a run is built from: the network of a ModelConfig (with --sync-bn's BatchNorm), the
dtype check, the kvstore.

Model-option errors from the registry (unknown variants, invalid depths) are ValueErrors
listing the valid choices; here they become UserErrors, which the CLI prints as one line.
"""
import os
from functools import partial

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


def build_net(mcfg, dataset, data_classes, norm_layer=None):
    """The uninitialised network of `mcfg` for a dataset of `data_classes` classes.

    --model NAME picks a registry entry; otherwise --depth and --version pick the ResNet
    of that depth in the dataset's family (data.DATASETS: CIFAR or ImageNet).
    `norm_layer`: see norm_layer() (None: nn.BatchNorm)."""
    classes = mcfg.classes or data_classes
    if classes != data_classes:
        raise UserError('--classes %d does not match the %d classes of the dataset: drop '
                        '--classes (it defaults to the dataset\'s)' % (classes, data_classes))
    kw = dict(model_overrides(mcfg, classes), norm_layer=norm_layer)
    try:
        if mcfg.model:
            return get_model(mcfg.model, **kw)
        return build_resnet(mcfg.depth, dataset_spec(dataset).family, mcfg.version, **kw)
    except ValueError as e:
        raise UserError('%s (--model/--depth/--block/--placement/--shortcut)' % e) from None


def check_model(mcfg, dataset):
    """Fail on a bad model option before any data is read (building is cheap: no weights)."""
    build_net(mcfg, dataset, mcfg.classes or dataset_spec(dataset).classes or 1)


def norm_layer(sync_bn, ctxs, dtype='float32'):
    """The BatchNorm of a training network: None (nn.BatchNorm: each device normalises
    its own share of the batch), or with --sync-bn MXNet's SyncBatchNorm over the
    devices of this process, which normalises with the statistics of all their images.
    Its parameters have nn.BatchNorm's names and shapes, so the checkpoints of either
    load into the other (evaluate and export build nn.BatchNorm).

    --sync-bn is float32 only: SyncBatchNorm reads float32 inputs (measured: a float16
    input fails at the first forward). CPU contexts are refused by RunConfig."""
    if not sync_bn:
        return None
    if dtype != 'float32':
        raise UserError('--sync-bn is float32 only (MXNet\'s SyncBatchNorm has no float16 '
                        'kernel): drop --sync-bn or --dtype %s' % dtype)
    from mxnet.gluon.contrib.nn import SyncBatchNorm     # MXNet only when asked for
    return partial(SyncBatchNorm, num_devices=len(ctxs))


def check_dtype(dtype, ctxs):
    """float16 needs GPUs: MXNet's CPU build has no float16 GEMM/convolution. bfloat16
    needs CPUs with AVX512-BF16 and oneDNN on (bf16.check; --deterministic turns it off)."""
    if dtype == 'float16' and any(c.device_type == 'cpu' for c in ctxs):
        raise UserError('--dtype float16 is not supported on CPU contexts (MXNet has no CPU '
                        'float16 GEMM): use --dtype float32, --dtype bfloat16 (CPUs with '
                        'AVX512-BF16), or train on --gpus')
    if dtype == 'bfloat16':
        from . import bf16
        bf16.check(ctxs)


def kvstore_setup(name, ctxs):
    """(kvstore for gluon.Trainer, worker rank, number of workers).

    dist_sync / dist_device_sync need the launcher's DMLC_* environment (scheduler, servers,
    workers; gluon_resnet_v2.launch); the global batch is then shared by the workers in
    rank order."""
    if name == 'None':
        if len(ctxs) > 1:
            raise UserError('--kvstore None does not aggregate gradients, so %d devices would '
                            'train %d different models: use --kvstore device (or local)'
                            % (len(ctxs), len(ctxs)))
        return None, 0, 1
    if name == 'dist_async':
        raise UserError('--kvstore dist_async is not supported: every worker applies the summed '
                        'gradients itself (its optimizer state is checkpointed), which MXNet '
                        'allows only with a synchronous kvstore: use --kvstore dist_sync')
    if name.startswith('dist'):
        if 'DMLC_ROLE' not in os.environ:
            raise UserError('--kvstore %s needs a distributed launch (the DMLC_* variables of a '
                            'scheduler, servers and workers): start it with python -m '
                            'gluon_resnet_v2.launch -n WORKERS -s SERVERS -- <this command>, or '
                            'use --kvstore device on one machine' % name)
        import mxnet as mx
        kv = mx.kv.create(name)
        return kv, kv.rank, kv.num_workers
    if name == 'nccl' and any(c.device_type != 'gpu' for c in ctxs):
        raise UserError('--kvstore nccl needs GPU contexts: use --kvstore device with --cpus')
    return name, 0, 1
