"""Move weights between a Gluon network and a symbol's argument / auxiliary dicts, by name.

`legacy_symbol.paper` names every symbol variable exactly like the Gluon parameter, so
the mapping is the identity on names: no table to maintain, no copying by hand. Every
name the symbol needs must be present and every weight given must be used; a missing or
extra name, or a shape that does not fit, raises ValueError naming all of them (a
silently half-loaded network trains, but from partly random weights).

    arg_params, aux_params = gluon_to_symbol(net, sym)    # for Module.set_params
    symbol_to_gluon(arg_params, aux_params, net)          # e.g. from a Module checkpoint
"""
import mxnet as mx

# symbol inputs that are data, not weights
INPUT_NAMES = ('data', 'softmax_label')
# An input size every network of the family accepts (global pooling: parameter shapes do
# not depend on it); the notes network's FC size does, it needs its own 32x32 anyway.
DEFAULT_DATA_SHAPE = (1, 3, 32, 32)


def symbol_shapes(symbol, data_shape=DEFAULT_DATA_SHAPE):
    """{name: shape} of the symbol's weights (arguments but data/label) and aux states."""
    arg_shapes, _, aux_shapes = symbol.infer_shape(data=data_shape)
    args = {n: tuple(s) for n, s in zip(symbol.list_arguments(), arg_shapes)
            if n not in INPUT_NAMES}
    aux = {n: tuple(s) for n, s in zip(symbol.list_auxiliary_states(), aux_shapes)}
    return args, aux


def check_names(expected, given, what):
    """ValueError naming every missing and every extra name."""
    missing, extra = sorted(set(expected) - set(given)), sorted(set(given) - set(expected))
    if missing or extra:
        raise ValueError('%s do not match: missing %s; extra %s'
                         % (what, ', '.join(missing) or 'none', ', '.join(extra) or 'none'))


def check_shapes(expected, given, what):
    """ValueError naming every weight whose shape does not fit; a 0 in an expected shape
    (a Gluon parameter whose input size is still deferred) matches any size."""
    bad = ['%s: %s given, %s expected' % (n, tuple(given[n]), tuple(expected[n]))
           for n in sorted(expected)
           if len(given[n]) != len(expected[n])
           or any(e not in (0, g) for e, g in zip(expected[n], given[n]))]
    if bad:
        raise ValueError('%s: shape mismatch for %s' % (what, '; '.join(bad)))


def gluon_to_symbol(net, symbol, data_shape=DEFAULT_DATA_SHAPE, ctx=None):
    """(arg_params, aux_params): copies of `net`'s initialised parameters, split the way
    `symbol` uses them (running statistics are auxiliary states there)."""
    args, aux = symbol_shapes(symbol, data_shape)
    params = net.collect_params()
    check_names(list(args) + list(aux), params.keys(), 'Gluon parameters and symbol weights')
    values = {n: p.data() for n, p in params.items()}   # raises if `net` is uninitialised
    check_shapes(dict(args, **aux), {n: v.shape for n, v in values.items()},
                 'Gluon parameters vs symbol')
    ctx = ctx or mx.cpu()
    return ({n: values[n].copyto(ctx) for n in args}, {n: values[n].copyto(ctx) for n in aux})


def symbol_to_gluon(arg_params, aux_params, net, ctx=None):
    """Set every parameter of `net` from the symbol's dicts (values cast to the parameter's
    dtype). Parameters not initialised yet are created with the given shapes on `ctx`."""
    given = dict(arg_params, **aux_params)
    params = net.collect_params()
    check_names(params.keys(), given, 'symbol weights and Gluon parameters')
    check_shapes({n: p.shape for n, p in params.items()}, {n: v.shape for n, v in given.items()},
                 'symbol vs Gluon parameters')
    for name, p in params.items():
        p.shape = given[name].shape                 # completes a deferred input size
        try:
            p.list_ctx()
        except RuntimeError:                        # never initialised: allocate, then set
            p.initialize(ctx=ctx or mx.cpu())
        p.set_data(given[name])
    return net
