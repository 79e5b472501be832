"""``rock-vec image build``: the docker backend's worker image, built by
``rock_vec.backends.image``; this module only reads the command line and
reports.

The backend's module is imported inside the function: it is needed by this
command only.
"""

from __future__ import annotations

import sys

from .exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE


def image_command(args, parser) -> int:
    """Runs ``rock-vec image`` (``build`` its only subcommand); returns the exit code."""
    if args.image_command != "build":
        parser.commands["image"].print_usage(sys.stderr)
        print("rock-vec image: error: a subcommand is required (build)", file=sys.stderr)
        return EXIT_USAGE
    from ..backends import image

    try:
        tag = image.build(args.env_package, tag=args.tag, base=args.base or image.DEFAULT_BASE)
    except RuntimeError as exc:
        print(f"rock-vec image build: failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"built {tag}")
    return EXIT_OK
