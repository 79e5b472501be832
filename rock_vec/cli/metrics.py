"""``rock-vec serve-metrics``: serves /metrics (``rock_vec.observe.metrics``,
a Prometheus collector that reads every live pool at each scrape) until
interrupted.

``rock_vec.observe.metrics`` is imported inside the function, so that it
and the pool monitor it reads through load for this command only;
prometheus_client, which is optional, is imported by ``metrics.serve``
itself, whose RuntimeError names what to install.
"""

from __future__ import annotations

import sys
import time

from .exits import EXIT_FAILED, EXIT_OK


def serve_metrics_command(args) -> int:
    """Serves /metrics on ``args.addr``:``args.port`` until interrupted; returns the exit code."""
    from ..observe import metrics

    try:
        server, _ = metrics.serve(args.port, args.addr)
    except (RuntimeError, OSError) as exc:
        print(f"rock-vec serve-metrics: {exc}", file=sys.stderr)
        return EXIT_FAILED
    host, port = server.server_address[:2]
    print(f"serving rock_vec metrics on http://{host}:{port}/metrics", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        server.shutdown()
