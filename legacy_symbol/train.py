"""Train with `mx.mod.Module`, the notes' API, on the Gluon trainer's data, recipe and logs.

    python -m legacy_symbol.train --cpus 2 --depth 110                        # paper symbol
    python -m legacy_symbol.train --net notes --dataset cifar10-sample --max-iters 500
    python -m legacy_symbol.train --mirror --gpus 0,1 --model cifar_resnet1001_v2

Every option of `python -m gluon_resnet_v2.train` is here under the same name (they are
the same config fields, gluon_resnet_v2.cli), plus --net and --mirror, except those that
do not apply to a Module run (NOT_APPLICABLE: refused if given, also from a --config
file). The run directory gets the same config.yaml, log.jsonl and curves.png, so
`python -m gluon_resnet_v2.plotting runs/gluon runs/module` overlays a Gluon and a Module
run.
"""
from dataclasses import dataclass, fields
from typing import Optional

import click

from gluon_resnet_v2 import environ
from gluon_resnet_v2.cli import (build_config, check_output_dir, config_field, config_options,
                                 dataclass_options, load_yaml, main_wrapper)
from gluon_resnet_v2.config import (ModelConfig, Section, field_default, field_sections, flag,
                                    option, sections)
from gluon_resnet_v2.errors import UserError
from gluon_resnet_v2.mirror import POLICIES

NETS = ('paper', 'notes')

# Training options that do not apply to a Module run: not in --help, refused if given.
NOT_APPLICABLE = {
    'resume': 'the Module trainer writes no checkpoints; use the Gluon trainer (python -m '
              'gluon_resnet_v2.train) for resumable runs',
    'checkpoint_interval': 'the Module trainer writes no checkpoints (only the final weights); '
                           'drop it, or use the Gluon trainer',
    'hybridize': 'a bound symbol is always a static graph; drop it',
    'resume_from': 'the Module trainer writes no checkpoints; use the Gluon trainer for '
                   'resumable runs',
    'restart': 'the Module trainer only writes into a new or empty --run-dir; choose one',
    'memory_saving': 'the Module trainer\'s memory saving is --mirror (the same plan); use it '
                     'instead',
    'sync_bn': 'the Module trainer builds plain BatchNorm (each device normalises its own '
               'share); drop it, or use the Gluon trainer',
}


@dataclass(frozen=True)
class ModuleOptions(Section):
    """What a Module run takes beyond the training config (recorded in module.yaml)."""
    net: str = option('paper', 'paper: legacy_symbol.paper, the Gluon model of --depth/--model/'
                      '--version as a symbol; notes: the notes\' fixed ResNet(12, [64, 128, 256]) '
                      '(CIFAR-10, quirks included; takes no model options)', NETS)
    mirror: bool = option(False, 'memory mirroring: the graph executor recomputes forward results '
                          'in the backward pass instead of keeping them (same numbers, one more '
                          'forward pass per step; gluon_resnet_v2/mirror.py)')
    mirror_policy: Optional[str] = option(
        None, 'with --mirror (default segments): segments = keep a few residual-stream tensors, '
        'recompute the rest, convolutions included (ResNet-110 batch 128: executor plan 1,038 -> '
        '288 MB); env = MXNET_BACKWARD_DO_MIRROR=1 alone, MXNet\'s own choice (recomputes BN, '
        'ReLU and additions; saves nothing on MXNet 1.9.1)', POLICIES)


def _model_flags(values):
    return sorted('--' + f.name.replace('_', '-') for f in fields(ModelConfig)
                  if values.get(f.name) is not None)


def not_applicable_options(command):
    """The NOT_APPLICABLE training options, hidden: given, main() refuses them by name
    (rather than click's "no such option")."""
    for name in NOT_APPLICABLE:
        command = config_field(name, hidden=True)(command)
    return command


def refuse_not_applicable(config_file, values):
    """A NOT_APPLICABLE option given as a flag, or set in the --config file to anything but
    its default (every run's config.yaml holds the defaults), is refused."""
    for name, why in NOT_APPLICABLE.items():
        if values.pop(name, None) is not None:
            raise UserError('%s: %s' % (flag(name), why))
    data = load_yaml(config_file) if config_file else {}
    for name, why in NOT_APPLICABLE.items():
        section = field_sections()[name]
        f = {x.name: x for x in fields(sections()[section])}[name]
        given = data.get(section) if isinstance(data.get(section), dict) else {}
        if f.metadata['template'] and name in given and given[name] != field_default(f):
            raise UserError('%s.%s: %r in %s: %s' % (section, name, given[name], config_file,
                                                     why.replace('drop it', 'remove it')))


@click.command(context_settings={'max_content_width': 120})
@dataclass_options(ModuleOptions)
@config_options(exclude=tuple(NOT_APPLICABLE))
@not_applicable_options
def main(config_file, net, mirror, mirror_policy, **values):
    """Train one run with mx.mod.Module (bind, init_params, init_optimizer, forward/backward/
    update). No checkpoints and no resume: --run-dir must be new or empty; the Gluon
    trainer's --resume, --checkpoint-interval and --hybridize (a bound symbol is always a
    static graph) do not apply. The final weights are saved as a Module checkpoint
    (module-NNNN.params)."""
    from gluon_resnet_v2.train import summary_text
    refuse_not_applicable(config_file, values)
    opts = ModuleOptions(**{k: v for k, v in dict(net=net, mirror=mirror,
                                                 mirror_policy=mirror_policy).items()
                            if v is not None})
    if opts.net == 'notes' and _model_flags(values):
        raise UserError('--net notes is a fixed network: drop %s, or use --net paper'
                        % ', '.join(_model_flags(values)))
    if opts.mirror_policy and not opts.mirror:
        raise UserError('--mirror-policy %s has no effect without --mirror: add --mirror'
                        % opts.mirror_policy)
    cfg = build_config(config_file, values)
    check_output_dir(cfg.run.run_dir, '--run-dir')
    with environ.training(cfg.run):     # before MXNet is imported
        from .fit import fit_module
        summary = fit_module(cfg, net=opts.net, echo=click.echo,
                             mirror=(opts.mirror_policy or 'segments') if opts.mirror else None)
    click.echo(summary_text(summary))
    return summary


def run():
    """The console command (pyproject's [project.scripts]): as `python -m` runs it."""
    main_wrapper(main)()


if __name__ == '__main__':
    run()
