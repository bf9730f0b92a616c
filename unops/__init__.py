"""unops: the operations library of the ICT office that serves the permanent missions."""

from pathlib import Path

__version__ = "0.1.0"

# The repository's root: inventory/, deploys/ and monitors/ are read from here as data.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
