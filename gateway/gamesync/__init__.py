"""GameSync: push game snapshots to players over websockets."""

__all__ = ["__version__"]

__version__ = "0.1.0"
