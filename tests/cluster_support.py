"""Real Redis topologies on loopback ports for the tests: a 3x2 Cluster and a Sentinel set.

Both follow ``conftest.RedisServer``: every redis-server is a child process in its own
directory, every wait is bounded, every process is stopped by its pid (terminate, then kill),
and a topology that fails to come up is stopped before RuntimeError (with log tails) is raised.

    cluster = RedisClusterSet(shutil.which("redis-server"), tmp_path_factory.mktemp("cluster"))
    cluster.start()  # ~2-4 s
    ...
    cluster.stop()
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import redis.cluster
from redis.crc import key_slot

START_DEADLINE_S = 10.0  # one process answering PING
TOPOLOGY_DEADLINE_S = 30.0  # a whole topology agreeing (slots, replica links, sentinels)
FAILOVER_DEADLINE_S = 30.0
STOP_DEADLINE_S = 5.0
START_ATTEMPTS = 3  # a probed free port may be taken before redis-server binds it
MAX_PORT = 65535 - 10000  # a Cluster node also listens on its bus port, port + 10000
CLUSTER_SLOTS = 16384
LOG_TAIL_CHARS = 1500


def free_ports(n: int, *, with_bus: bool = False) -> list[int]:
    """``n`` distinct free loopback ports; ``with_bus``: port + 10000 is free as well.

    The probing sockets stay bound until all ports are chosen, so no port (or bus port) is
    handed out twice; something else may still take one before redis-server binds it.
    """
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        for _ in range(n * 50):
            if len(ports) == n:
                return ports
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(s)
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
            if not with_bus:
                ports.append(port)
                continue
            if port > MAX_PORT:
                continue
            bus = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(bus)
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
            ports.append(port)
        raise RuntimeError(f"found only {len(ports)} of {n} free ports")
    finally:
        for s in held:
            s.close()


def _client(port: int, timeout: float = 1.0) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=timeout, decode_responses=True)


def _wait_until(what: str, check: Callable[[], bool], deadline_s: float, logs: Callable[[], str]) -> float:
    """Poll ``check`` (connection errors count as "not yet") until true; the seconds it took."""
    started = time.monotonic()
    deadline = started + deadline_s
    last_error: Exception | None = None
    while True:
        try:
            if check():
                return time.monotonic() - started
        except (redis.RedisError, OSError) as exc:
            last_error = exc
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {deadline_s}s (last error: {last_error!r})\n{logs()}")
        time.sleep(0.05)


def _parse_info(text: str) -> dict[str, str]:
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


@dataclass
class RedisProcess:
    """One redis-server (or sentinel) child: ``args`` are given after the binary, run in ``workdir``."""

    binary: str
    port: int
    workdir: Path
    args: list[str]
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"redis-server on {self.port} is not running"
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def spawn(self) -> None:
        """Start the process without waiting (so a whole topology starts in parallel)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with (self.workdir / "redis.log").open("ab") as log:
            # cwd: a relative config file (nodes.conf, sentinel.conf) lands in this node's directory.
            self.proc = subprocess.Popen(
                [self.binary, *self.args], cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_for_ping(self) -> None:
        deadline = time.monotonic() + START_DEADLINE_S
        with _client(self.port) as client:
            while True:
                if self.proc is None or self.proc.poll() is not None:
                    code = None if self.proc is None else self.proc.returncode
                    raise RuntimeError(f"redis-server on {self.port} exited with {code}: {self.log_tail()}")
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"redis-server on {self.port} did not answer PING in {START_DEADLINE_S}s: {self.log_tail()}"
                    )
                time.sleep(0.02)

    def log_tail(self) -> str:
        path = self.workdir / "redis.log"
        return path.read_text(errors="replace")[-LOG_TAIL_CHARS:] if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no AOF fsync, no shutdown handshake, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_DEADLINE_S)

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()

    def reap(self, deadline: float) -> None:
        """After ``terminate``: wait until ``deadline`` (monotonic), then SIGKILL."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_DEADLINE_S)


def _stop_all(processes: list[RedisProcess]) -> None:
    # SIGTERM to all first, so the waits overlap: stop() takes one deadline, not one per process.
    for p in processes:
        p.terminate()
    deadline = time.monotonic() + STOP_DEADLINE_S
    for p in processes:
        p.reap(deadline)


def _logs(processes: list[RedisProcess]) -> str:
    return "\n".join(f"--- {p.workdir.name} (port {p.port}) ---\n{p.log_tail()}" for p in processes)


@dataclass
class ClusterNode:
    """A line of CLUSTER NODES."""

    node_id: str
    port: int
    flags: set[str]
    master_id: str | None
    slots: list[tuple[int, int]]

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def failed(self) -> bool:
        return bool(self.flags & {"fail", "fail?", "handshake", "noaddr"})


def cluster_nodes(port: int) -> list[ClusterNode]:
    """CLUSTER NODES as node ``port`` sees it (raw: redis-py's parsed form drops the slots' ranges)."""
    with _client(port) as client:
        text: str = client.execute_command("CLUSTER", "NODES")
    nodes = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        slots = []
        for item in parts[8:]:
            if item.startswith("["):  # a slot being migrated or imported
                continue
            lo, _, hi = item.partition("-")
            slots.append((int(lo), int(hi or lo)))
        address = parts[1].split("@", 1)[0]  # ip:port@cport[,hostname]
        nodes.append(
            ClusterNode(
                node_id=parts[0],
                port=int(address.rsplit(":", 1)[1]) if address.rsplit(":", 1)[1] else 0,
                flags=set(parts[2].split(",")),
                master_id=None if parts[3] == "-" else parts[3],
                slots=slots,
            )
        )
    return nodes


@dataclass
class RedisClusterSet:
    """Six cluster-enabled redis-servers on loopback ports: 3 primaries, 1 replica each.

    Roles change after ``kill_primary``: ask ``primaries()`` / ``primary_of_slot`` again,
    never keep a port from before a failover.
    """

    binary: str
    workdir: Path
    cli: str | None = None  # redis-cli; default: next to binary, else on PATH
    size: int = 6
    node_timeout_ms: int = 2000
    nodes_by_port: dict[int, RedisProcess] = field(default_factory=dict, repr=False)
    startup_s: float = 0.0  # how long the last start() took, for the curious

    @property
    def nodes(self) -> list[int]:
        return list(self.nodes_by_port)

    @property
    def url(self) -> str:
        """Any node will do for a cluster client: the first one that is running."""
        return f"redis://127.0.0.1:{self._live_port()}/0"

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", port) for port, p in self.nodes_by_port.items() if p.alive]

    def client(self, **kwargs: Any) -> redis.cluster.RedisCluster:
        """A RedisCluster client that knows every running node (caller closes it)."""
        nodes = [redis.cluster.ClusterNode(host, port) for host, port in self.startup_nodes]
        return redis.cluster.RedisCluster(startup_nodes=nodes, **kwargs)

    def start(self) -> None:
        started = time.monotonic()
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                self._start_once(self.workdir / f"attempt-{attempt}")
                self.startup_s = time.monotonic() - started
                return
            except BaseException as exc:
                self.stop()  # never leave half a topology running
                address_taken = isinstance(exc, RuntimeError) and "Address already in use" in str(exc)
                if not address_taken or attempt == START_ATTEMPTS:
                    raise

    def _start_once(self, root: Path) -> None:
        self.nodes_by_port = {}
        for i, port in enumerate(free_ports(self.size, with_bus=True)):
            args = [
                "--bind", "127.0.0.1",
                "--port", str(port),
                "--dir", str(root / f"node-{i}"),
                "--daemonize", "no",
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(self.node_timeout_ms),
                # As gotaskq's README asks: a failed primary stalls only its own slots, not all.
                "--cluster-require-full-coverage", "no",
                "--appendonly", "yes",
                "--appendfsync", "everysec",
                "--save", "",
                # A full sync would otherwise wait 5 s for more replicas to share the transfer.
                "--repl-diskless-sync-delay", "0",
            ]  # fmt: skip
            self.nodes_by_port[port] = RedisProcess(self.binary, port, root / f"node-{i}", args)
        for p in self.nodes_by_port.values():
            p.spawn()
        for p in self.nodes_by_port.values():
            p.wait_for_ping()
        self._create()
        self._wait_healthy("cluster after create", known_nodes=self.size)

    def _cli(self) -> str:
        if self.cli is not None:
            return self.cli
        sibling = Path(self.binary).with_name("redis-cli")
        found = str(sibling) if sibling.exists() else shutil.which("redis-cli")
        if found is None:
            raise RuntimeError("redis-cli is not installed (needed for --cluster create)")
        return found

    def _create(self) -> None:
        addresses = [f"127.0.0.1:{port}" for port in self.nodes_by_port]
        cmd = [self._cli(), "--cluster", "create", *addresses, "--cluster-replicas", "1", "--cluster-yes"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=TOPOLOGY_DEADLINE_S, check=False)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"redis-cli --cluster create hung: {exc.stdout!r}\n{self._logs()}") from exc
        if done.returncode != 0:
            raise RuntimeError(
                f"redis-cli --cluster create failed ({done.returncode}):\n"
                f"{done.stdout[-LOG_TAIL_CHARS:]}{done.stderr[-LOG_TAIL_CHARS:]}\n{self._logs()}"
            )

    def _logs(self) -> str:
        return _logs(list(self.nodes_by_port.values()))

    def _live_port(self) -> int:
        for port, p in self.nodes_by_port.items():
            if p.alive:
                return port
        raise RuntimeError("no cluster node is running")

    def _healthy(self, known_nodes: int | None) -> bool:
        """Every running node: state ok, all slots ok, a slot-serving primary or a linked replica
        (redis-cli makes replicas a moment after the slots are covered), and all agree on roles."""
        views = set()
        for port, p in self.nodes_by_port.items():
            if not p.alive:
                continue
            with _client(port) as client:
                info = _parse_info(client.execute_command("CLUSTER", "INFO"))
                if info.get("cluster_state") != "ok" or info.get("cluster_slots_ok") != str(CLUSTER_SLOTS):
                    return False
                if known_nodes is not None and info.get("cluster_known_nodes") != str(known_nodes):
                    return False
                replication = client.info("replication")
                if replication["role"] == "slave" and replication.get("master_link_status") != "up":
                    return False
            nodes = [n for n in cluster_nodes(port) if not n.failed]
            port_of = {n.node_id: n.port for n in nodes}
            masters = frozenset((n.port, tuple(n.slots)) for n in nodes if n.is_master and n.slots)
            replicas = frozenset((n.port, port_of.get(n.master_id or "")) for n in nodes if not n.is_master)
            if replication["role"] == "master" and not any(served == port for served, _ in masters):
                return False  # an empty primary: not yet a replica (or not yet promoted)
            # No failed node holds slots (all are covered by the rest).
            if sum(hi - lo + 1 for _, slots in masters for lo, hi in slots) != CLUSTER_SLOTS:
                return False
            views.add((masters, replicas))
        return len(views) == 1

    def _wait_healthy(self, what: str, known_nodes: int | None = None) -> float:
        return _wait_until(what, lambda: self._healthy(known_nodes), TOPOLOGY_DEADLINE_S, self._logs)

    def master_nodes(self) -> list[ClusterNode]:
        return [n for n in cluster_nodes(self._live_port()) if n.is_master and n.slots and not n.failed]

    def primaries(self) -> list[tuple[int, int]]:
        """(port, pid) of the primaries that serve slots now, in slot order."""
        masters = sorted(self.master_nodes(), key=lambda n: n.slots[0][0])
        return [(n.port, self.nodes_by_port[n.port].pid) for n in masters]

    def replicas_of(self, port: int) -> list[int]:
        """Ports of the running replicas of primary ``port``."""
        nodes = cluster_nodes(self._live_port())
        ids = {n.node_id for n in nodes if n.port == port}
        return [n.port for n in nodes if n.master_id in ids and not n.failed and self.nodes_by_port[n.port].alive]

    def _slot_owner(self, slot: int) -> int | None:
        for n in self.master_nodes():
            if any(lo <= slot <= hi for lo, hi in n.slots):
                return n.port
        return None  # mid-failover: its primary is flagged failing and no replica took over yet

    def primary_of_slot(self, slot: int) -> int:
        port = self._slot_owner(slot)
        if port is None:
            raise RuntimeError(f"no primary serves slot {slot}")
        return port

    def primary_for_key(self, key: str | bytes) -> int:
        return self.primary_of_slot(key_slot(key.encode() if isinstance(key, str) else key))

    def kill_primary(self, port: int) -> int:
        """SIGKILL primary ``port``; wait for a replica to take its slots; the new primary's port."""
        masters = {n.port: n for n in self.master_nodes()}
        if port not in masters:
            raise RuntimeError(f"{port} is not a primary now (primaries: {sorted(masters)})")
        if not self.replicas_of(port):
            raise RuntimeError(f"primary {port} has no running replica to fail over to")
        first_slot = masters[port].slots[0][0]
        self.nodes_by_port[port].kill()

        def failed_over() -> bool:
            # Until the nodes flag it failed, the dead primary still looks healthy in CLUSTER NODES.
            return self._slot_owner(first_slot) not in (None, port) and self._healthy(known_nodes=None)

        _wait_until(f"failover of primary {port}", failed_over, FAILOVER_DEADLINE_S, self._logs)
        return self.primary_of_slot(first_slot)

    def restart_node(self, port: int) -> None:
        """Start the killed node again (same port, dir, nodes.conf, AOF): it rejoins as a replica."""
        node = self.nodes_by_port[port]
        if node.alive:
            raise RuntimeError(f"node {port} is still running")
        node.spawn()
        node.wait_for_ping()

        def rejoined() -> bool:
            with _client(port) as client:
                replication = client.info("replication")
            return replication["role"] == "slave" and self._healthy(known_nodes=self.size)

        _wait_until(f"node {port} rejoining", rejoined, TOPOLOGY_DEADLINE_S, self._logs)

    def flushall(self) -> None:
        """FLUSHALL on every primary, and wait until its replicas applied it (no data back after a failover)."""
        for port, _ in self.primaries():
            with _client(port, timeout=5.0) as client:
                client.flushall()
                client.execute_command("WAIT", len(self.replicas_of(port)), 2000)

    def stop(self) -> None:
        _stop_all(list(self.nodes_by_port.values()))


