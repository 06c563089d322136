"""Helpers shared by the test modules: fast configs, fake dataset layouts, CLI and worker launchers.

``tests`` is a package (``setup.cfg`` puts the repository root on ``sys.path``), so
test modules import these as ``from tests.helpers.augment import make_wrapper``;
worker processes run as ``python -m tests.helpers.augment_worker`` from the root.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository root: the working directory and ``PYTHONPATH`` of worker processes."""
