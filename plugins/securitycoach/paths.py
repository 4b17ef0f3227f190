"""Where the project's files live: include/ (SQL, config) and the embedded data folder."""

from __future__ import annotations

import os
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parents[2]


def project_root() -> Path:
    """The checkout (or image directory) holding include/ and data/."""
    return Path(os.environ.get("SECURITYCOACH_HOME", _REPO_ROOT))


def include_dir() -> Path:
    return project_root() / "include"


def sql_dir() -> Path:
    return include_dir() / "sql"


def data_dir() -> Path:
    """The embedded default's data folder (SQLite warehouse, reports)."""
    return Path(os.environ.get("SECURITYCOACH_DATA_DIR", project_root() / "data"))


def upload_dir() -> Path:
    """The only folder the mapping-upload DAG reads CSV files from."""
    return Path(os.environ.get("SECURITYCOACH_UPLOAD_DIR", data_dir() / "uploads"))


def mapping_rules_path() -> Path:
    return Path(os.environ.get("SECURITYCOACH_MAPPING_RULES", include_dir() / "config" / "mapping_rules.yaml"))


def detection_rules_path() -> Path:
    return Path(os.environ.get("SECURITYCOACH_DETECTION_RULES", include_dir() / "config" / "detection_rules.yaml"))


def campaigns_path() -> Path:
    return Path(os.environ.get("SECURITYCOACH_CAMPAIGNS", include_dir() / "config" / "campaigns.yaml"))


def tenants_path() -> Path:
    """The tenants file: one sync DAG (and reference DAG) per entry."""
    return Path(os.environ.get("SECURITYCOACH_TENANTS", include_dir() / "config" / "tenants.yaml"))
