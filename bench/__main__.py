"""`python -m bench [scenario …] [--scale small|full] [--profile]`.

Runs the chosen scenarios (default: all, at full scale) and prints the machine first,
then each scenario's figures. `--scale small` is a quick smoke run of the harness
(under 30 s in all); `--profile` samples the server with py-spy during the runtime
scenarios and prints what dominates. See bench/README.md for targets and results.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from datetime import UTC, datetime

from bench.machine import describe, revision

SCENARIOS = {
    "burst": "bench.burst",
    "sustained": "bench.sustained",
    "startup": "bench.startup",
    "history": "bench.history",
    "jobs-api": "bench.jobs_api",
    "stages": "bench.stages",
    "pings": "bench.pings",
    "alerts": "bench.alerts",
    "pages": "bench.pages",
}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "scenarios",
        nargs="*",
        choices=[*SCENARIOS, []],
        metavar="scenario",
        help=f"any of: {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument("--scale", choices=("small", "full"), default="full")
    parser.add_argument(
        "--profile", action="store_true", help="sample the server with py-spy while it runs"
    )
    args = parser.parse_args(argv)
    args.scenarios = args.scenarios or list(SCENARIOS)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(sys.argv[1:] if argv is None else argv)
    print(describe(), flush=True)
    print(revision(), flush=True)
    from bench.harness import server_loop

    print(
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; scale: {args.scale}; "
        f"server event loop: {server_loop()}",
        flush=True,
    )
    code = revision()
    for name in args.scenarios:
        module = importlib.import_module(SCENARIOS[name])
        started = time.monotonic()
        print(f"== {name}", flush=True)
        if revision() != code:  # another engineer changed src/ meanwhile: say so
            code = revision()
            print(f"   (now measuring {code})", flush=True)
        for line in module.main(args):
            print(line, flush=True)
        print(f"   ({name}: {time.monotonic() - started:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
