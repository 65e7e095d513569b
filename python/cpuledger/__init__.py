"""cpuledger: the CPU bill of every request of a Python web service.

The native core (C++) lives in ``cpuledger._native``; this package holds only
the glue that must be Python.
"""

from cpuledger._native import Counters

__all__ = ["Counters", "__version__"]
__version__ = "0.1.0"