def queue_names_on_every_primary(cluster: RedisClusterSet, n_per_primary: int = 1) -> list[str]:
    """Short queue names ("q-a", "q-b", ...) whose ``gtq:{name}:*`` keys land ``n_per_primary``
    times on each current primary, grouped by primary in slot order."""
    slot_owner = {(lo, hi): n.port for n in cluster.master_nodes() for lo, hi in n.slots}
    by_primary: dict[int, list[str]] = {port: [] for port, _ in cluster.primaries()}
    letters = "abcdefghijklmnopqrstuvwxyz"
    candidates = [f"q-{a}" for a in letters] + [f"q-{a}{b}" for a in letters for b in letters]
    for name in candidates:
        slot = key_slot(f"gtq:{{{name}}}:meta".encode())
        owner = next(port for (lo, hi), port in slot_owner.items() if lo <= slot <= hi)
        if len(by_primary[owner]) < n_per_primary:
            by_primary[owner].append(name)
        if all(len(names) == n_per_primary for names in by_primary.values()):
            return [name for names in by_primary.values() for name in names]
    raise RuntimeError(f"no {n_per_primary} short queue names for every primary: {by_primary}")


@dataclass
class RedisSentinelSet:
    """A primary, its replica and 3 sentinels (quorum 2) watching them as ``master_name``."""

    binary: str
    workdir: Path
    master_name: str = "gtqmaster"
    down_after_ms: int = 1000
    failover_timeout_ms: int = 5000
    servers: dict[int, RedisProcess] = field(default_factory=dict, repr=False)
    sentinel_procs: list[RedisProcess] = field(default_factory=list, repr=False)
    startup_s: float = 0.0

    @property
    def sentinels(self) -> list[str]:
        return [f"127.0.0.1:{p.port}" for p in self.sentinel_procs]

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """For ``redis.sentinel.Sentinel(...)``."""
        return [("127.0.0.1", p.port) for p in self.sentinel_procs]

    def env(self) -> dict[str, str]:
        return {"REDIS_SENTINELS": ",".join(self.sentinels), "REDIS_SENTINEL_MASTER": self.master_name}

    def start(self) -> None:
        started = time.monotonic()
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                self._start_once(self.workdir / f"attempt-{attempt}")
                self.startup_s = time.monotonic() - started
                return
            except BaseException as exc:
                self.stop()
                address_taken = isinstance(exc, RuntimeError) and "Address already in use" in str(exc)
                if not address_taken or attempt == START_ATTEMPTS:
                    raise

    def _server_args(self, port: int, workdir: Path) -> list[str]:
        return [
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--dir", str(workdir),
            "--daemonize", "no",
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--repl-diskless-sync-delay", "0",  # see RedisClusterSet
        ]  # fmt: skip

    def _start_once(self, root: Path) -> None:
        self.servers, self.sentinel_procs = {}, []
        primary_port, replica_port, *sentinel_ports = free_ports(5)
        primary = RedisProcess(
            self.binary, primary_port, root / "primary", self._server_args(primary_port, root / "primary")
        )
        replica_args = [
            *self._server_args(replica_port, root / "replica"),
            "--replicaof",
            "127.0.0.1",
            str(primary_port),
        ]
        replica = RedisProcess(self.binary, replica_port, root / "replica", replica_args)
        self.servers = {primary_port: primary, replica_port: replica}
        for i, port in enumerate(sentinel_ports):
            workdir = root / f"sentinel-{i}"
            workdir.mkdir(parents=True)
            # Sentinel rewrites its config file (myid, known replicas/sentinels, epochs): it must be
            # a writable file of its own, fresh on each start, or it inherits a stale topology.
            (workdir / "sentinel.conf").write_text(
                f"port {port}\n"
                "bind 127.0.0.1\n"
                f"dir {workdir}\n"
                f"sentinel monitor {self.master_name} 127.0.0.1 {primary_port} 2\n"
                f"sentinel down-after-milliseconds {self.master_name} {self.down_after_ms}\n"
                f"sentinel failover-timeout {self.master_name} {self.failover_timeout_ms}\n"
                f"sentinel parallel-syncs {self.master_name} 1\n"
            )
            self.sentinel_procs.append(
                RedisProcess(self.binary, port, workdir, [str(workdir / "sentinel.conf"), "--sentinel"])
            )
        for p in (primary, replica):
            p.spawn()
        for p in (primary, replica):
            p.wait_for_ping()
        # Sentinels learn replicas from the primary's INFO, refreshed only every 10 s: start them
        # once the replica is linked, or they report 0 replicas for up to 10 s.
        _wait_until("replica linked", lambda: self._replica_linked(replica_port), START_DEADLINE_S, self._logs)
        for p in self.sentinel_procs:
            p.spawn()
        for p in self.sentinel_procs:
            p.wait_for_ping()
        _wait_until("sentinel set after start", self._healthy, TOPOLOGY_DEADLINE_S, self._logs)

    def _logs(self) -> str:
        return _logs([*self.servers.values(), *self.sentinel_procs])

    def _replica_linked(self, port: int) -> bool:
        with _client(port) as client:
            replication = client.info("replication")
        return bool(replication["role"] == "slave" and replication.get("master_link_status") == "up")

    def _healthy(self) -> bool:
        """Every sentinel sees the same primary (not down), its linked replica and the other sentinels."""
        seen = set()
        for s in self.sentinel_procs:
            with _client(s.port) as client:
                master = client.sentinel_master(self.master_name)
                replicas = client.sentinel_slaves(self.master_name)
            if not master["is_master"] or master["is_sdown"] or master["is_odown"]:
                return False
            if master["num-other-sentinels"] != len(self.sentinel_procs) - 1:
                return False
            live = [r for r in replicas if not r["is_sdown"] and r.get("master-link-status") == "ok"]
            if len(live) != 1:
                return False
            seen.add(master["port"])
        if len(seen) != 1:
            return False
        (port,) = seen
        with _client(port) as client:
            role = client.execute_command("ROLE")
        return bool(role[0] == "master" and len(role[2]) >= 1)

    def current_primary(self) -> int:
        """The primary's port as the first answering sentinel reports it."""
        last_error: Exception | None = None
        for s in self.sentinel_procs:
            try:
                with _client(s.port) as client:
                    _, port = client.sentinel_get_master_addr_by_name(self.master_name)
                return int(port)
            except redis.RedisError as exc:
                last_error = exc
        raise RuntimeError(f"no sentinel answered: {last_error!r}")

    def kill_primary(self) -> int:
        """SIGKILL the primary; wait until every sentinel names a new one that says ROLE master."""
        old = self.current_primary()
        if not any(p.alive for port, p in self.servers.items() if port != old):
            raise RuntimeError(f"primary {old} has no running replica to fail over to")
        self.servers[old].kill()

        def failed_over() -> bool:
            ports = set()
            for s in self.sentinel_procs:
                with _client(s.port) as client:
                    _, port = client.sentinel_get_master_addr_by_name(self.master_name)
                    ports.add(int(port))
            if len(ports) != 1 or old in ports:
                return False
            with _client(ports.pop()) as client:
                return bool(client.execute_command("ROLE")[0] == "master")

        _wait_until(f"sentinel failover from {old}", failed_over, FAILOVER_DEADLINE_S, self._logs)
        return self.current_primary()

    def restart_server(self, port: int) -> None:
        """Start a killed server again as a replica of the current primary (same port and dir),
        and wait until it is linked: the set can fail over once more."""
        proc = self.servers[port]
        if proc.alive:
            raise RuntimeError(f"redis-server {port} is still running")
        primary = self.current_primary()
        base = [a for a in proc.args if a != "--replicaof"]
        if "--replicaof" in proc.args:
            i = proc.args.index("--replicaof")
            base = proc.args[:i] + proc.args[i + 3 :]
        proc.args = [*base, "--replicaof", "127.0.0.1", str(primary)]
        proc.spawn()
        proc.wait_for_ping()
        _wait_until(f"replica {port} linked", lambda: self._replica_linked(port), TOPOLOGY_DEADLINE_S, self._logs)

    def flushall(self) -> None:
        with _client(self.current_primary(), timeout=5.0) as client:
            client.flushall()
            replicas = sum(1 for p in self.servers.values() if p.alive) - 1
            client.execute_command("WAIT", replicas, 2000)

    def stop(self) -> None:
        # Sentinels first: they would otherwise start a failover while the servers go down.
        _stop_all(self.sentinel_procs)
        _stop_all(list(self.servers.values()))
