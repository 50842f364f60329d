"""screening: the batch pipeline behind the health-code popups (see README.md)."""

from pathlib import Path

# The repository root: schemas/, policy.toml and the jar cache live here (the project is installed editable).
ROOT = Path(__file__).resolve().parent.parent
