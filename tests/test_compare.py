"""legacy_symbol.compare.child: one function in a child process, its result read back.
"""
import os

import pytest

from gluon_resnet_v2.errors import UserError
from legacy_symbol.compare import child

from support import REPO


@pytest.fixture(autouse=True)
def exact_backend(monkeypatch):
    """The parent environment of the comparisons (MXNET_SUBGRAPH_BACKEND=NONE), restored
    by monkeypatch after each test."""
    monkeypatch.setenv('MXNET_SUBGRAPH_BACKEND', 'NONE')
    monkeypatch.delenv('MXNET_BACKWARD_DO_MIRROR', raising=False)


# ------------------------------------------------------------------ child.py

def child_env(**extra):
    """This process's environment, with the tests' support module importable."""
    return dict(os.environ, PYTHONPATH=str(REPO / 'tests'), **extra)


def test_child_result_round_trips_and_the_child_sees_the_env_given():
    kwargs = {'numbers': [1, 2.5, -3], 'text': 'ünïcode "quoted"', 'nested': {'none': None,
                                                                           'flag': True}}
    env = child_env(GRV_CHILD_PROBE='a value with spaces')
    del env['MXNET_SUBGRAPH_BACKEND']           # a variable removed stays removed
    value = child.run('support:child_echo', kwargs, env)
    assert value['kwargs'] == kwargs
    assert value['env'] == env


def test_child_user_error_comes_back_as_one_line():
    with pytest.raises(UserError) as caught:
        child.run('support:child_refuse', {'message': 'bad  input:\n    the fix'}, child_env())
    assert str(caught.value) == 'bad input: the fix'


def test_child_crash_comes_back_with_its_stderr():
    with pytest.raises(child.ChildFailed) as caught:
        child.run('support:child_crash', {'message': 'a clue on stderr'}, child_env())
    failed = caught.value
    assert isinstance(failed, RuntimeError) and not isinstance(failed, UserError)
    assert failed.returncode == 1 and 'a clue on stderr' in failed.stderr
    assert 'RuntimeError: the child crashed' in str(failed)


def test_child_exit_2_without_a_user_error_is_a_failure():
    """Exit code 2 alone (a process killed in the middle, a C library's exit) is no
    UserError: only the result file the child writes for one makes it so."""
    with pytest.raises(child.ChildFailed) as caught:
        child.run('os:_exit', {'status': 2})
    assert caught.value.returncode == 2
