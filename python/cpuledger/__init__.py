"""cpuledger: the CPU bill of every request of a Python web service.

The native core (C++) lives in ``cpuledger._native``; this package holds only
the glue that must be Python: ``cpuledger.django``, ``cpuledger.wsgi`` and
``cpuledger.asgi`` (each imports only its own framework), and ``span()`` to
time a block of a sampled request as db, cache or a custom name.
"""

from cpuledger._config import ConfigError
from cpuledger._native import Counters
from cpuledger._runtime import span
from cpuledger._version import version as __version__  # written by the build, from pyproject.toml

__all__ = ["ConfigError", "Counters", "span", "__version__"]
