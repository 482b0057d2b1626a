"""A real Ray cluster on this machine for the Ray executor's tests: a head with no sandboxes, a
worker on the host, and a worker in a network namespace of its own (its own address, reached
over a veth pair the fixture creates and removes).

Every node is a `ray start --block` process in its own session, so killing a node is killing its
process group (raylet, object manager, its workers), as a machine that dies would. Each node gets
its own ports; the head's system config makes a lost node noticed within seconds.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
SANDBOXES_PER_WORKER = 2
AUTH_TOKEN = secrets.token_hex(32)  # Ray's token authentication, one token for the test cluster
AUTH_ENV = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": AUTH_TOKEN}
# Ray reads these once, when it is first imported: the test process (the driver) needs them
# before any `import ray` (import this module first).
os.environ.update(AUTH_ENV)
NODE_ENV = {**AUTH_ENV, "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_raylet_start_wait_time_s": "120"}  # a loaded 2-core machine starts a raylet slowly
SYSTEM_CONFIG = {  # detect a dead or cut-off node in a few seconds (defaults: tens of seconds)
    "health_check_initial_delay_ms": 1000, "health_check_period_ms": 1000, "health_check_timeout_ms": 1000,
    "health_check_failure_threshold": 3, "gcs_rpc_server_reconnect_timeout_s": 8,
    # a connection to a cut-off node is given up after 4 s of silence (defaults: 300 + 120 s)
    "grpc_client_keepalive_time_ms": 2000, "grpc_client_keepalive_timeout_ms": 2000,
}


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True)


@dataclass
class Namespace:
    """A network namespace joined to the host by a veth pair: host side .1, namespace side .2."""

    name: str
    host_if: str
    ns_if: str
    subnet: str  # e.g. 10.213.7

    @property
    def host_ip(self) -> str:
        return f"{self.subnet}.1"

    @property
    def ns_ip(self) -> str:
        return f"{self.subnet}.2"

    @classmethod
    def create(cls) -> "Namespace":
        tag = secrets.token_hex(3)
        made = cls(f"ctxeval-ray-{tag}", f"cxr{tag}h", f"cxr{tag}n", f"10.213.{secrets.randbelow(200) + 20}")
        sh("ip", "netns", "add", made.name)
        sh("ip", "link", "add", made.host_if, "type", "veth", "peer", "name", made.ns_if)
        sh("ip", "link", "set", made.ns_if, "netns", made.name)
        sh("ip", "addr", "add", f"{made.host_ip}/24", "dev", made.host_if)
        sh("ip", "link", "set", made.host_if, "up")
        for command in (["ip", "addr", "add", f"{made.ns_ip}/24", "dev", made.ns_if],
                        ["ip", "link", "set", made.ns_if, "up"], ["ip", "link", "set", "lo", "up"],
                        ["ip", "route", "add", "default", "via", made.host_ip]):  # the host's own address
            sh("ip", "netns", "exec", made.name, *command)
        return made

    def link(self, up: bool) -> None:
        sh("ip", "link", "set", self.host_if, "up" if up else "down")

    def remove(self) -> None:
        sh("ip", "link", "del", self.host_if, check=False)
        sh("ip", "netns", "del", self.name, check=False)


@dataclass
class Node:
    name: str
    ip: str
    argv: list[str]
    log: Path
    process: subprocess.Popen | None = None

    def start(self) -> None:
        handle = self.log.open("ab")
        self.process = subprocess.Popen(self.argv, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
                                        env={**os.environ, **NODE_ENV})

    def session(self) -> list[int]:
        """The live processes of this node: every one in its session (Ray puts its workers in
        process groups of their own, all in the session `ray start` began)."""
        if self.process is None:
            return []
        listing = sh("ps", "-eo", "pid=,sid=,stat=", check=False).stdout.splitlines()
        return [int(pid) for pid, sid, stat in (line.split() for line in listing)
                if sid == str(self.process.pid) and not stat.startswith("Z")]

    def kill(self) -> None:
        """The node dies at once, with everything it started, as a machine that fails would."""
        deadline = time.monotonic() + 30
        while (pids := self.session()) and time.monotonic() < deadline:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        if self.process is not None:
            self.process.wait(timeout=30)

    def running_episodes(self) -> int:
        """Ray workers of this node executing an episode now (their process title names the task)."""
        if self.process is None:
            return 0
        listing = sh("ps", "-eo", "sid=,args=", check=False).stdout.splitlines()
        return sum(1 for line in listing if line.split(None, 1)[0] == str(self.process.pid)
                   and "ray::_remote_episode" in line)


def host_ip() -> str:
    """The address Ray picks for this host (the driver's too): the head and host worker use it,
    and the namespaced worker reaches it through its veth (its default route)."""
    import ray
    return ray.util.get_node_ip_address()


@dataclass
class Cluster:
    namespace: Namespace
    folder: Path
    port: int
    head: Node | None = None
    workers: dict[str, Node] = field(default_factory=dict)
    ip: str = field(default_factory=host_ip)

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    def node_argv(self, index: int, ip: str, resources: dict[str, int]) -> list[str]:
        base = 21000 + index * 100
        return [RAY, "start", "--block", f"--node-ip-address={ip}", "--num-cpus=1", "--disable-usage-stats",
                f"--resources={json.dumps(resources)}", f"--node-manager-port={base}",
                f"--object-manager-port={base + 1}", f"--dashboard-agent-listen-port={base + 2}",
                f"--dashboard-agent-grpc-port={base + 3}", f"--metrics-export-port={base + 4}",
                f"--runtime-env-agent-port={base + 5}", f"--min-worker-port={base + 10}",
                f"--max-worker-port={base + 60}"]

    def start(self) -> None:
        head = self.node_argv(0, self.ip, {})
        head += ["--head", f"--port={self.port}", "--include-dashboard=false",
                 f"--system-config={json.dumps(SYSTEM_CONFIG)}"]
        self.head = Node("head", self.ip, head, self.folder / "head.log")
        self.head.start()
        self.wait_for_nodes(1)
        self.add_worker("host", 1, self.ip, [])
        self.wait_for_nodes(2)
        self.add_worker("netns", 2, self.namespace.ns_ip, ["ip", "netns", "exec", self.namespace.name])
        self.wait_for_nodes(3)

    def add_worker(self, name: str, index: int, ip: str, prefix: list[str]) -> None:
        argv = prefix + self.node_argv(index, ip, {"ctxeval_sandbox": SANDBOXES_PER_WORKER})
        node = Node(name, ip, argv + [f"--address={self.address}"], self.folder / f"{name}.log")
        self.workers[name] = node
        node.start()

    def restart_worker(self, name: str) -> None:
        old = self.workers[name]
        old.kill()
        old.start()
        self.wait_for_nodes(3)

    def alive_nodes(self) -> list[dict]:
        probe = ("import json, ray; ray.init(address=%r, log_to_driver=False, configure_logging=False); "
                 "print(json.dumps([n for n in ray.nodes() if n['Alive']]))" % self.address)
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                              env={**os.environ, **AUTH_ENV})
        return json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 and done.stdout.strip() else []

    def wait_for_nodes(self, count: int, timeout: float = 120.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            nodes = self.alive_nodes()
            if len(nodes) >= count:
                return nodes
            time.sleep(1.0)
        raise RuntimeError(f"the Ray cluster did not reach {count} live nodes; logs in {self.folder}")

    def node_ids(self) -> dict[str, str]:
        """Worker name -> Ray node id (by address: the host worker shares the head's)."""
        nodes = self.alive_nodes()
        by_ip_resources = {(n["NodeManagerAddress"], bool(n["Resources"].get("ctxeval_sandbox"))): n["NodeID"]
                           for n in nodes}
        return {name: by_ip_resources.get((node.ip, True), "") for name, node in self.workers.items()}

    def stop(self) -> None:
        for node in [*self.workers.values(), self.head]:
            if node is not None:
                node.kill()
