"""The paper's training-curve figures as presets (`python -m gluon_resnet_v2.plotting
--figure fig1|fig3|fig6 RUN_DIR ...`): which runs go into which panel, how each is named,
the title. A preset is one entry of FIGURES; the runs are told apart by what their
config.yaml says they train (depth, placement, shortcut and its options), so any run
directories can be given, Gluon or Module runs alike, in any order.

* fig1: Fig. 1 (right), ResNet-1001 on CIFAR-10: original unit vs the proposed one.
* fig3: Fig. 3, ResNet-110 on CIFAR-10: each shortcut variant of Table 1 against the
  identity shortcut, one panel per variant ((a) scaling, (b) exclusive gating,
  (c) shortcut-only gating, (d) 1x1 conv; the dropout shortcut is not in the figure).
* fig6: Fig. 6, CIFAR-10: left, BN after addition vs the original unit on ResNet-110;
  right, full pre-activation vs the original unit on ResNet-164.

No axis limits are fixed (the paper's are for 64k-iteration runs): --err-ylim and
--loss-ylim set them. Importing this module loads no MXNet and no pyplot.
"""
import os
from collections import namedtuple

from .models.tables import SHORTCUT_OPTIONS, VERSIONS

# A panel draws the runs that match `baseline` or `variant` ({property: value or tuple of
# values}), and only when some run matches `variant`; `label`: the properties that name a
# run in its legend.
Panel = namedtuple('Panel', 'title baseline variant label')
Preset = namedtuple('Preset', 'title panels')

ORIGINAL = dict(placement='original', shortcut='identity')
FIGURES = {
    'fig1': Preset('Fig. 1 (right): ResNet-1001 on CIFAR-10, original vs proposed unit', (
        Panel('ResNet-1001', dict(ORIGINAL, depth=1001),
              dict(placement='full_preact', shortcut='identity', depth=1001), ('placement',)),)),
    'fig3': Preset('Fig. 3: shortcut variants on ResNet-110, CIFAR-10', tuple(
        Panel(title, dict(shortcut='identity', depth=110), dict(shortcut=kind, depth=110),
              ('shortcut',))
        for title, kind in (('(a) constant scaling', 'scale'), ('(b) exclusive gating',
                                                                'gate_exclusive'),
                            ('(c) shortcut-only gating', 'gate_shortcut'),
                            ('(d) 1x1 conv shortcut', 'conv1x1')))),
    'fig6': Preset('Fig. 6: activation placements on CIFAR-10', (
        Panel('ResNet-110: BN after addition', dict(ORIGINAL, depth=110),
              dict(placement='bn_after_add', shortcut='identity', depth=110), ('placement',)),
        Panel('ResNet-164: full pre-activation', dict(ORIGINAL, depth=164),
              dict(placement='full_preact', shortcut='identity', depth=164), ('placement',)))),
}

# the paper's words for the table entries (an entry without one is named by its key)
PLACEMENT_WORDS = {'original': 'original', 'bn_after_add': 'BN after addition',
                   'relu_before_add': 'ReLU before addition',
                   'relu_preact': 'ReLU-only pre-activation',
                   'full_preact': 'pre-activation (proposed)'}
SHORTCUT_WORDS = {   # formatted with the run's properties
    'identity': 'identity shortcut', 'conv1x1': '1x1 conv shortcut',
    'scale': 'constant scaling {scale:g}', 'gate_exclusive': 'exclusive gating b_g={gate_bias:g}',
    'gate_shortcut': 'shortcut-only gating b_g={gate_bias:g}',
    'dropout': 'dropout shortcut {drop_rate:g}'}


def properties(run_dir):
    """What a run trains, from its config.yaml (runs.py reads it): depth, placement (the
    version's own when not set), shortcut and its options, dataset, seed; None without a
    readable config."""
    from . import runs
    from .models import architecture
    cfg, _ = runs.read_yaml(os.path.join(run_dir, 'config.yaml'))
    if cfg is None:
        return None
    get = lambda section, name: runs.setting(cfg, section, name)     # noqa: E731
    name, depth, version = get('model', 'model'), get('model', 'depth'), get('model', 'version')
    if name:
        try:
            arch = architecture(name)
            depth, version = arch['depth'], arch['version']
        except ValueError:
            pass
    out = dict(depth=depth, placement=get('model', 'placement') or VERSIONS.get(version),
               shortcut=get('model', 'shortcut'), dataset=get('data', 'dataset'),
               seed=get('run', 'seed'))
    for option in SHORTCUT_OPTIONS:
        out[option] = get('model', option)
    return out


def matches(props, want):
    return all(props.get(k) in (v if isinstance(v, tuple) else (v,)) for k, v in want.items())


def label(props, keys):
    """A run's name in a legend, in the paper's words."""
    words = []
    for key in keys:
        if key == 'placement':
            words.append(PLACEMENT_WORDS.get(props['placement'], props['placement']))
        elif key == 'shortcut':
            text = SHORTCUT_WORDS.get(props['shortcut'], props['shortcut'])
            try:
                text = text.format(**props)
            except (KeyError, ValueError, TypeError):
                pass
            if props['shortcut'] == 'scale' and props.get('scale_residual'):
                text += ', F x %g' % (1 - props['scale'])
            words.append(text)
        else:
            words.append('%s=%s' % (key, props[key]))
    return ', '.join(words)


def panels(preset, run_dirs):
    """([(panel title, {label: run dir})] of a preset's panels that have a variant run, the
    run dirs in none of them); a label gets ' seed k' where several runs would share it.
    Raises ValueError naming what is missing when no panel can be drawn."""
    props = {d: properties(d) for d in run_dirs}
    unknown = [d for d, p in props.items() if p is None]
    if unknown:
        raise ValueError('no readable config.yaml in %s: a figure preset places runs by what '
                         'they train, so pass run directories' % ', '.join(unknown))
    out, used = [], set()
    for panel in preset.panels:
        chosen = [d for d in run_dirs if matches(props[d], panel.baseline) or
                  matches(props[d], panel.variant)]
        if not any(matches(props[d], panel.variant) for d in chosen):
            continue
        used.update(chosen)
        names = [label(props[d], panel.label) for d in chosen]
        out.append((panel.title, {
            (n + ' seed %s' % props[d]['seed'] if names.count(n) > 1 else n): d
            for n, d in zip(names, chosen)}))
    if not out:
        raise ValueError('none of the runs is a variant the figure shows (%s)' % '; '.join(
            '%s: %s' % (p.title, describe(p.variant)) for p in preset.panels))
    return out, [d for d in run_dirs if d not in used]


def describe(want):
    return ' '.join('%s=%s' % (k, '|'.join(map(str, v)) if isinstance(v, tuple) else v)
                    for k, v in want.items())
