"""Shared plumbing of the command-line tools: click options mirrored 1:1 from the config
dataclasses, `--config run.yaml` merging, and one-line errors with exit code 2.

Option name = field name with dashes, help = the field's comment in config.py, type and
default from the dataclass. Choices come from the same tables the code validates against,
so the CLI and the library cannot disagree.
"""
import functools
import inspect
import io
import sys
import tokenize
import typing
from dataclasses import MISSING, fields

import click
import yaml

from .config import DATASETS, KVSTORES, Config, ConfigError
from .errors import TrainingDiverged, UserError
from .models import PLACEMENTS, SHORTCUTS
from .models.resnet import LAYERS_PER_UNIT

# fields whose values come from a table: click shows and checks the choices
CHOICES = {
    ('data', 'dataset'): DATASETS,
    ('model', 'shortcut'): tuple(sorted(SHORTCUTS)),
    ('model', 'placement'): tuple(sorted(PLACEMENTS)),
    ('model', 'block'): tuple(LAYERS_PER_UNIT),
    ('model', 'version'): ('v1', 'v2'),
    ('model', 'projection'): ('A', 'B'),
    ('optim', 'optimizer'): ('nag', 'sgd'),
    ('optim', 'dtype'): ('float32', 'float16'),
    ('run', 'kvstore'): KVSTORES,
}


def field_comments(cls):
    """{field name: its trailing comment} read from the dataclass source."""
    comments, pending = {}, None
    tokens = tokenize.generate_tokens(io.StringIO(inspect.getsource(cls)).readline)
    for tok in tokens:
        if tok.type == tokenize.NAME and tok.start[1] == 4 and pending is None:
            pending = tok.string                    # a name at class-body indent
        elif tok.type == tokenize.COMMENT and pending:
            comments[pending] = tok.string.lstrip('# ').strip()
        if tok.type == tokenize.NEWLINE:
            pending = None
    return comments


def _split_ints(text):
    if text is None or isinstance(text, tuple):
        return text
    try:
        return tuple(int(v) for v in str(text).replace(' ', '').split(',') if v)
    except ValueError:
        raise click.BadParameter('expected comma-separated integers, e.g. 0,1 or 32000,48000, '
                                 'got %r' % text) from None


def _option(section, f, comment):
    """The click option of one config field."""
    name = '--' + f.name.replace('_', '-')
    default = f.default if f.default is not MISSING else f.default_factory()
    hint = typing.get_type_hints(type_owner(section))[f.name]
    if typing.get_origin(hint) is typing.Union:            # Optional[X] -> X
        hint = [a for a in typing.get_args(hint) if a is not type(None)][0]
    kind = hint
    kw = dict(default=None, help='%s [default: %s]' % (comment, _show(default)))
    if kind is bool:
        return click.option('%s/--no-%s' % (name, name[2:]), f.name, **kw)
    if typing.get_origin(kind) is tuple:
        return click.option(name, f.name, callback=lambda c, p, v: _split_ints(v),
                            metavar='N,N,...', **kw)
    choices = CHOICES.get((section, f.name))
    kind = click.Choice(choices) if choices else kind
    return click.option(name, f.name, type=kind, **kw)


def _show(value):
    if isinstance(value, tuple):
        return ','.join(map(str, value)) or 'none'
    return value


def type_owner(section):
    return {f.name: f.default_factory for f in fields(Config)}[section]


def config_options(command):
    """Decorate a click command with one option per config field plus --config."""
    for section_field in reversed(fields(Config)):
        cls = section_field.default_factory
        comments = field_comments(cls)
        for f in reversed(fields(cls)):
            command = _option(section_field.name, f, comments.get(f.name, ''))(command)
    return click.option('--config', 'config_file', type=str, default=None,
                        help='YAML file with model/data/optim/run sections; flags override it')(
        command)


def option_names():
    """{field name: section} for every config field (field names are unique)."""
    return {f.name: s.name for s in fields(Config) for f in fields(s.default_factory)}


def load_yaml(path):
    try:
        with open(path) as fh:
            data = yaml.safe_load(fh)
    except OSError as e:
        raise ConfigError('cannot read config file %s (%s): check the path' % (path, e.strerror))
    except yaml.YAMLError as e:
        where = getattr(e, 'problem_mark', None)
        raise ConfigError('config file %s is not valid YAML%s: fix the file'
                          % (path, ' (line %d)' % (where.line + 1) if where else ''))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError('config file %s must hold a mapping of sections (model, data, optim, '
                          'run), not a %s' % (path, type(data).__name__))
    return data


def build_config(config_file, values):
    """The Config from an optional YAML file and the flags given (None = not given)."""
    merged = load_yaml(config_file) if config_file else {}
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in merged.items()}
    for name, section in option_names().items():
        if values.get(name) is not None:
            merged.setdefault(section, {})
            if not isinstance(merged[section], dict):
                raise ConfigError('config section %r must be a mapping' % section)
            merged[section][name] = values[name]
    try:
        return Config.from_dict(merged)
    except TypeError as e:     # a YAML value of the wrong kind reaches a comparison
        raise ConfigError('invalid value in the configuration (%s): check the config file' % e)


def one_line(text):
    return ' '.join(str(text).split())


def main_wrapper(command):
    """Run a click command; user errors become one line on stderr and exit code 2."""
    @functools.wraps(command)
    def run(args=None):
        try:
            command.main(args=args, standalone_mode=False)
        except click.exceptions.Abort:
            click.echo('aborted', err=True)
            sys.exit(130)
        except click.exceptions.NoSuchOption as e:
            click.echo('error: %s (see --help for the options)' % one_line(e.format_message()),
                       err=True)
            sys.exit(2)
        except click.ClickException as e:
            click.echo('error: %s' % one_line(e.format_message()), err=True)
            sys.exit(2)
        except (UserError, TrainingDiverged) as e:
            click.echo('error: %s' % one_line(e), err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo('interrupted', err=True)
            sys.exit(130)
    return run

