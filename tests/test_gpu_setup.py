"""The GPU set-up, tested without a GPU: the GPU lock and `make gpu`, the preload of the
CUDA wheels' libraries (cuda.py) on fake site-packages trees of tiny shared libraries built
here with gcc, and the `--gpus` checks (devices.py) with fake device reports, including the
driver query against a stand-in libcuda.so.1."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from gluon_resnet_v2 import cuda
from gluon_resnet_v2.errors import UserError

from support import REPO, run_cli

CUDA_WHEELS = {'nvidia-cuda-runtime-cu11', 'nvidia-cublas-cu11', 'nvidia-cudnn-cu11',
               'nvidia-nccl-cu11', 'nvidia-cufft-cu11', 'nvidia-cusolver-cu11',
               'nvidia-curand-cu11', 'nvidia-cuda-nvrtc-cu11', 'nvidia-nvtx-cu11'}

# The load-time DT_NEEDED entries among these libraries, as `readelf -d` shows them in the
# wheels of requirements-gpu.lock; the stubs below have the same ones.
NEEDS = {
    'libcublas.so.11': ['libcublasLt.so.11'],
    'libcudnn_ops_train.so.8': ['libcudnn_ops_infer.so.8'],
    'libcudnn_cnn_infer.so.8': ['libcudnn_ops_infer.so.8'],
    'libcudnn_cnn_train.so.8': ['libcudnn_ops_infer.so.8', 'libcudnn_ops_train.so.8',
                                'libcudnn_cnn_infer.so.8'],
    'libcudnn_adv_infer.so.8': ['libcudnn_ops_infer.so.8'],
    'libcudnn_adv_train.so.8': ['libcudnn_ops_infer.so.8', 'libcudnn_ops_train.so.8',
                                'libcudnn_adv_infer.so.8'],
    'libcusolver.so.11': ['libcublas.so.11', 'libcublasLt.so.11'],
}

needs_gcc = pytest.mark.skipif(shutil.which('gcc') is None, reason='needs gcc to build stubs')


def requirements(path):
    return {line.strip() for line in path.read_text().splitlines()
            if line.strip() and not line.startswith('#')}


# ------------------------------------------------------------------ the lock and the Makefile

def test_gpu_lock_is_the_cpu_lock_with_the_cuda_build_and_its_libraries():
    cpu = requirements(REPO / 'requirements.lock')
    gpu = requirements(REPO / 'requirements-gpu.lock')
    added = {r for r in gpu - cpu if r.startswith('nvidia-')}
    assert gpu - added - {'mxnet-cu112==1.9.1'} == cpu - {'mxnet==1.9.1'}
    assert 'mxnet==1.9.1' in cpu and 'mxnet-cu112==1.9.1' in gpu and 'mxnet==1.9.1' not in gpu
    assert {r.split('==')[0] for r in added} == CUDA_WHEELS and len(added) == len(CUDA_WHEELS)
    assert all(re.fullmatch(r'[\w.-]+==[\d.]+', r) for r in added)          # exact versions
    assert 'nvidia-cudnn-cu11==8.9.6.50' in gpu


def test_every_preloaded_library_comes_from_a_wheel_of_the_lock():
    parts = {'nvidia-%s-cu11' % part.replace('_', '-') for part, _ in cuda.LIBRARIES}
    assert parts == CUDA_WHEELS


def test_the_table_loads_every_library_after_those_it_needs():
    order = [name for _, name in cuda.LIBRARIES]
    assert len(order) == len(set(order))
    weak = {'libnvrtc.so.11.2': ['libnvrtc-builtins.so.11.8']}       # see SOURCES below
    late = [(lib, dep) for lib, deps in list(NEEDS.items()) + list(weak.items()) for dep in deps
            if order.index(dep) > order.index(lib)]
    assert late == []


@pytest.mark.skipif(shutil.which('make') is None, reason='needs make')
@pytest.mark.parametrize('args, venv, lock', [
    (['venv'], '.venv', 'requirements.lock'),
    (['test'], '.venv', 'requirements.lock'),
    (['gpu'], '.venv-gpu', 'requirements-gpu.lock'),
    (['venv', 'GPU=1'], '.venv-gpu', 'requirements-gpu.lock')])
def test_make_gpu_builds_a_separate_environment_from_the_gpu_lock(args, venv, lock):
    env = {k: v for k, v in os.environ.items() if k not in ('GPU', 'MAKEFLAGS', 'MFLAGS')}
    out = subprocess.run(['make', '-n', '-B'] + args, cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=60).stdout
    assert '%s/bin/python -m pip install --quiet -r %s\n' % (venv, lock) in out, out
    other = '.venv-gpu' if venv == '.venv' else '.venv/'
    assert other not in out and ('gpu' in lock) == ('requirements-gpu' in out)


# ------------------------------------------------------------------ the preload (cuda.py)

# libnvrtc refers to its builtins' functions as weak symbols without a DT_NEEDED entry: they
# bind at load time only to a library loaded before it with RTLD_GLOBAL (else nvrtc dlopens
# the builtins later). The stubs do the same, and nvrtc's says whether they bound.
SOURCES = {
    'libnvrtc-builtins.so.11.8': 'int builtins_stub(void) { return 1; }\n',
    'libnvrtc.so.11.2': 'extern int builtins_stub(void) __attribute__((weak));\n'
                        'int builtins_bound(void) { return builtins_stub != 0; }\n',
}


def depth(name):
    """0 for a library that needs none of the others, else 1 + its deepest dependency's."""
    return 1 + max(map(depth, NEEDS[name])) if name in NEEDS else 0


