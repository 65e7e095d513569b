"""cpuledger: the CPU bill of every request of a Python web service.

The native core (C++) lives in ``cpuledger._native``; this package holds only
the glue that must be Python: ``cpuledger.django``, ``cpuledger.wsgi`` and
``cpuledger.asgi`` (each imports only its own framework), and ``span()`` to
time a block of a sampled request as db, cache or a custom name.
"""

from cpuledger._config import ConfigError
from cpuledger._native import Counters
from cpuledger._runtime import span

__all__ = ["ConfigError", "Counters", "span", "__version__"]
__version__ = "0.1.0"
