"""Programs the profiler tests run under cProfile and cpuledger's profiler."""
