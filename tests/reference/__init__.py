"""Ports of the authors' code, used only as reference implementations in side-by-side tests.

Each module names its source (repository, commit, file and lines) and lists, in its
header, every edit from the original. Library code never imports from here.
"""
