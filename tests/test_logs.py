"""The log of a run: a warning repeated from several places shows once; other warnings still show."""

import subprocess
import sys

from .conftest import ROOT

SCRIPT = """
import warnings
from ssp.launch.logs import setup_logging
setup_logging()

def from_here():
    warnings.warn("TRL currently supports vLLM versions from 0.22.0 to 0.31.0.")

def from_there():
    warnings.warn("TRL currently supports vLLM versions from 0.22.0 to 0.31.0.")

from_here(); from_there(); from_here()
warnings.filterwarnings("default", category=DeprecationWarning)  # a library adding a filter
from_there()
warnings.warn("something else")
"""


def _stderr(env_extra=None):
    import os

    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"} | (env_extra or {})
    return subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=ROOT, env=env, check=True
    ).stderr


def test_a_warning_text_shows_once_per_process():
    err = _stderr()
    assert err.count("TRL currently supports vLLM versions") == 1, err
    assert err.count("something else") == 1, err


def test_pythonwarnings_in_the_environment_wins():
    err = _stderr({"PYTHONWARNINGS": "default"})
    assert err.count("TRL currently supports vLLM versions") > 1, err  # Python shows it per calling line
