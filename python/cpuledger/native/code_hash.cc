// python/cpuledger/native/code_hash.cc — CodeHash(): a code object's parts
// serialized (a tag byte per value, lengths before contents, integers as
// little-endian 64-bit words so hosts of either byte order agree), then XXH3.
#include "native/code_hash.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace cpuledger::python {

namespace {

// Deeper constants than this (tuples of tuples ..., code in code ...) are
// not hashed at all: the compiler makes none, and the C stack stays small.
constexpr int kMaxDepth = 64;

// The co_flags that say what kind of function this is; the __future__
// flags above them say how its module was compiled, not what it does.
constexpr int kFunctionFlags = CO_OPTIMIZED | CO_NEWLOCALS | CO_VARARGS | CO_VARKEYWORDS |
                               CO_NESTED | CO_GENERATOR | CO_COROUTINE | CO_ITERABLE_COROUTINE |
                               CO_ASYNC_GENERATOR;

// Tag — the first byte of every value, so that values of two types (or a
// tuple and its elements laid out flat) never serialize alike.
enum Tag : char {
  kNone = 'n',
  kTrue = 't',
  kFalse = 'f',
  kEllipsis = 'e',
  kInt = 'i',
  kBigInt = 'I',  // past 64 bits: its hex digits, which no digit limit refuses
  kFloat = 'd',
  kComplex = 'j',
  kStr = 's',
  kBytes = 'b',
  kTuple = '(',
  kFrozenset = '{',
  kSlice = ':',
  kCode = 'c',
  kOther = '?',  // another type: its name only
};

// Digest() — XXH3 of `bytes`, never 0 (0 means "unknown" on the wire).
uint64_t Digest(std::string_view bytes) {
  const uint64_t h = XXH3_64bits(bytes.data(), bytes.size());
  return h == 0 ? 1 : h;
}

// Serializer — the bytes CodeHash() hashes. Code() and Value() RETURN false
// on a Python error (left set) or past kMaxDepth; the bytes are then partial.
class Serializer {
 public:
  bool Code(PyCodeObject* code, int depth);
  bool Value(PyObject* v, int depth);
  const std::string& bytes() const { return out_; }

 private:
  void Put(Tag tag) { out_.push_back(tag); }
  // Mark() — a value that is its tag alone.
  bool Mark(Tag tag) {
    Put(tag);
    return true;
  }
  void Word(uint64_t v);
  void Raw(Tag tag, std::string_view bytes);
  bool Int(PyObject* v);
  bool Str(Tag tag, PyObject* v);
  bool Tuple(PyObject* v, int depth);
  bool Frozenset(PyObject* v, int depth);
  bool NewRef(PyObject* v, int depth);

