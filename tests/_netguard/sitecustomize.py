"""Guards every Python process the test session starts (this folder is on its PYTHONPATH).

Kernels run by nbclient and nbval, JupyterLab and its kernels, the command-line
stand-in: each imports this at start-up and so refuses, as the test process does, any
traffic beyond loopback (see ``netguard.py``).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys

import netguard

netguard.install(log=os.environ.get(netguard.LOG_VARIABLE))

# this module shadows any other sitecustomize on the path (a distribution's, a venv's):
# run that one too, as Python would have without us
_here = os.path.dirname(os.path.abspath(__file__))
_rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]
_spec = importlib.machinery.PathFinder.find_spec("sitecustomize", _rest)
if _spec is not None and _spec.loader is not None:
    _other = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_other)
