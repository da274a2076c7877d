"""A Redis Sentinel group on loopback for the failover scenario: a primary, a replica and three
``redis-server --sentinel`` processes on free ports, all with passwords (the data nodes'
``requirepass``/``masterauth``, the sentinels' own ``requirepass``). Short ``down-after-milliseconds``
and ``failover-timeout`` make a failover take a few seconds. Built on servers.Redis."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time

from .servers import Redis, free_port, stop


class Node(Redis):
    """A data node without AOF (what survives a failover is what replication carried),
    optionally a replica of ``replicaof`` (a port); diskless full sync without delay."""

    def __init__(self, password: str, replicaof: int | None = None, port: int | None = None):
        super().__init__(password=password, aof=False)
        self.replicaof = replicaof
        if port:
            self.port = port

    def args(self) -> list[str]:
        a = super().args() + ["--masterauth", self.password, "--repl-diskless-sync", "yes",
                              "--repl-diskless-sync-delay", "0"]
        if self.replicaof:
            a += ["--replicaof", "127.0.0.1", str(self.replicaof)]
        return a


class SentinelGroup:
    def __init__(self, master_name: str = "ocrfleet", password: str = "data-pw", sentinel_password: str = "sent-pw",
                 down_after_ms: int = 1000, failover_timeout_ms: int = 4000):
        self.master_name = master_name
        self.password = password
        self.sentinel_password = sentinel_password
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.dir = tempfile.mkdtemp(prefix="rel-sentinel-")
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinels: list[subprocess.Popen] = []
        self.nodes: list[Node] = []
        self.dead: list[Node] = []

    def url(self, db: int) -> str:
        """The fleet's sentinel:// URL (every entry carries the data password and db)."""
        return ";".join(f"sentinel://:{self.password}@127.0.0.1:{p}/{db}" for p in self.sentinel_ports)

    def start(self) -> "SentinelGroup":
        self.primary = Node(self.password).start()
        self.replica = Node(self.password, replicaof=self.primary.port).start()
        self.nodes = [self.primary, self.replica]
        for i, port in enumerate(self.sentinel_ports):
            conf = os.path.join(self.dir, f"sentinel-{i}.conf")
            m = self.master_name
            with open(conf, "w") as fh:
                fh.write("\n".join([
                    f"port {port}", "bind 127.0.0.1", "daemonize no", f"dir {self.dir}",
                    f"logfile {self.dir}/sentinel-{i}.log", f"requirepass {self.sentinel_password}",
                    f"sentinel sentinel-pass {self.sentinel_password}",
                    f"sentinel monitor {m} 127.0.0.1 {self.primary.port} 2",
                    f"sentinel auth-pass {m} {self.password}",
                    f"sentinel down-after-milliseconds {m} {self.down_after_ms}",
                    f"sentinel failover-timeout {m} {self.failover_timeout_ms}",
                    f"sentinel parallel-syncs {m} 1", ""]))
            self.sentinels.append(subprocess.Popen(["redis-server", conf, "--sentinel"], start_new_session=True,
                                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.wait_ready()
        return self

    def sentinel_client(self, i: int = 0):
        import redis

        return redis.Redis(port=self.sentinel_ports[i], password=self.sentinel_password, socket_timeout=2,
                           decode_responses=True)

    def master_port(self, i: int = 0) -> int | None:
        addr = self.sentinel_client(i).execute_command("SENTINEL", "get-master-addr-by-name", self.master_name)
        return int(addr[1]) if addr else None

    def wait_ready(self, replicas: int = 1, timeout: float = 30.0) -> None:
        """Until every sentinel sees the primary, ``replicas`` replicas and the two other sentinels."""
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                views = [self.sentinel_client(i).sentinel_master(self.master_name) for i in range(3)]
                last = [(v["num-slaves"], v["num-other-sentinels"], v["flags"]) for v in views]
                if all(v["num-slaves"] >= replicas and v["num-other-sentinels"] == 2 and v["flags"] == "master"
                       for v in views):
                    return
            except Exception as exc:  # noqa: BLE001 - not up yet
                last = exc
            time.sleep(0.2)
        raise RuntimeError(f"sentinel group not ready after {timeout} s: {last}\n{self.logs()}")

    def kill_primary(self) -> int:
        """SIGKILL the current primary; returns its port."""
        port = self.master_port()
        (node,) = [n for n in self.nodes if n.port == port]
        node.kill()
        self.nodes.remove(node)
        self.dead.append(node)  # its data dir is removed at stop()
        return port

    def wait_new_primary(self, old_port: int, timeout: float = 30.0) -> int:
        """Until every sentinel names a primary other than ``old_port``; returns its port."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                ports = {self.master_port(i) for i in range(3)}
                if len(ports) == 1 and old_port not in ports:
                    return ports.pop()
            except Exception:  # noqa: BLE001
                pass
            time.sleep(0.05)
        raise RuntimeError(f"no failover after {timeout} s\n{self.logs()}")

    def add_replica(self, port: int | None = None) -> Node:
        """A fresh, empty replica of the current primary (e.g. the dead primary's box coming back)."""
        node = Node(self.password, replicaof=self.master_port(), port=port).start()
        self.nodes.append(node)
        deadline = time.time() + 30
        while node.client().info("replication").get("master_link_status") != "up":
            if time.time() > deadline:
                raise RuntimeError("replica did not sync")
            time.sleep(0.05)
        return node

    def logs(self, n: int = 1500) -> str:
        out = []
        for i in range(3):
            path = f"{self.dir}/sentinel-{i}.log"
            if os.path.exists(path):
                out.append(f"--- sentinel {i}\n" + open(path).read()[-n:])
        return "\n".join(out)

    def stop(self) -> None:
        for p in self.sentinels:
            stop(p)
        for node in self.nodes + self.dead:
            node.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
