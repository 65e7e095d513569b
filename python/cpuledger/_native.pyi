"""Type stub for cpuledger._native, the C++ core (see python/cpuledger/native/)."""

from typing import Optional, TypedDict

class Reading(TypedDict):
    instructions: Optional[int]
    cycles: Optional[int]
    cpu_ns: int
    source: str
    kernel_included: bool
    multiplex_scale: float

class Counters:
    """CPU counters of the calling thread, from the best source available."""

    def __init__(self, source: str = "") -> None: ...
    def read(self) -> Reading: ...
    def read_primary(self) -> int: ...
    @property
    def source(self) -> str: ...
    @property
    def method(self) -> str: ...
    @property
    def primary_unit(self) -> str: ...
    @property
    def fallbacks(self) -> list[str]: ...
