"""Memory mirroring for the graph executor: which forward results to keep, which to recompute.

    sym, plan = mirror.apply(sym, {'data': (32, 3, 32, 32), 'softmax_label': (32,)})
    with mirror.bind_env('segments'):
        mod.bind(...)                        # or sym.simple_bind(...) / sym.bind(...)

Used by `python -m gluon_resnet_v2.train --memory-saving` (memory.py: the Gluon network
exported to a symbol and bound to the executor) and by `python -m legacy_symbol.train
--mirror` (mx.mod.Module). It works on any symbol: it reads the graph, not layer names.

MXNet 1.x's graph executor builds the backward graph with a `need_mirror(node)` test: a
node that passes is copied into the backward pass (`<name>_mirror`) and recomputed there,
so its forward output can be freed as soon as the forward has used it. A node passes when
it carries the attribute `__force_mirroring__`, or, with `MXNET_BACKWARD_DO_MIRROR=1`, when
it is not a Convolution, FullyConnected, Concat or SoftmaxOutput (never a Dropout).

Policy `env` is that variable alone. Measured on MXNet 1.9.1: it saves nothing. It mirrors
the residual additions too, and a mirrored addition needs the mirrored addition before it,
so in backward the whole residual stream is recomputed from the stem and held at once,
while every convolution output stays kept (ResNet-110, batch 128: executor plan 1,038 MB
without, 1,044 MB with it).

Policy `segments` is the checkpointing of Chen et al., "Training Deep Nets with Sublinear
Memory Cost" (2016), which the attribute was made for: cut the graph where a single tensor
carries everything forward (`cut_points`; in a ResNet the residual stream between units),
keep some of those tensors, mark everything else, convolutions included, and drop the
marks whose recomputed copy nothing would read (`drop_unread`). A backward pass then holds
the kept tensors plus one recomputed segment at a time; the kept tensors are chosen to
minimise that sum (`candidates`, then the smallest executor plan of the best few). The
cost is one more forward pass per step; the numbers do not change (the same ops on the
same inputs; BatchNorm updates its running statistics in its backward, which is not
duplicated). Measurements: legacy_symbol/README.md (Module, `--mirror`) and
docs/results/memory.md (Gluon, `--memory-saving`).

`MXNET_BACKWARD_DO_MIRROR` must not be set while binding a planned symbol: it would mirror
the kept tensors as well. Bind inside `with bind_env(policy):`.
"""
import json
import re

import numpy as np

from . import environ

POLICIES = ('segments', 'env')
# Never marked: the loss (its "forward" in backward would be a second loss) and Dropout
# (a recomputation would draw another mask; MXNet refuses to mirror it anyway).
NEVER = ('SoftmaxOutput', 'Dropout', 'LinearRegressionOutput', 'LogisticRegressionOutput',
         'MAERegressionOutput', 'SVMOutput', 'MakeLoss')
ATTR = '__force_mirroring__'


def bind_env(policy):
    """A scope whose binds see MXNET_BACKWARD_DO_MIRROR as `policy` needs it ('1' for
    `env`; '0' for a planned symbol, whose kept tensors must not be mirrored too; policy
    None: left as the caller has it); the caller's value is restored afterwards (MXNet
    reads it at every bind)."""
    if policy is None:
        return environ.scoped()
    return environ.scoped({'MXNET_BACKWARD_DO_MIRROR': '1' if policy == 'env' else '0'})


def graph(sym):
    """The symbol's JSON form (nodes in topological order) and the op nodes' positions."""
    data = json.loads(sym.tojson())
    return data, [i for i, n in enumerate(data['nodes']) if n['op'] != 'null']


def output_bytes(sym, nodes, ops, shapes, itemsize=4):
    """Bytes of every op node's outputs for input `shapes` ({name: shape})."""
    internals = sym.get_internals()
    _, out_shapes, _ = internals.infer_shape(**shapes)
    inputs = set(sym.list_inputs())                    # variables: 'stem_conv_weight', ...
    per_node = {}
    for out, shape in zip(internals.list_outputs(), out_shapes):   # '<node>_output', ...
        if out in inputs:
            continue
        node = out.rsplit('_', 1)[0]
        per_node[node] = per_node.get(node, 0) + itemsize * int(np.prod(shape))
    return {i: per_node.get(nodes[i]['name'], 0) for i in ops}


def cut_points(nodes, ops):
    """Op nodes whose output is the only tensor crossing the graph right after them: every
    earlier op output is consumed by then. In a ResNet: the residual stream between units,
    and the stem and head chains."""
    last_use = {}
    for pos, n in enumerate(nodes):
        for src, _, _ in n['inputs']:
            if nodes[src]['op'] != 'null':
                last_use[src] = max(last_use.get(src, src), pos)
    cuts, reach = [], -1
    for i in ops:
        if reach <= i and last_use.get(i, i) > i:      # nothing earlier lives past i
            cuts.append(i)
        reach = max(reach, last_use.get(i, i))
    return cuts


def choose_kept(ops, cuts, size, budget):
    """Walk the graph; keep a cut once the segment since the last kept one exceeds
    `budget` bytes. Returns (kept, estimated backward memory: kept + largest segment)."""
    cutset, kept, segment, largest = set(cuts), [], 0, 0
    for i in ops:
        segment += size[i]
        if i in cutset and segment > budget:
            largest = max(largest, segment - size[i])
            kept.append(i)
            segment = 0
    largest = max(largest, segment)
    return kept, sum(size[i] for i in kept) + largest


