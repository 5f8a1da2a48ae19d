"""Multiply-adds of a symbol's convolution and fully connected layers, per image.

The count the ResNet papers call "FLOPs": one multiply-add per weight per output position,
biases, BatchNorm, ReLU, pooling and additions left out (they are a few percent). It is
read off the graph itself: every `Convolution` / `FullyConnected` node of the symbol's
JSON, with the shapes MXNet infers for its weight and its output, so any symbol works
(the notes' network, `legacy_symbol.paper`'s, an exported Gluon net) without knowing its
architecture:

    conv:  out_channels * out_h * out_w  *  in_channels / groups * kernel_h * kernel_w
    FC:    num_hidden                    *  inputs

Both are prod(output shape without batch) * prod(weight shape without its first axis),
since a conv weight is (out, in / groups, kh, kw) and an FC weight (num_hidden, inputs).
"""
import json

import numpy as np

COUNTED_OPS = ('Convolution', 'FullyConnected')
CIFAR_INPUT = (1, 3, 32, 32)


def layer_macs(symbol, data_shape=CIFAR_INPUT, data_name='data'):
    """{layer name: multiply-adds per image} of every conv / FC node, in graph order."""
    internals = symbol.get_internals()
    arg_shapes, out_shapes, _ = internals.infer_shape(**{data_name: data_shape})
    if out_shapes is None:
        raise ValueError('cannot infer the shapes of the symbol from %s %s'
                         % (data_name, tuple(data_shape)))
    weights = dict(zip(internals.list_arguments(), arg_shapes))
    outputs = dict(zip(internals.list_outputs(), out_shapes))
    nodes = json.loads(symbol.tojson())['nodes']
    batch = data_shape[0]
    macs = {}
    for node in nodes:
        if node['op'] not in COUNTED_OPS:
            continue
        weight = weights[nodes[node['inputs'][1][0]]['name']]   # inputs: data, weight[, bias]
        out = outputs[node['name'] + '_output']                  # single-output ops
        total = int(np.prod(out, dtype=np.int64)) * int(np.prod(weight[1:], dtype=np.int64))
        macs[node['name']] = total // batch
    return macs


def count_macs(symbol, data_shape=CIFAR_INPUT, data_name='data'):
    """Total multiply-adds per image of the conv / FC layers of `symbol`."""
    return sum(layer_macs(symbol, data_shape, data_name).values())
