"""``evospike setup lava``: create the Python 3.10 environment the Lava backend runs in."""

from __future__ import annotations

import argparse
import time


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "setup", help="create an environment a backend needs (lava: Python 3.10 + lava-nc)")
    parser.add_argument("what", choices=["lava"], help="the environment to create")
    parser.add_argument("--prefix", default=None,
                        help="where to make the venv (default ~/.cache/evospike/lava-venv)")
    parser.add_argument("--python", default=None,
                        help="the Python 3.10 to build it from (default: EVOSPIKE_LAVA_PYTHON310, "
                             "pyenv's 3.10, python3.10 on PATH)")
    parser.add_argument("--force", action="store_true",
                        help="rebuild the venv even if it already works")
    parser.set_defaults(handler=_setup)


def _setup(args: argparse.Namespace) -> int:
    from evospike.backends.lava.environment import ENV_PYTHON, setup

    t0 = time.perf_counter()
    python = setup(args.prefix, args.python, force=args.force)
    print(f"done in {time.perf_counter() - t0:.0f} s. The lava backend finds this environment "
          f"by itself; to name it explicitly (e.g. in another shell profile):")
    print(f"export {ENV_PYTHON}={python}")
    return 0
