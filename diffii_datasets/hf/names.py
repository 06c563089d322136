"""The names a published set is given, checked: a config name and a dataset repository id.

Light (no ``datasets``, no torch), so the command line checks them before loading anything heavy.
"""

from __future__ import annotations

import re
from typing import Any

from diffii_datasets.settings.base import list_settings

__all__ = ["CONFIG_NAME_PATTERN", "REPO_ID_PATTERN", "check_config_name", "check_repo_id"]

CONFIG_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
REPO_ID_PATTERN = re.compile(r"[^/\s]+/[^/\s]+")


def check_config_name(config_name: Any) -> str:
    """A config name ``datasets`` accepts and that is a plain folder name under ``data/``."""
    if not isinstance(config_name, str) or not CONFIG_NAME_PATTERN.fullmatch(config_name) or config_name == "data":
        raise ValueError(
            f"config_name must start with a letter or digit and hold only letters, digits, '.', '_' and '-', "
            f"and must not be 'data' (datasets forbids it; it also forbids any of <>:/\\|?*), got {config_name!r}; "
            f"the paper's settings are {', '.join(s.name for s in list_settings())}")
    return config_name


def check_repo_id(repo_id: Any) -> str:
    """A dataset repository id of the form ``namespace/name``."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if not isinstance(repo_id, str) or not REPO_ID_PATTERN.fullmatch(repo_id):
        raise ValueError(f"repo_id must be 'namespace/name' (a user or organisation, a slash, a repository name), "
                         f"got {repo_id!r}")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ValueError(f"repo_id {repo_id!r} is not a valid Hugging Face repository id: {error}") from None
    return repo_id
