"""The CIFAR pre-activation ResNets of this project written in PyTorch, for the speed
benchmark's PyTorch rows (`python -m gluon_resnet_v2.bench --torch-python PATH`).

Run by path under a Python that has PyTorch, never imported by the package: PyTorch >= 2
beside MXNet breaks `import gluoncv`, so it lives in a virtual environment of its own.
It imports nothing of this package (its Python has no MXNet).

    /path/to/torch-venv/bin/python gluon_resnet_v2/torch_reference.py JOB.json RESULT.json

The network is the one of models/resnet.py, rule for rule (../shared/PAPER.md): stem 3x3/16
conv-BN-ReLU, which is the first unit's pre-activation; full pre-activation units; the
first unit of stages 2-3 shares its pre-activation with a 1x1 projection (option B) and a
bottleneck carries the stride on its first 1x1 (the authors' code); a final BN-ReLU, global
average pooling, FC. Its parameter count is reported so the benchmark can check that both
frameworks train the same network (ResNet-110: 1,730,522; ResNet-164: 1,703,258).

The step is the paper's: SGD with Nesterov momentum 0.9, weight decay 1e-4, lr 0.1,
softmax cross-entropy; float32, or bfloat16 autocast (weights, optimizer and loss in
float32); NCHW or channels-last memory format.
"""
import json
import os
import re
import resource
import sys
import time

import torch
from torch import nn


class Unit(nn.Module):
    """One full pre-activation unit (paper Fig. 4(e)): x + F(x); `preact` 'own', 'shared'
    (the projection reads the pre-activated x) or 'none' (the stem pre-activated x)."""

    def __init__(self, cin, cout, stride, bottleneck, preact):
        super().__init__()
        mid = cout // 4 if bottleneck else cout
        convs = ([(cin, mid, 1, stride), (mid, mid, 3, 1), (mid, cout, 1, 1)] if bottleneck
                 else [(cin, cout, 3, stride), (cout, cout, 3, 1)])
        layers = []
        for i, (a, b, k, s) in enumerate(convs):
            if i > 0 or preact == 'own':
                layers += [nn.BatchNorm2d(a), nn.ReLU(inplace=i > 0)]
            layers.append(nn.Conv2d(a, b, k, s, k // 2, bias=False))
        self.pre = (nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU()) if preact == 'shared'
                    else nn.Identity())
        self.body = nn.Sequential(*layers)
        self.shortcut = (nn.Conv2d(cin, cout, 1, stride, bias=False)
                         if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x):
        x = self.pre(x)
        return self.body(x) + self.shortcut(x)


def cifar_resnet(depth, classes=10):
    """depth = 6n+2 (basic units) below 164, 9n+2 (bottleneck units) from 164 up."""
    bottleneck = depth >= 164 and (depth - 2) % 9 == 0
    n, rest = divmod(depth - 2, 9 if bottleneck else 6)
    if n < 1 or rest:
        raise ValueError('invalid CIFAR depth %d' % depth)
    widths = [w * (4 if bottleneck else 1) for w in (16, 32, 64)]
    layers, cin = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()], 16
    for s, width in enumerate(widths):
        for u in range(n):
            preact = 'own' if u else ('none' if s == 0 else 'shared')
            layers.append(Unit(cin, width, 2 if s and not u else 1, bottleneck, preact))
            cin = width
    layers += [nn.BatchNorm2d(cin), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
               nn.Linear(cin, classes)]
    return nn.Sequential(*layers)


def measure(model, batch, dtype, channels_last, steps, warmup, seed):
    """img/s of the training step on two fixed synthetic 3x32x32 batches."""
    match = re.fullmatch(r'cifar_resnet(\d+)_v2', model)
    if not match:
        raise ValueError('the PyTorch reference has the CIFAR pre-activation ResNets '
                         '(cifar_resnetN_v2) only, not %s' % model)
    threads = int(os.environ.get('OMP_NUM_THREADS') or os.cpu_count())
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = cifar_resnet(int(match.group(1))).to(memory_format=fmt)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                          weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    batches = [(torch.randn(batch, 3, 32, 32).to(memory_format=fmt),
                torch.randint(0, 10, (batch,))) for _ in range(2)]

    def step(i):
        x, y = batches[i % 2]
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=dtype == 'bfloat16'):
            out = net(x)
        loss = loss_fn(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    for i in range(warmup):
        step(i)
    start = time.perf_counter()
    for i in range(steps):
        loss = step(i)          # PyTorch's CPU ops are synchronous: the clock is exact
    seconds = time.perf_counter() - start
    return dict(img_per_sec=steps * batch / seconds, seconds=seconds,
                params=sum(p.numel() for p in net.parameters()),
                loss=float(loss.detach()), torch=torch.__version__, threads=threads,
                peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)


if __name__ == '__main__':
    with open(sys.argv[1]) as f:
        job = json.load(f)
    result = measure(**job)
    with open(sys.argv[2], 'w') as f:
        json.dump(result, f)
