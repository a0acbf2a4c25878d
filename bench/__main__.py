"""`python -m bench`: run every benchmark and print its figures and the machine."""

from __future__ import annotations

from bench import jobs_api
from bench.machine import describe


def main() -> None:
    print(describe())
    for line in jobs_api.main():
        print(line)


if __name__ == "__main__":
    main()