def build(folder, soname, needs=(), search=()):
    """A tiny shared library `folder/soname` with that soname, one exported function and the
    given DT_NEEDED entries (no RUNPATH: only an already loaded library satisfies them)."""
    folder.mkdir(parents=True, exist_ok=True)
    src = folder / (soname + '.c')
    src.write_text(SOURCES.get(soname, 'int stub_%s(void) { return 1; }\n'
                               % re.sub(r'\W', '_', soname)))
    links = ['-L%s' % d for d in search] + ['-l:%s' % n for n in needs]
    subprocess.run(['gcc', '-shared', '-fPIC', '-o', str(folder / soname), str(src),
                    '-Wl,-soname,' + soname, '-Wl,--no-as-needed'] + links, check=True)
    src.unlink()
    return folder / soname


@pytest.fixture(scope='module')
def wheels(tmp_path_factory):
    """A site-packages tree laid out as the CUDA 11 wheels install (nvidia/<part>/lib/),
    with the real DT_NEEDED links between stand-in libraries; {soname: path}."""
    site = tmp_path_factory.mktemp('site')
    paths = {}
    for part, name in sorted(cuda.LIBRARIES, key=lambda e: depth(e[1])):   # dependencies first
        paths[name] = build(site / 'nvidia' / part / 'lib', name, NEEDS.get(name, ()),
                            {paths[n].parent for n in NEEDS.get(name, ())})
    return site, paths


def fake_site(tmp_path, wheels, mxnet_dist):
    """A site folder holding the `mxnet` package with the given dist-info and (a link to)
    the nvidia tree of `wheels`, if any."""
    site = tmp_path / 'site'
    (site / 'mxnet').mkdir(parents=True)
    (site / (mxnet_dist + '.dist-info')).mkdir()
    if wheels:
        (site / 'nvidia').symlink_to(wheels[0] / 'nvidia')
    return site


# In a fresh process: preload from the given folders (or import the package), then report
# what was loaded, in order, and what the process maps.
PRELOAD = '''
import json, os, sys
before = dict(os.environ)
if sys.argv[1] == "import":
    import gluon_resnet_v2
    from gluon_resnet_v2 import cuda
    got = list(cuda.loaded)
else:
    from gluon_resnet_v2 import cuda
    got = cuda.preload(sys.argv[1:])
maps = open("/proc/self/maps").read()
nvrtc = [p for p in got if p.endswith("libnvrtc.so.11.2")]
import ctypes
bound = bool(ctypes.CDLL(nvrtc[0]).builtins_bound()) if nvrtc else None
print(json.dumps({"got": got, "failed": cuda.failed, "builtins_bound": bound, "mapped": sorted(
    {p for p in maps.split() if "/nvidia/" in p}), "mxnet": "mxnet" in sys.modules,
    "env_changed": sorted(k for k in set(before) | set(os.environ)
                          if before.get(k) != os.environ.get(k))}))
'''


