"""Test helpers for the local three-node RabbitMQ cluster (scripts/rabbitmq-cluster): a throwaway vhost on it,
and node crashes. The machine's main RabbitMQ node (5672) is never touched."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import uuid
from collections.abc import Iterator

from tests.broker import rabbitmqctl
from tests.processes import ROOT

SCRIPT = ROOT / "scripts" / "rabbitmq-cluster"
NODES = (1, 2, 3)


def node_name(node: int) -> str:
    return f"mice-c{node}@localhost"


def cluster_script(*args: str, timeout: float = 300, check: bool = True) -> str:
    result = subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"scripts/rabbitmq-cluster {' '.join(args)} failed: {result.stderr or result.stdout}")
    return result.stdout


def nodes_running() -> set[int]:
    """The nodes whose Erlang VM answers (`status` fails when none does)."""
    status = cluster_script("status", check=False)
    return {node for node in NODES if f"{node_name(node)} running" in status}


@dataclasses.dataclass
class Cluster:
    """The cluster as a test sees it: the broker URL list of its vhost, and nodes to crash and bring back."""

    vhost: str
    killed: set[int] = dataclasses.field(default_factory=set)

    def url(self, node: int) -> str:
        return f"amqp://guest:guest@127.0.0.1:{5680 + node}/{self.vhost}"

    @property
    def broker_url(self) -> str:
        """CELERY_BROKER_URL for the whole cluster: every node, `;`-separated (kombu's failover list)."""
        return ";".join(self.url(node) for node in NODES)

    def ctl(self, *args: str, node: int | None = None) -> str:
        """rabbitmqctl against a running node of the cluster (node 1 unless it was killed)."""
        target = node or next(n for n in NODES if n not in self.killed)
        return rabbitmqctl("-n", node_name(target), *args, timeout=120)

    def kill_node(self, node: int) -> None:
        """SIGKILL the node's Erlang VM: its connections drop at once, its queue replicas stop."""
        cluster_script("kill", str(node))
        self.killed.add(node)

    def restart_node(self, node: int) -> None:
        """Start a killed node again; it rejoins the cluster and its quorum queue replicas catch up."""
        cluster_script("restart", str(node))
        self.killed.discard(node)

    def quorum_members(self, queue: str) -> dict[str, str]:
        """node name -> Raft state (leader, follower...) of one quorum queue's members."""
        target = next(n for n in NODES if n not in self.killed)
        argv = ["rabbitmq-queues", "-n", node_name(target), "quorum_status", queue, "--vhost", self.vhost]
        result = subprocess.run(
            [*argv, "--formatter", "json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return {member["Node Name"]: member["Raft State"] for member in json.loads(result.stdout)}


@contextlib.contextmanager
def rabbitmq_cluster() -> Iterator[Cluster]:
    """The three-node cluster running (started if it was not) with a fresh vhost; afterwards every killed node is
    started again, the vhost deleted, and the cluster stopped if this started it."""
    was_running = nodes_running() == set(NODES)
    cluster_script("start")
    cluster = Cluster(vhost=f"mice_cluster_{os.getpid()}_{uuid.uuid4().hex[:8]}")
    cluster.ctl("add_vhost", cluster.vhost)
    try:
        cluster.ctl("set_permissions", "-p", cluster.vhost, "guest", ".*", ".*", ".*")
        yield cluster
    finally:
        for node in sorted(cluster.killed):
            with contextlib.suppress(Exception):
                cluster.restart_node(node)
        with contextlib.suppress(Exception):
            cluster.ctl("delete_vhost", cluster.vhost)
        if not was_running:
            cluster_script("stop")
