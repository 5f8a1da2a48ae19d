"""Start a parameter-server job (`--kvstore dist_sync`): MXNet's scheduler, servers and workers.

    python -m gluon_resnet_v2.launch -n 2 -s 1 -- python -m gluon_resnet_v2.train \\
        --dataset cifar10-sample --kvstore dist_sync --run-dir runs/dist
    python -m gluon_resnet_v2.launch -n 4 -s 2 -H hosts.txt -- python -m gluon_resnet_v2.train ...
    python -m gluon_resnet_v2.launch -n 2 -H hosts.txt --dry-run -- python train.py

The workers run the command with ps-lite's DMLC_* variables; the scheduler and the servers
run `<python> -c "import mxnet"` (in MXNet 1.9 that import runs their loop and returns when
the workers are done). A process that fails stops the whole job; so does Ctrl-C (README
"Several processes and machines").
"""
import os
import re
import shlex
import shutil
import socket
import sys

import click

from .cli import main_wrapper
from .errors import UserError
from .supervise import Job, Node, say

# commands whose workers use the servers only with --kvstore dist_* (python -m NAME, or NAME)
TRAINERS = ('gluon_resnet_v2.train', 'legacy_symbol.train', 'grv-train', 'grv-module-train')


def check_command(command):
    """Refuse (UserError) a command that cannot be the workers of a job."""
    if not command:
        raise UserError('no command to run: give it after --, e.g. launch -n 2 -- python -m '
                        'gluon_resnet_v2.train --kvstore dist_sync')
    argv = list(command)
    name = argv[argv.index('-m') + 1] if '-m' in argv[:-1] else os.path.basename(argv[0])
    if name not in TRAINERS:
        return
    kvstores = [a.partition('=')[2] or ''.join(argv[i + 1:i + 2])
                for i, a in enumerate(argv) if a.partition('=')[0] == '--kvstore']
    if kvstores and not kvstores[-1].startswith('dist'):
        raise UserError('--kvstore %s does not use the parameter servers: use --kvstore '
                        'dist_sync' % (kvstores[-1] or 'without a value'))
    if not kvstores and not any(a.partition('=')[0] == '--config' for a in argv):
        raise UserError('the training command has no --kvstore dist_*, so each worker would '
                        'train alone: add --kvstore dist_sync')


def job_hosts(launcher, hostfile, program, user_env):
    """The hosts of an ssh job, or None to run here (after checking `program` is found)."""
    launcher = launcher or ('ssh' if hostfile else 'local')
    if launcher == 'local' and hostfile:
        raise UserError('-H names hosts for --launcher ssh: add --launcher ssh, or drop -H to '
                        'run on this machine')
    if launcher == 'ssh' and not hostfile:
        raise UserError('--launcher ssh needs the hosts: give -H HOSTFILE (one host per line)')
    if hostfile:
        return read_hosts(hostfile)
    if not shutil.which(program, path=user_env.get('PATH')):
        raise UserError('command %s not found: check its name or PATH' % program)
    return None


def read_hosts(path):
    """The hosts of a hostfile: the first word of each line; `#` comments and blank lines
    are ignored."""
    try:
        with open(path) as fh:
            words = [line.split('#', 1)[0].split() for line in fh]
    except OSError as e:
        raise UserError('cannot read hostfile %s (%s): give a file with one host per line'
                        % (path, e.strerror))
    hosts = [w[0] for w in words if w]
    if not hosts:
        raise UserError('hostfile %s names no host: put one host per line' % path)
    return hosts


