"""Shared plumbing of the command-line tools: click options built from the config
dataclasses' field metadata, `--config run.yaml` merging, the process set-up every entry
point shares, and one-line errors with exit code 2.

Option name = field name with dashes; help and choices come from the field's metadata
(config.option), the type and default from the dataclass. The choices are the very tables the code validates against, so the CLI and
the library cannot disagree. Importing this module imports no MXNet.
"""
import functools
import sys
import typing
from dataclasses import fields

import click
import yaml

from . import environ
from .config import Config, ConfigError, field_default, field_sections, sections
from .errors import TrainingDiverged, UserError


def split_ints(text):
    """'0,1' -> (0, 1): the value of a tuple-of-int option."""
    if text is None or isinstance(text, tuple):
        return text
    try:
        return tuple(int(v) for v in str(text).replace(' ', '').split(',') if v)
    except ValueError:
        raise click.BadParameter('expected comma-separated integers, e.g. 0,1 or 32000,48000, '
                                 'got %r' % text) from None


def _show(value):
    if isinstance(value, tuple):
        return ','.join(map(str, value)) or 'none'
    return value


def field_option(f, default=None, help=None):
    """The click option of one dataclass field declared with config.option. The option's
    default is None ("not given", so a --config file or the run's own value stands)
    unless `default` says otherwise; `help` replaces the field's help text."""
    name = '--' + f.name.replace('_', '-')
    kind = f.type
    if typing.get_origin(kind) is typing.Union:            # Optional[X] -> X
        kind = [a for a in typing.get_args(kind) if a is not type(None)][0]
    text = help or '%s [default: %s]' % (f.metadata['help'], _show(field_default(f)))
    kw = dict(default=default, help=text)
    if kind is bool:
        return click.option('%s/--no-%s' % (name, name[2:]), f.name, **kw)
    if typing.get_origin(kind) is tuple:
        return click.option(name, f.name, callback=lambda c, p, v: split_ints(v),
                            metavar='N,N,...', **kw)
    choices = f.metadata.get('choices')
    return click.option(name, f.name, type=click.Choice(list(choices)) if choices else kind, **kw)


def dataclass_options(cls):
    """Decorate a click command with one option per field of dataclass `cls`."""
    def decorate(command):
        for f in reversed(fields(cls)):
            command = field_option(f)(command)
        return command
    return decorate


def config_field(name, **kw):
    """The click option of the config field `name` (any section), e.g. for a command
    that takes a few of the training options with its own defaults."""
    section = sections()[field_sections()[name]]
    return field_option({f.name: f for f in fields(section)}[name], **kw)


def config_options(command):
    """Decorate a click command with one option per config field plus --config."""
    field_sections()                  # field names must be unique: each is one option
    for cls in reversed(list(sections().values())):
        command = dataclass_options(cls)(command)
    return click.option('--config', 'config_file', type=str, default=None,
                        help='YAML file with model/data/optim/run sections; flags override it')(
        command)


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
    for name, section in field_sections().items():
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
    """Run a click command as a command-line entry point: in the process environment of
    environ.COMMAND_LINE (restored afterwards); user errors become one line on stderr and
    exit code 2."""
    @functools.wraps(command)
    def run(args=None):
        try:
            with environ.command_line():
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