  std::string out_;
};

void Serializer::Word(uint64_t v) {
  for (int i = 0; i < 8; ++i) out_.push_back(static_cast<char>(v >> (8 * i)));
}

void Serializer::Raw(Tag tag, std::string_view bytes) {
  Put(tag);
  Word(bytes.size());
  out_.append(bytes);
}

bool Serializer::Int(PyObject* v) {
  int overflow = 0;
  const long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
  if (x == -1 && PyErr_Occurred()) return false;
  if (overflow == 0) {
    Put(kInt);
    Word(static_cast<uint64_t>(x));
    return true;
  }
  PyObject* hex = PyNumber_ToBase(v, 16);
  if (hex == nullptr) return false;
  const bool ok = Str(kBigInt, hex);
  Py_DECREF(hex);
  return ok;
}

// Str() — the code points, each as a word: the same whichever PEP 393 kind
// (1, 2 or 4 bytes a character) holds them.
bool Serializer::Str(Tag tag, PyObject* v) {
#if PY_VERSION_HEX < 0x030C0000
  if (PyUnicode_READY(v) < 0) return false;
#endif
  const int kind = PyUnicode_KIND(v);
  const void* data = PyUnicode_DATA(v);
  const Py_ssize_t n = PyUnicode_GET_LENGTH(v);
  Put(tag);
  Word(static_cast<uint64_t>(n));
  for (Py_ssize_t i = 0; i < n; ++i) Word(PyUnicode_READ(kind, data, i));
  return true;
}

bool Serializer::Tuple(PyObject* v, int depth) {
  const Py_ssize_t n = PyTuple_GET_SIZE(v);
  Put(kTuple);
  Word(static_cast<uint64_t>(n));
  for (Py_ssize_t i = 0; i < n; ++i)
    if (!Value(PyTuple_GET_ITEM(v, i), depth + 1)) return false;
  return true;
}

// Frozenset() — each element's digest, sorted: iteration order follows the
// elements' hash(), which for strings depends on PYTHONHASHSEED.
bool Serializer::Frozenset(PyObject* v, int depth) {
  std::vector<uint64_t> digests;
  PyObject* it = PyObject_GetIter(v);
  if (it == nullptr) return false;
  bool ok = true;
  while (PyObject* item = ok ? PyIter_Next(it) : nullptr) {
    Serializer element;
    ok = element.Value(item, depth + 1);
    Py_DECREF(item);
    digests.push_back(Digest(element.bytes()));
  }
  Py_DECREF(it);
  if (!ok || PyErr_Occurred()) return false;
  std::sort(digests.begin(), digests.end());
  Put(kFrozenset);
  Word(digests.size());
  for (uint64_t d : digests) Word(d);
  return true;
}

// NewRef() — Value() of a new reference (nullptr: an error), released.
bool Serializer::NewRef(PyObject* v, int depth) {
  if (v == nullptr) return false;
  const bool ok = Value(v, depth);
  Py_DECREF(v);
  return ok;
}

bool Serializer::Value(PyObject* v, int depth) {
  if (depth > kMaxDepth) return false;
  if (v == Py_None) return Mark(kNone);
  if (v == Py_True) return Mark(kTrue);
  if (v == Py_False) return Mark(kFalse);
  if (v == Py_Ellipsis) return Mark(kEllipsis);
  if (PyLong_CheckExact(v)) return Int(v);
  if (PyUnicode_CheckExact(v)) return Str(kStr, v);
  if (PyTuple_CheckExact(v)) return Tuple(v, depth);
  if (PyCode_Check(v)) return Code(reinterpret_cast<PyCodeObject*>(v), depth + 1);
  if (PyFrozenSet_CheckExact(v)) return Frozenset(v, depth);
  if (PyBytes_CheckExact(v)) {
    Raw(kBytes, std::string_view(PyBytes_AS_STRING(v), static_cast<size_t>(PyBytes_GET_SIZE(v))));
    return true;
  }
  if (PyFloat_CheckExact(v)) {
    const double d = PyFloat_AS_DOUBLE(v);
    uint64_t bits;
    std::memcpy(&bits, &d, sizeof bits);
    Put(kFloat);
    Word(bits);
    return true;
  }
  if (PyComplex_CheckExact(v)) {
    const Py_complex c = PyComplex_AsCComplex(v);
    uint64_t bits[2];
    std::memcpy(bits, &c, sizeof bits);
    Put(kComplex);
    Word(bits[0]);
    Word(bits[1]);
    return true;
  }
  if (PySlice_Check(v)) {
    auto* s = reinterpret_cast<PySliceObject*>(v);
    Put(kSlice);
    return Value(s->start, depth + 1) && Value(s->stop, depth + 1) && Value(s->step, depth + 1);
  }
  Raw(kOther, Py_TYPE(v)->tp_name);
  return true;
}

bool Serializer::Code(PyCodeObject* code, int depth) {
  if (depth > kMaxDepth || !PyUnicode_Check(code->co_name)) return false;
  Put(kCode);
  Str(kStr, code->co_name);
  for (int n : {code->co_argcount, code->co_posonlyargcount, code->co_kwonlyargcount,
                code->co_flags & kFunctionFlags})
    Word(static_cast<uint64_t>(n));
  // PyCode_GetCode(): the de-specialized, de-instrumented bytes of co_code.
  PyObject* bytecode = PyCode_GetCode(code);
  if (bytecode == nullptr) return false;
  const bool ok = Value(bytecode, depth);
  Py_DECREF(bytecode);
  return ok && Value(code->co_exceptiontable, depth) && Value(code->co_names, depth) &&
         NewRef(PyCode_GetVarnames(code), depth) && NewRef(PyCode_GetCellvars(code), depth) &&
         NewRef(PyCode_GetFreevars(code), depth) && Value(code->co_consts, depth);
}

}  // namespace

uint64_t CodeHash(PyCodeObject* code) {
  Serializer s;
  if (!s.Code(code, 0)) {
    PyErr_Clear();
    return 0;
  }
  return Digest(s.bytes());
}

}  // namespace cpuledger::python