def address_towards(host):
    """This machine's address on the route to `host` (connecting a UDP socket sends nothing)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((host.split('@')[-1], 9))
            return s.getsockname()[0]
    except OSError:
        raise UserError('cannot tell which address of this machine %s reaches: give it with '
                        '--scheduler-host ADDRESS' % host)


def plan(command, workers, servers, hosts, root, port, user_env):
    """Every Node of the job: the scheduler here; servers and workers round-robin over
    `hosts` (None: all here, over loopback)."""
    common = {'DMLC_PS_ROOT_URI': root, 'DMLC_PS_ROOT_PORT': str(port),
              'DMLC_NUM_SERVER': str(servers), 'DMLC_NUM_WORKER': str(workers)}
    if hosts is None:       # else ps-lite (and MXNet's own launcher) picks a non-loopback one
        common.update(DMLC_NODE_HOST='127.0.0.1', DMLC_INTERFACE='lo')
    # Python buffers the output of a pipe in blocks: unbuffered, lines come out when printed
    common['PYTHONUNBUFFERED'] = user_env.get('PYTHONUNBUFFERED', '1')
    # the scheduler's and servers' loops need no thread pool: one thread unless the user says
    quiet = {'OMP_NUM_THREADS': user_env.get('OMP_NUM_THREADS', '1')}
    python = command[0] if re.fullmatch(r'python[0-9.]*', os.path.basename(command[0])) \
        else sys.executable
    daemon = [python, '-c', 'import mxnet']
    roles = [('scheduler', 0, daemon, quiet)] + \
            [('server', i, daemon, quiet) for i in range(servers)] + \
            [('worker', i, list(command), {}) for i in range(workers)]
    nodes = []
    for role, i, argv, extra in roles:
        env = dict(common, DMLC_ROLE=role, **extra)
        host = None if hosts is None or role == 'scheduler' else hosts[i % len(hosts)]
        if host:
            argv = ['ssh', '-o', 'BatchMode=yes', host, 'cd %s && %s' % (
                shlex.quote(os.getcwd()), shell_line(env, argv))]
        nodes.append(Node(role, i, argv, env, host))
    return nodes


def shell_line(env, argv):
    """`env A=1 B=2 argv...`, quoted for a POSIX shell."""
    return shlex.join(['env'] + ['%s=%s' % kv for kv in sorted(env.items())] + list(argv))


@click.command(context_settings={'max_content_width': 100, 'allow_interspersed_args': False})
@click.option('-n', '--num-workers', type=click.IntRange(min=1), default=None, metavar='N',
              help='number of worker processes, each running COMMAND  [required]')
@click.option('-s', '--num-servers', type=click.IntRange(min=1), default=1, metavar='N',
              show_default=True,
              help='number of parameter-server processes')
@click.option('--launcher', type=click.Choice(['local', 'ssh']), default=None,
              help='local: every process on this machine, over loopback; ssh: servers and '
                   'workers on the hosts of -H  [default: ssh with -H, else local]')
@click.option('-H', '--hostfile', default=None, metavar='FILE',
              help='file with one host per line (ssh; # comments allowed)')
@click.option('--scheduler-host', default=None, metavar='ADDRESS',
              help='address at which the hosts reach this machine, where the scheduler runs '
                   '(ssh)  [default: this machine\'s address on the route to the first host]')
@click.option('--port', type=click.IntRange(1, 65535), default=None, metavar='PORT',
              help='scheduler port  [default: a free port]')
@click.option('--grace', type=click.FloatRange(min=0), default=10, show_default=True,
              metavar='SECONDS',
              help='seconds the workers get after Ctrl-C, and the servers after the workers '
                   'finished, before they are stopped')
@click.option('--dry-run', is_flag=True,
              help='print the command line of every process (with its environment) and exit')
@click.argument('command', nargs=-1, type=click.UNPROCESSED)
def main(num_workers, num_servers, launcher, hostfile, scheduler_host, port, grace, dry_run,
         command):
    """Run COMMAND (given after --) as the workers of an MXNet parameter-server job, with
    its scheduler and servers, e.g.

    \b
      launch -n 2 -- python -m gluon_resnet_v2.train --kvstore dist_sync --run-dir runs/d
      launch -n 4 -s 2 -H hosts.txt -- python -m gluon_resnet_v2.train --kvstore dist_sync

    Output lines are prefixed with the process ([worker 0] ...: the launcher's index, not
    kv.rank). Exit code: 0, else the first failing process's (128+N for signal N), 2 bad
    input, 130 Ctrl-C."""
    user_env = click.get_current_context().obj or dict(os.environ)
    check_command(command)
    if num_workers is None:
        raise UserError('how many workers? give -n WORKERS, e.g. -n 2')
    hosts = job_hosts(launcher, hostfile, command[0], user_env)
    root = scheduler_host or (address_towards(hosts[0]) if hosts else '127.0.0.1')
    with socket.socket() as s:        # a free port (the scheduler runs on this machine)
        s.bind(('127.0.0.1' if hosts is None else '', 0))
        port = port or s.getsockname()[1]
    nodes = plan(command, num_workers, num_servers, hosts, root, port, user_env)
    if dry_run:
        for node in nodes:
            click.echo('%s%s: %s' % (node.label, ' on ' + node.host if node.host else '',
                                     shlex.join(node.argv) if node.host
                                     else shell_line(node.env, node.argv)))
        return
    code = Job(nodes, grace).run(user_env)
    if code:
        sys.exit(code)
    say('done: %d workers finished' % num_workers)


def run():
    """The console command (pyproject's [project.scripts]): as `python -m` runs it."""
    # the job's processes get the user's environment, not main_wrapper's set-up of this one
    main.context_settings['obj'] = dict(os.environ)
    main_wrapper(main)()


if __name__ == '__main__':
    run()