def candidates(ops, cuts, size, count):
    """Up to `count` distinct kept sets, best estimate first, from budgets between one
    node's output and the whole graph's (ties: the larger budget, fewer kept tensors)."""
    total = sum(size.values())
    low = max(min((s for s in size.values() if s), default=1), 1)
    budgets = [0] + list(np.geomspace(low, max(total, low), 96))
    sweep = sorted(((choose_kept(ops, cuts, size, b), b) for b in budgets),
                   key=lambda r: (r[0][1], -r[1]))
    out, seen = [], set()
    for (kept, estimate), _ in sweep:
        if tuple(kept) not in seen and len(out) < count:
            seen.add(tuple(kept))
            out.append((kept, estimate))
    return out


def apply(sym, shapes, policy='segments', trials=6):
    """`sym` with mirroring marks for `policy`, and a summary of the plan.

    `segments`: the checkpointing plan above. The estimate (kept + largest segment) ignores
    what the kept ops' own backward reads (a kept BatchNorm keeps its input too) and the
    executor's in-place sharing, so the `trials` best candidates are bound and the one
    whose executor memory plan is smallest wins (binding plans memory without touching it:
    seconds even for ResNet-1001). `env`: the symbol unchanged (the executor's own choice
    under MXNET_BACKWARD_DO_MIRROR=1; bind with `bind_env('env')`). None: no mirroring,
    (sym, None)."""
    if policy is None:
        return sym, None
    if policy not in POLICIES:
        raise ValueError('mirror policy %r: use one of %s' % (policy, ', '.join(POLICIES)))
    if policy == 'env':
        return sym, {'policy': 'env', 'kept': [], 'marked': 0}
    data, ops = graph(sym)
    nodes = data['nodes']
    size = output_bytes(sym, nodes, ops, shapes)
    cuts = cut_points(nodes, ops)
    best, arrays = None, planning_arrays(sym, shapes)
    for kept, estimate in candidates(ops, cuts, size, trials):
        marked = {i for i in ops if i not in set(kept) and nodes[i]['op'] not in NEVER}
        marked, dropped, planned = drop_unread(data, marked, shapes, arrays)
        if best is None or planned < best[0]:
            best = (planned, kept, marked, dropped, estimate)
    planned, kept, marked, dropped, estimate = best
    plan = {'policy': policy, 'kept': [nodes[i]['name'] for i in kept], 'marked': len(marked),
            'unread': len(dropped), 'cuts': len(cuts), 'planned_mb': planned,
            'unmirrored_mb': executor_mb(sym, shapes, arrays),
            'estimate_mb': estimate / 2.0 ** 20}
    return marked_symbol(data, marked), plan


def marked_symbol(data, marked):
    """The symbol of JSON `data` with `__force_mirroring__` on the node positions `marked`."""
    import mxnet as mx
    data = json.loads(json.dumps(data))
    for i in marked:
        data['nodes'][i].setdefault('attrs', {})[ATTR] = 'True'
    return mx.sym.load_json(json.dumps(data))


def planning_arrays(sym, shapes):
    """Argument, gradient and auxiliary arrays for planning binds, shared by all of them and
    never written (a bind plans the executor's memory; nothing runs), so uninitialised:
    planning does not add the weights' size to the process's memory once per candidate."""
    import mxnet as mx
    arg_shapes, _, aux_shapes = sym.infer_shape(**shapes)
    names = sym.list_arguments()
    return ({n: mx.nd.empty(s) for n, s in zip(names, arg_shapes)},
            {n: mx.nd.empty(s) for n, s in zip(names, arg_shapes) if n not in shapes},
            {n: mx.nd.empty(s) for n, s in zip(sym.list_auxiliary_states(), aux_shapes)})


def _plan_text(sym, shapes, arrays):
    """debug_str of `sym` bound as the Module binds for training (no input gradients)."""
    import mxnet as mx
    args, grads, aux = arrays
    req = {k: 'null' if k in shapes else 'write' for k in sym.list_arguments()}
    with bind_env('segments'):
        return sym.bind(mx.cpu(), args, args_grad=grads, grad_req=req,
                        aux_states=aux).debug_str()


def _total_mb(text):
    return int(re.search(r'Total (\d+) MB allocated', text).group(1))


def bound_mb(executor):
    """The memory plan (MB) of a bound executor: what its forward and backward allocate."""
    return _total_mb(executor.debug_str())


def executor_mb(sym, shapes, arrays):
    """The executor memory plan (MB) of `sym` bound for training without mirroring."""
    return _total_mb(_plan_text(sym, shapes, arrays))


def drop_unread(data, marked, shapes, arrays):
    """Unmark the nodes whose recomputed output nothing in the backward pass reads; also
    returns the unmarked positions and the final executor memory plan (MB).

    Such a copy still runs (the gradient node of a mirrored op depends on it) and is given
    no output (req kNullOp), which MXNet's native convolution rejects (MKLDNN's runs it for
    nothing; cuDNN's is untested here): the convolution before a kept residual addition
    (the addition's backward reads neither input) is one. Which backward ops read which
    forward results is the operators' own business, so the bound graph is asked: list the
    `*_mirror` nodes no node takes as input, unmark them, repeat (an unmarked node's inputs
    may lose their last reader)."""
    nodes, dropped = data['nodes'], set()
    while True:
        text = _plan_text(marked_symbol(data, marked), shapes, arrays)
        read = set(re.findall(r'^\s+arg\[\d+\]=(\S+)\(\d+\)', text, re.M))
        unread = {i for i in marked if nodes[i]['name'] + '_mirror' not in read}
        if not unread:
            return marked, dropped, _total_mb(text)
        marked, dropped = marked - unread, dropped | unread
