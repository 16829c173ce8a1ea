"""sioless' production topology on the hosts of a :class:`~bench.cluster.network.Network`: a Redis
primary and a replica watched by three Sentinels, PostgreSQL, application hosts (daphne, a worker
serving a shard, a standby worker for every shard, a qcluster), HAProxy in front, and a host for the
load client. Each service runs on its host, reached at the host's address; logs go to
tests/artifacts/cluster-*.log."""

from __future__ import annotations

import resource
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from bench.measure import process_tree
from demo_project.production import daphne_command
from tests.support.processes import ROOT, Process, django_env
from tests.support.services import PG_BIN

from .network import Host, Network

REDIS_PORT = 6379
SENTINEL_PORT = 26379
POSTGRES_PORT = 5432
HTTP_PORT = 8000
#: The application hosts: the cluster check deploys on the first two, the scaling run on one to three.
APP_HOSTS = ["app1", "app2", "app3"]
SENTINELS = ["s1", "s2", "s3"]
#: The hosts of everything but the application.
SERVICE_HOSTS = ["redis1", "redis2", *SENTINELS, "db", "lb", "client"]
WORKER = [sys.executable, "manage.py", "sioless_worker"]
#: A command run as PostgreSQL's own user (its cluster's files are that user's).
AS_POSTGRES = ["runuser", "-u", "postgres", "--"]
#: Connections HAProxy takes at once: each needs two file descriptors (the client's, the server's)
#: within this machine's limit, which HAProxy cannot raise here (the hard `ulimit -n`).
BALANCER_MAXCONN = min(50_000, (resource.getrlimit(resource.RLIMIT_NOFILE)[1] - 1000) // 2)
#: Seconds a service gets to start.
START_TIMEOUT = 60.0


def wait_for(address: str, port: int, process: Process, timeout: float = START_TIMEOUT) -> None:
    """Return once ``address:port`` accepts connections; fail if ``process`` exits first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((address, port), timeout=0.5).close()
            return
        except OSError:
            if process.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{process.name} does not serve {address}:{port}:\n{process.log()}") from None
            time.sleep(0.1)


class Topology:
    """The services, started host by host; :meth:`stop` ends them (the network's removal too)."""

    def __init__(self, network: Network, home: Path) -> None:
        self.network = network
        self.home = home
        self.processes: dict[str, Process] = {}
        #: PostgreSQL's data directory, once it runs.
        self.postgres_data = home / "pg" / "data"
        self.env = django_env(
            "tests.settings",
            SIOLESS_TEST_DB_HOST=network["db"].address,
            SIOLESS_TEST_DB_NAME="cluster",
            SIOLESS_TEST_REDIS_SENTINEL=",".join(f"{network[s].address}:{SENTINEL_PORT}" for s in SENTINELS),
            SIOLESS_TEST_LAYER_PREFIX=f"sioc-{uuid.uuid4().hex[:8]}",
            SIOLESS_TEST_PING_INTERVAL="5",
            SIOLESS_TEST_PING_TIMEOUT="10",
            SIOLESS_TEST_Q_LOG_LEVEL="INFO",
        )

    def start(self, name: str, host: Host, command: list[str], env: dict[str, str] | None = None) -> Process:
        process = Process(f"cluster-{name}", host.command(command), env or self.env)
        self.processes[name] = process
        return process

    # Redis ------------------------------------------------------------------------------------

    def start_redis(self) -> None:
        """A primary, a replica, and three Sentinels agreeing (two of three) on failovers."""
        primary = self.network["redis1"]
        for name in ("redis1", "redis2"):
            host = self.network[name]
            command = ["redis-server", "--bind", host.address, "--port", str(REDIS_PORT), "--protected-mode", "no"]
            command += ["--save", "", "--appendonly", "no", "--dir", str(self.home)]
            command += ["--dbfilename", f"{name}.rdb"]
            if name != "redis1":
                command += ["--replicaof", primary.address, str(REDIS_PORT)]
            wait_for(host.address, REDIS_PORT, self.start(name, host, command))
        for name in SENTINELS:
            host = self.network[name]
            configuration = self.home / f"{name}.conf"
            configuration.write_text(
                f"bind {host.address}\nport {SENTINEL_PORT}\nprotected-mode no\n"
                f"sentinel monitor sioless {primary.address} {REDIS_PORT} 2\n"
                "sentinel down-after-milliseconds sioless 1000\nsentinel failover-timeout sioless 5000\n"
            )
            command = ["redis-server", str(configuration), "--sentinel"]
            wait_for(host.address, SENTINEL_PORT, self.start(name, host, command))

    def redis_primary(self) -> str:
        """The address the Sentinels give for the primary now."""
        sentinel = self.network[SENTINELS[0]]
        answer = sentinel.run(
            "redis-cli",
            "-h",
            sentinel.address,
            "-p",
            str(SENTINEL_PORT),
            "sentinel",
            "get-master-addr-by-name",
            "sioless",
        )
        return answer.stdout.split()[0]

    # PostgreSQL -------------------------------------------------------------------------------

    def start_postgres(self) -> None:
        """A cluster of the topology's own on its host, trusting the hosts' subnet."""
        host = self.network["db"]
        data = self.postgres_data.parent
        data.mkdir()
        subprocess.run(["chown", "postgres", str(data)], check=True)
        subprocess.run(
            [*AS_POSTGRES, str(PG_BIN / "initdb"), "-D", str(self.postgres_data), "-A", "trust", "-U", "postgres"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        with (self.postgres_data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {host.address.rsplit('.', 1)[0]}.0/24 trust\n")
        self.run_postgres()
        self.create_database(self.env["SIOLESS_TEST_DB_NAME"])

    def run_postgres(self) -> None:
        """Start PostgreSQL on its host (its cluster made by :meth:`start_postgres`)."""
        host = self.network["db"]
        data = self.postgres_data.parent
        options = f"-p {POSTGRES_PORT} -k {data} -c listen_addresses={host.address} -c max_connections=300"
        pg_ctl = [str(PG_BIN / "pg_ctl"), "-D", str(self.postgres_data), "-o", options, "-l", str(data / "server.log")]
        host.run(*AS_POSTGRES, *pg_ctl, "-w", "start")

    def create_database(self, name: str) -> None:
        """A migrated database ``name``, which the processes started from now on use."""
        host = self.network["db"]
        createdb = [str(PG_BIN / "createdb"), "-h", host.address, "-U", "postgres", name]
        host.run(*AS_POSTGRES, *createdb)
        self.env = {**self.env, "SIOLESS_TEST_DB_NAME": name}
        migrate = [sys.executable, "manage.py", "migrate", "-v0"]
        subprocess.run(migrate, cwd=ROOT, env=self.env, check=True, timeout=120)

    def postgres_pids(self) -> list[int]:
        """PostgreSQL's processes (its postmaster's pid is the first line of its pid file)."""
        postmaster = int((self.postgres_data / "postmaster.pid").read_text().split()[0])
        return process_tree(postmaster)

    # The application hosts and the balancer ----------------------------------------------------

    def start_app(self, name: str, shard: int, *, serves: bool = True) -> None:
        """daphne and the worker of ``shard`` on ``name`` (once it ``serves`` the shard, or else
        once it runs: a standby took the shard while the host was away)."""
        self.start_daphne(name)
        self.start_worker(name, shard, serves=serves)

    def start_daphne(self, name: str) -> None:
        host = self.network[name]
        daphne = daphne_command(HTTP_PORT, "--access-log", "/dev/null", host=host.address)
        wait_for(host.address, HTTP_PORT, self.start(f"{name}-daphne", host, daphne))

    def start_worker(self, name: str, shard: int, *, serves: bool = True, label: str = "worker") -> None:
        """A worker for ``shard`` on ``name``, known as ``{name}-{label}``."""
        worker = self.start(f"{name}-{label}", self.network[name], [*WORKER, "--shard", str(shard)])
        worker.wait_for_log(f"serving shard {shard}" if serves else "for shards")

    def start_standby(self, name: str) -> None:
        """A standby worker for every shard, and a qcluster, on ``name``."""
        host = self.network[name]
        self.start(f"{name}-standby", host, WORKER).wait_for_log("for shards")
        self.start_qcluster(name)

    def start_qcluster(self, name: str) -> None:
        """A django-q2 cluster (the heartbeat's runs) on ``name``."""
        qcluster = self.start(f"{name}-qcluster", self.network[name], [sys.executable, "manage.py", "qcluster"])
        # not "runs the heartbeat": one run at a time, and another host's qcluster may take each
        qcluster.wait_for_log(" running.")

    def start_python_socketio(self, name: str) -> None:
        """What a python-socketio user deploys on ``name`` instead: uvicorn serving python-socketio's
        AsyncServer, rooms and emits shared through Redis (``AsyncRedisManager``, via the Sentinels),
        with sioless' heartbeat settings of the check."""
        host = self.network[name]
        sentinels = ",".join(f"{self.network[s].address}:{SENTINEL_PORT}" for s in SENTINELS)
        env = {
            **self.env,
            "SIOLESS_BENCH_PING": f"{self.env['SIOLESS_TEST_PING_INTERVAL']},{self.env['SIOLESS_TEST_PING_TIMEOUT']}",
            "SIOLESS_BENCH_REDIS_URL": f"redis+sentinel://{sentinels}/0/sioless",
        }
        uvicorn = [sys.executable, "-m", "uvicorn", "bench.servers.pysio:app", "--host", host.address]
        uvicorn += ["--port", str(HTTP_PORT), "--log-level", "warning"]
        wait_for(host.address, HTTP_PORT, self.start(f"{name}-uvicorn", host, uvicorn, env))

    def start_balancer(self, hosts: list[str], *, sticky: bool = False) -> None:
        """HAProxy on its host: round robin over the application ``hosts``, no stickiness
        (``sticky``: a polling session's requests kept on one host by a cookie, as python-socketio
        needs)."""
        host = self.network["lb"]
        servers = "".join(
            f"    server {name} {self.network[name].address}:{HTTP_PORT} check inter 500 fall 2 rise 2"
            + (f" cookie {name}\n" if sticky else "\n")
            for name in hosts
        )
        stickiness = "    cookie SERVERID insert indirect nocache\n" if sticky else ""
        configuration = self.home / "haproxy.cfg"
        configuration.write_text(
            f"global\n    maxconn {BALANCER_MAXCONN}\n"
            f"defaults\n    mode http\n    maxconn {BALANCER_MAXCONN}\n    timeout connect 2s\n    timeout client 60s\n"
            "    timeout server 60s\n    timeout tunnel 1h\n"
            f"frontend web\n    bind {host.address}:{HTTP_PORT}\n    default_backend app\n"
            f"backend app\n    balance roundrobin\n    option redispatch\n    retries 3\n{stickiness}{servers}"
        )
        process = self.start(
            "haproxy", host, ["haproxy", "-db", "-f", str(configuration)], env={"PATH": "/usr/sbin:/usr/bin:/bin"}
        )
        wait_for(host.address, HTTP_PORT, process)

    @property
    def url(self) -> str:
        """The balancer's address, as clients reach it."""
        return f"http://{self.network['lb'].address}:{HTTP_PORT}"

    def app_url(self, name: str) -> str:
        """The address of the application host ``name``, as clients reach it without the balancer."""
        return f"http://{self.network[name].address}:{HTTP_PORT}"

    def stop_services(self, *names: str) -> None:
        """Stop the processes ``names`` started."""
        for name in names:
            self.processes.pop(name).stop()

    def stop(self) -> None:
        for process in reversed(self.processes.values()):
            process.stop()
        self.network.remove()
