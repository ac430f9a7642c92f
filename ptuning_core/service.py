"""The door's old address: ``Service`` and ``Settings`` live in ``ptuning_core.app`` (five
façades: runs, library, inspect, data, classroom)."""
from ptuning_core.app import ServerInfo, Service, Settings  # noqa: F401

__all__ = ["Service", "Settings", "ServerInfo"]
