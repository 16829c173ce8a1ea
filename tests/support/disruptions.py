"""What a deploy or a crash does to a topology's worker ``worker-a``: each returns when the old
worker was gone (``time.time()``), a new one (``worker-b``) started or standing by."""

from __future__ import annotations

import signal
import time

from tests.support.processes import worker
from tests.support.topologies import Topology


def start_worker_b(topology: Topology, *, standby: bool) -> None:
    """The second worker, for both shards; its log is named after the first's."""
    name = topology.processes["worker-a"].name.removesuffix("-a") + "-b"
    topology.processes["worker-b"] = worker(name, topology.env, 0, 1, standby=standby)


def kill_and_restart(topology: Topology) -> float:
    """kill -9 the worker; start a new one a moment later."""
    topology.processes["worker-a"].kill(signal.SIGKILL)
    gone_at = time.time()
    time.sleep(2)
    start_worker_b(topology, standby=False)
    return gone_at


def stop_and_restart(topology: Topology) -> float:
    """SIGTERM the worker (a graceful stop, no standby); start a new one a moment later."""
    topology.processes["worker-a"].stop(timeout=40)
    gone_at = time.time()
    assert "stopped" in topology.processes["worker-a"].log(), "the worker did not stop gracefully"
    time.sleep(2)
    start_worker_b(topology, standby=False)
    return gone_at


def rolling_deploy(topology: Topology) -> float:
    """Start the new worker as a standby, then stop the old one gracefully (SIGTERM)."""
    start_worker_b(topology, standby=True)
    time.sleep(1)
    topology.processes["worker-a"].stop(timeout=40)
    gone_at = time.time()
    assert "stopped" in topology.processes["worker-a"].log(), "the old worker did not stop gracefully"
    topology.processes["worker-b"].wait_for_log("serving shard 1")
    return gone_at


def kill_with_standby(topology: Topology) -> float:
    """kill -9 the serving worker while a standby waits: it takes over when the lease runs out."""
    start_worker_b(topology, standby=True)
    time.sleep(1)
    topology.processes["worker-a"].kill(signal.SIGKILL)
    gone_at = time.time()
    topology.processes["worker-b"].wait_for_log("serving shard 1")
    return gone_at
