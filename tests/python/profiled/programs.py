"""Small programs covering what a profiler must count like cProfile does.

Each `run_*` function is one program; `PURE_PYTHON` lists those that call no
C builtin (for fast mode, which folds builtins into their callers).
"""

from __future__ import annotations

import functools


# --- recursion ----------------------------------------------------------------
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def run_fib():
    return fib(15)


def is_even(n):
    return True if n == 0 else is_odd(n - 1)


def is_odd(n):
    return False if n == 0 else is_even(n - 1)


def run_mutual():
    return [is_even(k) for k in range(30)]


# --- generators ---------------------------------------------------------------
def countdown(n):
    while n > 0:
        yield n
        n -= 1


def squares(it):
    for x in it:
        yield x * x


def run_generators():
    total = 0
    for v in squares(countdown(20)):
        total += v
    g = countdown(5)
    first = next(g)
    rest = list(g)
    s = sum(x for x in range(10))
    return total, first, rest, s


def run_generators_pure():
    total = 0
    for v in squares(countdown(20)):
        total += v
    for v in countdown(3):
        total += v
    return total


# --- exceptions ---------------------------------------------------------------
class Boom(Exception):
    pass


def fails(n):
    if n % 3 == 0:
        raise Boom(n)
    return n


def catches(n):
    try:
        return fails(n)
    except Boom:
        return -1
    finally:
        _ = n + 1


def deep_raise(depth):
    if depth == 0:
        raise KeyError("deep")
    return deep_raise(depth - 1)


def run_exceptions():
    out = [catches(k) for k in range(10)]
    try:
        deep_raise(5)
    except KeyError:
        out.append(0)
    return out


def run_exceptions_pure():
    out = 0
    for k in range(10):
        out += catches(k)
    try:
        deep_raise(5)
    except KeyError:
        out += 1
    return out


# --- C builtins ----------------------------------------------------------------
def run_builtins():
    items = []
    for i in range(20):
        items.append(str(i))
    n = len(items)
    ordered = sorted(items, key=lambda s: (len(s), s))
    joined = ",".join(ordered)
    d = {"a": 1}
    d.get("a")
    isinstance(n, int)
    return max(n, len(joined)), ", ".join(["x", "y"])


# --- methods ------------------------------------------------------------------
class Account:
    rate = 2

    def __init__(self, balance):
        self.balance = balance

    def deposit(self, amount):
        self.balance += amount
        return self

    @classmethod
    def opened(cls, balance):
        return cls(balance)

    @staticmethod
    def fee(amount):
        return amount // 10

    @property
    def doubled(self):
        return self.balance * self.rate


def run_methods():
    a = Account.opened(10)
    for k in range(5):
        a.deposit(k).deposit(Account.fee(k))
    return a.doubled


# --- decorators ---------------------------------------------------------------
def counted(f):
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        return f(*args, **kwargs)

    return wrapper


def plain_decorator(f):
    def inner(*args):
        return f(*args)

    return inner


@counted
def decorated_add(a, b):
    return a + b


@plain_decorator
@counted
def double_decorated(x):
    return x * 2


def run_decorators():
    total = 0
    for k in range(6):
        total += decorated_add(k, 1) + double_decorated(k)
    return total


# --- lambdas ------------------------------------------------------------------
def run_lambdas():
    sq = lambda x: x * x  # noqa: E731
    add = lambda a, b: a + b  # noqa: E731
    total = 0
    for k in range(8):
        total = add(total, sq(k))
    return total, list(map(lambda v: v + 1, range(4)))


def run_lambdas_pure():
    sq = lambda x: x * x  # noqa: E731
    add = lambda a, b: a + b  # noqa: E731
    total = 0
    for k in range(8):
        total = add(total, sq(k))
    return total


# --- class construction ----------------------------------------------------------
class Registry(type):
    def __new__(mcs, name, bases, ns):
        return super().__new__(mcs, name, bases, ns)

    def __call__(cls, *args):
        return super().__call__(*args)


class Point(metaclass=Registry):
    def __new__(cls, x, y):
        return super().__new__(cls)

    def __init__(self, x, y):
        self.x, self.y = x, y


class Plain:
    def __init__(self, v):
        self.v = v


def run_classes():
    class Local(Point):
        def __init__(self, x, y):
            super().__init__(x, y)

    pts = [Point(k, k) for k in range(4)] + [Local(1, 2)]
    return len(pts), Plain(3).v


def run_classes_pure():
    total = 0
    for k in range(4):
        total += Plain(k).v
    return total


ALL = [
    run_fib,
    run_mutual,
    run_generators,
    run_exceptions,
    run_builtins,
    run_methods,
    run_decorators,
    run_lambdas,
    run_classes,
]

PURE_PYTHON = [
    run_fib,
    run_mutual,
    run_generators_pure,
    run_exceptions_pure,
    run_methods,
    run_decorators,
    run_lambdas_pure,
    run_classes_pure,
]


# --- a call-heavy workload with some work per call (the accuracy test) --------------
def transform(i):
    s = 0
    for k in range(15):
        s += (i * k) % 7
    return s


def medium(n=3000):
    out = []
    for i in range(n):
        out.append(transform(i))
    return out
