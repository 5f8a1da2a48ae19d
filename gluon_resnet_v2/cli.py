"""Shared plumbing of the command-line tools: click options built from the config
dataclasses' field metadata, `--config run.yaml` merging, the checks of output locations
every command makes before it writes, the process set-up every entry point shares, and
one-line errors with exit code 2.

Option name = field name with dashes; help, choices and valid range come from the field's
metadata (config.option), the type and default from the dataclass. The choices are the very
tables the code validates against, so the CLI and the library cannot disagree. Importing
this module imports no MXNet.
"""
import functools
import os
import sys
import tempfile
import traceback
import typing
from dataclasses import fields

import click
import yaml

from . import environ
from .config import (Config, ConfigError, field_default, field_sections, flag, sections,
                     template_fields)
from .errors import RunInterrupted, TrainingDiverged, UserError


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


def field_option(f, default=None, help=None, **extra):
    """The click option of one dataclass field declared with config.option. The option's
    default is None ("not given", so a --config file or the run's own value stands)
    unless `default` says otherwise; `help` replaces the field's help text; `extra` goes
    to click.option (e.g. hidden=True)."""
    name = flag(f.name)
    kind = f.type
    if typing.get_origin(kind) is typing.Union:            # Optional[X] -> X
        kind = [a for a in typing.get_args(kind) if a is not type(None)][0]
    valid = f.metadata.get('valid')
    text = help or '%s [default: %s%s]' % (f.metadata['help'], _show(field_default(f)),
                                           '; ' + valid.describe() if valid else '')
    kw = dict(extra, default=default, help=text)
    if kind is bool:
        return click.option('%s/--no-%s' % (name, name[2:]), f.name, **kw)
    if typing.get_origin(kind) is tuple:
        return click.option(name, f.name, callback=lambda c, p, v: split_ints(v),
                            metavar='N,N,...', **kw)
    choices = f.metadata.get('choices')
    return click.option(name, f.name, type=click.Choice(list(choices)) if choices else kind, **kw)


def dataclass_options(cls, exclude=()):
    """Decorate a click command with one option per field of dataclass `cls`, except the
    fields named in `exclude`."""
    def decorate(command):
        for f in reversed(fields(cls)):
            if f.name not in exclude:
                command = field_option(f)(command)
        return command
    return decorate


def config_field(name, **kw):
    """The click option of the config field `name` (any section), e.g. for a command
    that takes a few of the training options with its own defaults."""
    section = sections()[field_sections()[name]]
    return field_option({f.name: f for f in fields(section)}[name], **kw)


CONFIG_HELP = ('YAML file with model/data/optim/run sections (a run\'s config.yaml is a '
               'template); flags override it. Not taken from it: %s (they name one run)'
               % ', '.join(flag(name) for _, name in template_fields()))


def config_options(command=None, exclude=()):
    """Decorate a click command with one option per config field plus --config; as
    `config_options(exclude=(...))`, without the options of the fields named (a command
    they do not apply to: its --help does not list them)."""
    def decorate(command):
        field_sections()              # field names must be unique: each is one option
        for cls in reversed(list(sections().values())):
            command = dataclass_options(cls, exclude)(command)
        return click.option('--config', 'config_file', type=str, default=None,
                            help=CONFIG_HELP)(command)
    return decorate(command) if command is not None else decorate


def load_yaml(path, what='config file', holds='of sections (model, data, optim, run)',
              error=ConfigError, empty_ok=True):
    """The mapping a YAML file holds (`what`, e.g. 'config file', names it in messages);
    `error` (a UserError) with the fix when it cannot be read, is not YAML or is not a
    mapping. An empty file is {} when `empty_ok`."""
    try:
        with open(path) as fh:
            data = yaml.safe_load(fh)
    except OSError as e:
        raise error('cannot read %s %s (%s): check the path' % (what, path, e.strerror)) \
            from None
    except yaml.YAMLError as e:
        where = getattr(e, 'problem_mark', None)
        raise error('%s %s is not valid YAML%s: fix the file'
                    % (what, path, ' (line %d)' % (where.line + 1) if where else '')) from None
    if data is None and empty_ok:
        return {}
    if not isinstance(data, dict):
        raise error('%s %s must hold a mapping %s, not %s: fix the file'
                    % (what, path, holds, 'nothing' if data is None else
                       'a %s' % type(data).__name__))
    return data


