"""Prometheus metrics of this user's running pools (``rock-vec serve-metrics``).

Each scrape reads every live pool the registry lists through a read-only
``PoolMonitor`` (the counters ``rock-vec top`` shows), so the endpoint runs
beside the training and never touches it. Labels: ``pool`` (its id),
``host`` (``learner`` or ``worker N``). Needs prometheus_client
(``pip install 'rock-vec[monitor]'``).
"""

from __future__ import annotations

from ..segment import registry
from . import monitor


class PoolCollector:
    """A prometheus_client collector over every live pool of this user."""

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        steps = CounterMetricFamily("rock_vec_env_steps", "Env steps taken", labels=["pool", "host"])
        busy = CounterMetricFamily("rock_vec_stepping_seconds", "Seconds spent stepping envs (a worker: inside "
                                   "commands)", labels=["pool", "host"])
        restarts = CounterMetricFamily("rock_vec_worker_restarts", "Times the worker was replaced",
                                       labels=["pool", "host"])
        errors = CounterMetricFamily("rock_vec_worker_errors", "Commands that raised in the worker (its last "
                                     "error: rock-vec top)", labels=["pool", "host"])
        up = GaugeMetricFamily("rock_vec_worker_ready", "1 while the worker is ready, 0 starting, exited or dead",
                               labels=["pool", "host", "state"])
        exits = GaugeMetricFamily("rock_vec_worker_exit_signal", "The signal that ended the worker (0: none)",
                                  labels=["pool", "host"])
        beat = GaugeMetricFamily("rock_vec_heartbeat_age_seconds", "Seconds since the host's last heartbeat",
                                 labels=["pool", "host"])
        episodes = CounterMetricFamily("rock_vec_episodes", "Episodes finished", labels=["pool"])
        last = GaugeMetricFamily("rock_vec_last_episode_return", "Mean over envs of their last finished "
                                 "episode's return", labels=["pool"])
        envs = GaugeMetricFamily("rock_vec_envs", "Envs in the pool", labels=["pool", "backend"])
        for entry in registry.entries():
            if entry["stale"]:
                continue
            snap = monitor.read(entry)
            if snap is None:
                continue  # closed meanwhile, or another user's
            pool = entry["pool"]
            envs.add_metric([pool, entry["backend"]], entry["num_envs"])
            lo, hi = entry.get("learner_envs", [0, 0])
            if hi > lo:
                steps.add_metric([pool, "learner"], snap.learner_steps)
                busy.add_metric([pool, "learner"], snap.learner_busy_ns / 1e9)
                beat.add_metric([pool, "learner"], snap.learner_heartbeat_age_s)
            for w in snap.workers:
                host = f"worker {w.index}"
                steps.add_metric([pool, host], w.env_steps)
                busy.add_metric([pool, host], w.busy_ns / 1e9)
                restarts.add_metric([pool, host], w.restarts)
                errors.add_metric([pool, host], w.errors)
                up.add_metric([pool, host, w.state], 1.0 if w.state == "ready" else 0.0)
                exits.add_metric([pool, host], w.exit_signal)
                beat.add_metric([pool, host], w.heartbeat_age_s)
            episodes.add_metric([pool], int(snap.episodes.sum()))
            ended = snap.episodes > 0
            if ended.any():
                last.add_metric([pool], float(snap.last_return[ended].mean()))
        yield from (envs, steps, busy, restarts, errors, up, exits, beat, episodes, last)


def serve(port: int, addr: str = "127.0.0.1"):
    """Serves ``/metrics`` on ``addr:port`` from a background thread; returns
    prometheus_client's (server, thread).

    Raises:
        RuntimeError: prometheus_client is missing, naming the extra.
    """
    try:
        from prometheus_client import CollectorRegistry, start_http_server
    except ImportError as exc:
        raise RuntimeError("metrics need prometheus_client: pip install 'rock-vec[monitor]'") from exc
    reg = CollectorRegistry()
    reg.register(PoolCollector())
    return start_http_server(port, addr, registry=reg)