def preload_in_child(*args, pythonpath=()):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(p) for p in pythonpath] + [str(REPO)]))
    proc = subprocess.run([sys.executable, '-c', PRELOAD] + [str(a) for a in args], env=env,
                          capture_output=True, text=True, timeout=60, cwd=str(REPO))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@needs_gcc
def test_stubs_depend_on_each_other_so_the_order_matters(wheels):
    """The control: loaded alone, a library whose dependency is not loaded yet fails."""
    site, paths = wheels
    code = 'import ctypes, sys; ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_GLOBAL)'
    for lib, missing in [('libcusolver.so.11', 'libcublas.so.11'),
                         ('libcublas.so.11', 'libcublasLt.so.11')]:
        proc = subprocess.run([sys.executable, '-c', code, str(paths[lib])],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode != 0 and missing in proc.stderr, proc.stderr


@needs_gcc
def test_preload_loads_every_library_in_dependency_order(wheels, tmp_path):
    site = fake_site(tmp_path, wheels, 'mxnet_cu112-1.9.1')
    report = preload_in_child(tmp_path / 'elsewhere', site)
    expected = [str(site / 'nvidia' / part / 'lib' / name) for part, name in cuda.LIBRARIES]
    assert report['got'] == expected and report['failed'] == []
    assert report['builtins_bound'] is True          # RTLD_GLOBAL, builtins before nvrtc
    mapped = {os.path.realpath(p) for p in report['mapped']}
    assert mapped == {os.path.realpath(p) for p in expected}         # all of them, in memory
    assert report['mxnet'] is False and report['env_changed'] == []


@needs_gcc
def test_importing_the_package_preloads_before_anything_else(wheels, tmp_path):
    """The wiring: `import gluon_resnet_v2` alone loads them, imports no MXNet and sets no
    environment variable (tests/test_house.py's guarantees, less this one exception)."""
    site = fake_site(tmp_path, wheels, 'mxnet_cu112-1.9.1')
    report = preload_in_child('import', pythonpath=[site])
    assert len(report['got']) == len(cuda.LIBRARIES) and report['failed'] == []
    assert len(report['mapped']) == len(cuda.LIBRARIES)
    assert report['mxnet'] is False and report['env_changed'] == []


@needs_gcc
@pytest.mark.parametrize('mxnet_dist, with_wheels', [('mxnet-1.9.1', True),       # CPU wheel
                                                     ('mxnet_cu112-1.9.1', False)])
def test_preload_does_nothing_without_the_cuda_build_or_its_wheels(wheels, tmp_path,
                                                                   mxnet_dist, with_wheels):
    site = fake_site(tmp_path, wheels if with_wheels else None, mxnet_dist)
    report = preload_in_child(site)
    assert report == {'got': [], 'failed': [], 'builtins_bound': None, 'mapped': [],
                      'mxnet': False, 'env_changed': []}


@needs_gcc
def test_a_library_that_will_not_load_is_recorded_and_the_rest_still_load(wheels, tmp_path):
    site = fake_site(tmp_path, None, 'mxnet_cu112-1.9.1')
    shutil.copytree(wheels[0] / 'nvidia', site / 'nvidia', symlinks=True)
    broken = site / 'nvidia' / 'nccl' / 'lib' / 'libnccl.so.2'
    broken.write_text('not a shared library\n')
    report = preload_in_child(site)
    assert [p for p, _ in report['failed']] == [str(broken)]
    assert len(report['got']) == len(cuda.LIBRARIES) - 1 and str(broken) not in report['got']


def test_the_cpu_environment_preloads_nothing():
    """This environment (the CPU wheel): importing the package loads no CUDA library."""
    report = preload_in_child('import')
    assert report['got'] == [] and report['mapped'] == [] and report['failed'] == []


# ------------------------------------------------------------------ --gpus checks (devices.py)

def cards(*capabilities):
    from gluon_resnet_v2.devices import Card
    return {i: Card('Fake %d.%d' % c, c) for i, c in enumerate(capabilities)}


@pytest.mark.parametrize('ids, count, have, words', [
    ([0, 0], None, {}, '--gpus 0,0: GPU 0 is listed 2 times: list each GPU once, e.g. --gpus 0'),
    ([1, 0, 1], 2, cards((8, 0), (8, 0)), 'GPU 1 is listed 2 times: list each GPU once, '
                                          'e.g. --gpus 1,0'),
    ([0], None, {}, '--gpus 0: this MXNet build has no CUDA support'),
    ([0], 0, {}, '--gpus 0: no GPU found'),
    ([0, 3], 2, cards((8, 0), (8, 0)), 'GPU 3 not found, this machine has 2 (ids 0..1)'),
    ([0, 1], 2, cards((8, 6), (9, 0)), 'GPU 1 (Fake 9.0) has compute capability 9.0, which '
                                       'mxnet-cu112 1.9.1 cannot run'),
    ([0], 1, cards((10, 0)), 'GPU 0 (Fake 10.0) has compute capability 10.0'),
    ([0], 1, cards((12, 0)), 'GPU 0 (Fake 12.0) has compute capability 12.0'),
    ([0], 1, cards((3, 7)), 'GPU 0 (Fake 3.7) has compute capability 3.7'),
    ([0], 1, cards((4, 9)), 'compute capability 4.9'),
], ids=['repeated', 'repeated-of-3', 'cpu-wheel', 'no-gpu', 'missing', 'hopper', 'blackwell',
        'blackwell-12', 'kepler', 'below-5'])
def test_gpus_that_cannot_run_are_refused_in_one_line_naming_the_gpu(ids, count, have, words):
    from gluon_resnet_v2.devices import check_gpus
    with pytest.raises(UserError) as e:
        check_gpus(ids, count, have)
    message = str(e.value)
    assert words in message and '\n' not in message
    assert message.startswith('--gpus ') and message.count(': ') >= 2      # problem: fix
    assert 'listed 2 times' in message or message.endswith('or use --cpus N')


@pytest.mark.parametrize('capability', [(5, 0), (5, 2), (6, 0), (6, 1), (7, 0), (7, 5), (8, 0),
                                        (8, 6), (8, 7), (8, 9)])
def test_every_card_of_compute_capability_5_to_8_is_accepted(capability):
    from gluon_resnet_v2.devices import check_gpus
    check_gpus([1, 0], 2, cards((8, 0), capability))
    check_gpus([0], 1, {0: None})                 # the driver could not say: not refused


@needs_gcc
def test_the_driver_query_reads_name_and_compute_capability(tmp_path):
    """devices.card against a stand-in libcuda.so.1 with two fake GPUs (8.6 and 9.0)."""
    src = tmp_path / 'cuda.c'
    src.write_text(r'''
#include <stdio.h>
int cuInit(unsigned flags) { return 0; }
int cuDeviceGet(int *dev, int ordinal) { if (ordinal > 1) return 101; *dev = ordinal; return 0; }
int cuDeviceGetAttribute(int *v, int attr, int dev) {
    if (attr == 75) { *v = dev ? 9 : 8; return 0; }
    if (attr == 76) { *v = dev ? 0 : 6; return 0; }
    return 1; }
int cuDeviceGetName(char *name, int len, int dev) {
    snprintf(name, len, dev ? "Fake H100" : "Fake RTX 3090"); return 0; }
''')
    lib = tmp_path / 'libcuda.so.1'
    subprocess.run(['gcc', '-shared', '-fPIC', '-o', str(lib), str(src),
                    '-Wl,-soname,libcuda.so.1'], check=True)
    code = ('import ctypes, sys; ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_GLOBAL)\n'
            'from gluon_resnet_v2.devices import card\n'
            'print([card(i) for i in range(3)])')
    proc = subprocess.run([sys.executable, '-c', code, str(lib)], capture_output=True,
                          text=True, timeout=120, cwd=str(REPO),
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ("[Card(name='Fake RTX 3090', capability=(8, 6)), "
                                   "Card(name='Fake H100', capability=(9, 0)), None]")


def test_train_refuses_a_hopper_card_before_writing_anything(tmp_path, capsys, monkeypatch):
    """The CLI path: what the machine reports goes through devices.contexts to one line."""
    from gluon_resnet_v2 import devices
    from gluon_resnet_v2.train import main
    monkeypatch.setattr(devices, 'gpu_count', lambda: 2)
    monkeypatch.setattr(devices, 'card', lambda g: cards((8, 0), (9, 0))[g])
    code, _, err = run_cli(['--dataset', 'cifar10-sample', '--depth', '8', '--gpus', '0,1',
                            '--run-dir', tmp_path / 'run'], capsys, main)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith('error: --gpus 0,1: GPU 1 (Fake 9.0) has compute capability 9.0')
    assert not (tmp_path / 'run').exists()
