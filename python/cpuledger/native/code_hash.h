// python/cpuledger/native/code_hash.h — a hash of what a Python function's
// code does, for record.ProfileFunction.code_hash: the detectors test first
// the functions whose code a rollout changed.
//
//   const uint64_t h = CodeHash(code);  // 0: could not tell
//
// Two versions of a function hash differently; the same code hashes the same
// at another line of its file (lines were added above it), under another
// file name, in another process and with another PYTHONHASHSEED, on the same
// CPython minor version (each minor version compiles to its own bytecode, so
// upgrading CPython changes every hash).
//
// Hashed (XXH3-64 over a tagged, length-prefixed serialization):
//   - co_name; co_argcount, co_posonlyargcount, co_kwonlyargcount; the
//     co_flags that describe the function (CO_OPTIMIZED ... CO_ASYNC_GENERATOR,
//     not the __future__ flags);
//   - the bytecode as co_code returns it: de-specialized and de-instrumented
//     (the same bytes after the function ran many times, and while
//     sys.monitoring, setprofile or settrace is active, on 3.11-3.13);
//   - co_exceptiontable (handler ranges, no line numbers);
//   - co_names, co_varnames, co_cellvars, co_freevars;
//   - co_consts, recursively: None, True, False, Ellipsis by identity; int,
//     float (its bits: 0.0 and -0.0 differ, as the compiler keeps them
//     apart), complex, str (its code points), bytes by value; tuples element
//     by element; slices by start/stop/step; frozensets independent of their
//     iteration order (which depends on the string hash seed); nested code
//     objects by their own CodeHash(). Any other type (possible only through
//     code.replace()) by its type name alone. A docstring is co_consts[0], so
//     editing one changes the hash.
// Not hashed: co_filename, co_qualname, co_firstlineno, the line table, and
// anything address- or seed-dependent (no repr(), no hash()).
#pragma once

#include <Python.h>

#include <cstdint>

namespace cpuledger::python {

// CodeHash() — `code`'s hash as above. RETURNS: never 0 for a hash (a 0 from
// XXH3 becomes 1); 0 when it cannot be computed (a Python error, which is
// cleared; constants nested deeper than 64 levels).
// REQUIRES: the GIL, and no exception set. Runs no Python code.
// COST: one pass over the code object and its constants (a few us for a
// typical function): compute it once per code object.
uint64_t CodeHash(PyCodeObject* code);

}  // namespace cpuledger::python
