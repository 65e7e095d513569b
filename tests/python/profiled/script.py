"""A script for `python -m cpuledger.profile`: prints its argv, then works."""

import sys


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def work(n):
    return sorted(fib(k) for k in range(n))


def main():
    print("argv:", sys.argv[1:])
    print("result:", work(int(sys.argv[1]) if len(sys.argv) > 1 else 12)[-1])


if __name__ == "__main__":
    main()