def build_config(config_file, values):
    """The Config from an optional YAML file and the flags given (None = not given).

    The file is a template: the fields that name one run (config.template_fields: run_dir,
    resume, restart) are not taken from it, so a run's own config.yaml starts a new run
    in --run-dir (or the default) and never continues or overwrites its own run. The
    length of the run is one setting: --epochs with --max-iters is refused, and either
    flag replaces the file's length."""
    given = {k for k, v in values.items() if v is not None}
    if {'epochs', 'max_iters'} <= given:
        raise ConfigError('--epochs and --max-iters both set the length of the run: give one '
                          'of them')
    merged = load_yaml(config_file) if config_file else {}
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in merged.items()}
    template_runs = _drop_run_fields(merged, config_file)
    if 'max_iters' in given and isinstance(merged.get('optim'), dict):
        merged['optim'].pop('epochs', None)     # --max-iters replaces the file's --epochs
    for name, section in field_sections().items():
        if name in given:
            merged.setdefault(section, {})
            if not isinstance(merged[section], dict):
                raise ConfigError('config section %r must be a mapping' % section)
            merged[section][name] = values[name]
    try:
        cfg = Config.from_dict(merged)
    except TypeError as e:     # a YAML value of the wrong kind reaches a comparison
        raise ConfigError('invalid value in the configuration (%s): check the config file' % e)
    run_dir = os.path.realpath(cfg.run.run_dir)
    if run_dir in template_runs:
        raise ConfigError('run dir %s is the run the config file %s was written for: choose a '
                          'new --run-dir to start a run from that template (to continue the '
                          'run itself, drop --config)' % (cfg.run.run_dir, config_file))
    return cfg


def _drop_run_fields(merged, config_file):
    """Remove the run-specific fields from a config file's sections; returns the run
    directories (real paths) the file belongs to: its run.run_dir and, when it names one,
    the folder holding the file (a run's config.yaml)."""
    runs = set()
    for section, name in template_fields():
        values = merged.get(section)
        if isinstance(values, dict) and name in values:
            value = values.pop(name)
            if name == 'run_dir' and isinstance(value, str):
                runs |= {os.path.realpath(value),
                         os.path.realpath(os.path.dirname(os.path.abspath(config_file)))}
    return runs


def check_output_dir(path, option):
    """Refuse (ConfigError), before anything is written, an output folder the command could
    not create or write: a file, a path under a file, a place where nothing can be created
    (read-only, no permission). A missing folder is fine: it is created with its parents."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError('%s %s is a file: choose a folder' % (option, path))
    _check_writable(_nearest_existing(path), option, path)


def check_output_file(path, option):
    """Refuse (ConfigError), before anything is written, an output file the command could
    not write: a folder, or a file whose folder is missing, is a file or is not writable."""
    if os.path.isdir(path):
        raise ConfigError('%s %s is a folder: name a file' % (option, path))
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(folder):
        existing = _nearest_existing(folder)
        if os.path.isdir(existing):
            raise ConfigError('%s %s: folder %s does not exist: create it first, or choose '
                              'another path' % (option, path, folder))
    _check_writable(_nearest_existing(folder), option, path)


def output_file(ctx, param, value):
    """click callback of an output-file option (--out FILE, --markdown FILE): checked with
    check_output_file when the command line is read, before anything runs."""
    if value is not None:
        check_output_file(value, param.opts[0])
    return value


def _nearest_existing(path):
    """`path` or its nearest ancestor that exists (as an absolute path)."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def _check_writable(folder, option, path):
    """`folder` (which exists) must be a folder this process can create files in. The
    permission bits alone do not say it (root ignores them; /proc refuses root too), so a
    probe folder is created and removed."""
    if not os.path.isdir(folder):
        raise ConfigError('%s %s lies under %s, which is a file: choose a path in a folder'
                          % (option, path, folder))
    problem = None if os.access(folder, os.W_OK | os.X_OK) else 'permission denied'
    if problem is None:
        try:
            os.rmdir(tempfile.mkdtemp(prefix='.write-probe-', dir=folder))
        except OSError as e:
            problem = (e.strerror or str(e)).lower()
    if problem:
        raise ConfigError('%s %s: cannot write in %s (%s): choose a writable location'
                          % (option, path, folder, problem))


def one_line(text):
    return ' '.join(str(text).split())


def main_wrapper(command):
    """Run a click command as a command-line entry point: in the process environment of
    environ.COMMAND_LINE (restored afterwards); user errors become one line on stderr and
    exit code 2."""
    @functools.wraps(command)
    def run(args=None):
        if os.environ.get('DMLC_ROLE') == 'worker':
            return exit_without_barrier(lambda: checked(args))
        return checked(args)

    def checked(args):
        try:
            with environ.command_line():
                command.main(args=args, standalone_mode=False)
        except click.exceptions.Abort as e:
            # Ctrl-C: a training run says what it keeps and how to resume (RunInterrupted)
            cause = e.__cause__ if isinstance(e.__cause__, RunInterrupted) else None
            click.echo(one_line(cause) if cause and str(cause) else 'aborted', err=True)
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


def exit_without_barrier(main):
    """Run `main` in a worker of a distributed job. If it stops with an error, exit at once
    with its code: at a normal exit MXNet's kvstore waits in a barrier for every worker,
    and a worker that failed alone would wait there forever (as would the others, in
    their next exchange), so the launcher would never learn of the failure."""
    try:
        main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if code == 0:
            raise
        stop(code)
    except BaseException:
        traceback.print_exc()
        stop(1)


def stop(code):
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

