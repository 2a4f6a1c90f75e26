"""The synthetic ECS fleet: a pure, seeded generator of the records an EventBridge rule writes to Kinesis.

:func:`generate` is driven by one seeded ``random.Random``: the same :class:`Options` (seed included) give the
identical stream of :class:`Record` (partition key, bytes, kind, and what the record means). It simulates
clusters, container instances and tasks going through the ECS life cycle, and mixes in duplicates (same bytes
again, as EventBridge's at-least-once delivery does), bounded reordering (:func:`reorder`), poison records
(:func:`make_poison`) and valid events of detail-types the processor ignores. No I/O.

What the records mean is accumulated by :class:`processor.loadgen.ground_truth.GroundTruth`; :mod:`processor.loadgen.producer` sends
them to Kinesis; ``scripts/bench.py`` feeds them to the processor and to the per-event baseline.
"""

from __future__ import annotations

import functools
import heapq
import json
import random
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import msgpack

TASK_TYPE = "ECS Task State Change"
INSTANCE_TYPE = "ECS Container Instance State Change"
IGNORED_TYPES = ("ECS Service Action", "ECS Deployment State Change", "AWS API Call via CloudTrail")

# Poison kinds. Every one must end in the dead-letter table. The ones built from a real event are copies of an
# event already sent (same ARN, version and status), so a processor that wrongly accepted one of those would
# not change the state tables; the version ones (negative, beyond 64 bits...) would, on purpose.
POISON_KINDS_COMMON = (
    "truncated", "invalid-utf8", "trailing-data", "array", "number", "string", "null", "boolean", "empty",
    "wrong-source", "no-detail", "detail-not-object", "version-string", "version-float", "version-negative",
    "version-huge", "version-nan", "version-bool", "version-missing", "empty-arn", "missing-arn",
    "msgpack-garbage", "deep-nesting", "bom", "duplicate-keys",
)
POISON_KINDS_JSON_ONLY = ("lone-surrogate", "whitespace")
FORMATS = ("json", "msgpack")


def poison_kinds(fmt: str) -> tuple[str, ...]:
    """The poison kinds the generator draws from for one wire format."""
    return POISON_KINDS_COMMON + (POISON_KINDS_JSON_ONLY if fmt == "json" else ())


# --------------------------------------------------------------------------------------------------- options


@dataclass(frozen=True)
class Options:
    """What to generate. Rates are fractions of all records sent (0..1)."""

    clusters: int = 2
    instances: int = 4          # live container instances at a time, spread over the clusters (0 = Fargate only)
    tasks: int = 20             # concurrent tasks
    duplicate_rate: float = 0.0
    reorder_window: int = 0     # 0/1 = no reordering; W = each record moves fewer than W places
    poison_rate: float = 0.0
    ignored_rate: float = 0.0
    format: str = "json"
    seed: int = 0
    account: str = "123456789012"
    region: str = "us-east-1"
    start_ms: int = 1_740_787_200_000   # 2025-03-01T00:00:00Z, the simulated clock's origin

    def __post_init__(self) -> None:
        if self.clusters < 1:
            raise ValueError(f"--clusters must be >= 1, got {self.clusters}")
        if self.instances < 0 or self.tasks < 0:
            raise ValueError(f"--instances and --tasks must be >= 0, got {self.instances} and {self.tasks}")
        if self.tasks == 0 and self.instances == 0:
            raise ValueError("--tasks and --instances are both 0: there is nothing to simulate")
        for name in ("duplicate_rate", "poison_rate", "ignored_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"--{name.replace('_', '-')} must be between 0 and 1, got {value}")
        if self.poison_rate + self.ignored_rate > 1.0:
            raise ValueError("--poison-rate + --ignored-rate must not exceed 1")
        if self.reorder_window < 0:
            raise ValueError(f"--reorder-window must be >= 0, got {self.reorder_window}")
        if self.format not in FORMATS:
            raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {self.format!r}")


@dataclass(frozen=True, slots=True)
class Record:
    """One Kinesis record and what it means.

    ``kind`` is ``task``, ``instance``, ``ignored`` or ``poison``; ``detail`` is the poison kind or the ignored
    detail-type; ``arn``/``version``/``status`` are set for task and instance events (status = ``lastStatus``
    for tasks, ``status`` for container instances); ``duplicate`` marks a second delivery of the same bytes.
    """

    partition_key: str
    data: bytes
    kind: str
    detail: str = ""
    arn: str = ""
    version: int = 0
    status: str = ""
    duplicate: bool = False


# --------------------------------------------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=4096)
def _iso_second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def iso_ms(ms: int) -> str:
    """Epoch milliseconds -> ``2025-03-01T00:00:00.123Z`` (ECS detail timestamps)."""
    return f"{_iso_second(ms // 1000)}.{ms % 1000:03d}Z"


def iso_s(ms: int) -> str:
    """Epoch milliseconds -> ``2025-03-01T00:00:00Z`` (the envelope's ``time``)."""
    return _iso_second(ms // 1000) + "Z"


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _hex(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


def _ip(rng: random.Random) -> str:
    return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def encode(event: Any, fmt: str) -> bytes:
    """An event dict -> record bytes: compact JSON (as EventBridge delivers) or ``msgpack.packb``."""
    if fmt == "msgpack":
        return msgpack.packb(event, use_bin_type=True)
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode(data: bytes, fmt: str) -> Any:
    """The inverse of :func:`encode` for valid records (tests and the poison builder use it)."""
    if fmt == "msgpack":
        return msgpack.unpackb(data, raw=False)
    return json.loads(data.decode("utf-8"))


# --------------------------------------------------------------------------------------------- simulation

_CLUSTER_NAMES = ("prod-web", "prod-batch", "staging", "payments", "analytics", "internal-tools", "edge", "ml")
_INSTANCE_TYPES = (  # type, CPU units, MEMORY MiB registered
    ("m5.large", 2048, 7680), ("m5.xlarge", 4096, 15620), ("c5.2xlarge", 8192, 15620), ("r5.large", 2048, 15817),
    ("m6i.2xlarge", 8192, 31655),
)
_FAMILIES = (  # family, task cpu, task memory, main image, service?
    ("web", "512", "1024", "{acct}.dkr.ecr.{region}.amazonaws.com/web-frontend:{ver}", True),
    ("api", "1024", "2048", "{acct}.dkr.ecr.{region}.amazonaws.com/orders-api:{ver}", True),
    ("worker", "2048", "4096", "{acct}.dkr.ecr.{region}.amazonaws.com/queue-worker:{ver}", True),
    ("nginx", "256", "512", "public.ecr.aws/nginx/nginx:1.27-alpine", True),
    ("nightly-report", "1024", "3072", "{acct}.dkr.ecr.{region}.amazonaws.com/reports:{ver}", False),
    ("db-migrate", "256", "512", "{acct}.dkr.ecr.{region}.amazonaws.com/migrations:{ver}", False),
)
_SIDECARS = (
    ("envoy", "public.ecr.aws/appmesh/aws-appmesh-envoy:v1.29.6.0-prod", "64"),
    ("xray-daemon", "public.ecr.aws/xray/aws-xray-daemon:3.3.12", "32"),
    ("log-router", "public.ecr.aws/aws-observability/aws-for-fluent-bit:2.32.2", "50"),
)
_STOPS = (  # stopCode, stoppedReason, exit code of the main container
    ("EssentialContainerExited", "Essential container in task exited", 1),
    ("ServiceSchedulerInitiated", "Scaling activity initiated by (deployment ecs-svc/{svc})", 0),
    ("UserInitiated", "Task stopped by user", 143),
    ("ServiceSchedulerInitiated", "Task failed ELB health checks in (target-group {tg})", 137),
    ("SpotInterruption", "Your Spot Task was interrupted.", 143),
)
_FAIL_REASONS = (
    "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref "
    "{image}: not found",
    "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: "
    "unable to retrieve secret from asm: service call has been retried 1 time(s)",
    "CannotStartContainerError: Error response from daemon: failed to create shim task: OCI runtime create failed",
)
_INSTANCE_ATTRIBUTES = (
    "com.amazonaws.ecs.capability.logging-driver.syslog", "com.amazonaws.ecs.capability.logging-driver.awslogs",
    "com.amazonaws.ecs.capability.logging-driver.json-file", "com.amazonaws.ecs.capability.logging-driver.none",
    "com.amazonaws.ecs.capability.privileged-container", "com.amazonaws.ecs.capability.docker-remote-api.1.17",
    "com.amazonaws.ecs.capability.docker-remote-api.1.18", "com.amazonaws.ecs.capability.docker-remote-api.1.19",
    "com.amazonaws.ecs.capability.docker-remote-api.1.20", "com.amazonaws.ecs.capability.docker-remote-api.1.21",
    "com.amazonaws.ecs.capability.docker-remote-api.1.22", "com.amazonaws.ecs.capability.docker-remote-api.1.23",
    "com.amazonaws.ecs.capability.docker-remote-api.1.24", "com.amazonaws.ecs.capability.docker-remote-api.1.25",
    "com.amazonaws.ecs.capability.docker-remote-api.1.29", "com.amazonaws.ecs.capability.docker-remote-api.1.32",
    "com.amazonaws.ecs.capability.docker-remote-api.1.44", "com.amazonaws.ecs.capability.ecr-auth",
    "com.amazonaws.ecs.capability.task-iam-role", "com.amazonaws.ecs.capability.task-iam-role-network-host",
    "ecs.capability.execution-role-awslogs", "ecs.capability.execution-role-ecr-pull",
    "ecs.capability.secrets.asm.environment-variables", "ecs.capability.secrets.ssm.environment-variables",
    "ecs.capability.container-health-check", "ecs.capability.task-eni", "ecs.capability.awsvpc-trunking",
    "ecs.capability.firelens.fluentbit", "ecs.capability.container-ordering", "ecs.capability.full-sync",
    "ecs.capability.service-connect-v1", "ecs.capability.efsAuth",
)
_AWSVPC_PATH = ("PROVISIONING", "PENDING", "ACTIVATING", "RUNNING")
_AWSVPC_STOP = ("DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED")
_BRIDGE_PATH = ("PENDING", "RUNNING")
_BRIDGE_STOP = ("STOPPING", "STOPPED")


def _next_version(rng: random.Random, version: int) -> int:
    """+1 per state change; about 3 % of the time a gap (ECS bumped the version without an event we saw)."""
    return version + (rng.randint(2, 4) if rng.random() < 0.03 else 1)


@dataclass(eq=False)
class _Cluster:
    name: str
    arn: str
    services: list[str]


@dataclass(eq=False)
class _Instance:
    arn: str
    cluster: _Cluster
    ec2_id: str
    az: str
    itype: str
    cpu: int
    memory: int
    registered_at: int
    version: int
    agent_version: str
    agent_hash: str
    docker_version: str
    attributes: list[dict[str, str]]
    status: str = "ACTIVE"
    agent_connected: bool = True
    running: int = 0
    pending: int = 0
    used_cpu: int = 0
    used_memory: int = 0
    used_ports: list[str] = field(default_factory=list)
    updated_at: int = 0
    status_reason: str = ""

    def detail(self) -> dict[str, Any]:
        def resources(cpu: int, memory: int, ports: list[str]) -> list[dict[str, Any]]:
            return [
                {"name": "CPU", "type": "INTEGER", "doubleValue": 0.0, "longValue": 0, "integerValue": cpu},
                {"name": "MEMORY", "type": "INTEGER", "doubleValue": 0.0, "longValue": 0, "integerValue": memory},
                {"name": "PORTS", "type": "STRINGSET", "doubleValue": 0.0, "longValue": 0, "integerValue": 0,
                 "stringSetValue": ports},
                {"name": "PORTS_UDP", "type": "STRINGSET", "doubleValue": 0.0, "longValue": 0, "integerValue": 0,
                 "stringSetValue": []},
            ]

        base_ports = ["22", "2375", "2376", "51678", "51679"]
        out: dict[str, Any] = {
            "agentConnected": self.agent_connected,
            "attachments": [],
            "attributes": self.attributes,
            "clusterArn": self.cluster.arn,
            "containerInstanceArn": self.arn,
            "ec2InstanceId": self.ec2_id,
            "pendingTasksCount": self.pending,
            "registeredAt": iso_ms(self.registered_at),
            "registeredResources": resources(self.cpu, self.memory, base_ports),
            "remainingResources": resources(self.cpu - self.used_cpu, self.memory - self.used_memory,
                                            base_ports + self.used_ports),
            "runningTasksCount": self.running,
            "status": self.status,
            "updatedAt": iso_ms(self.updated_at),
            "version": self.version,
            "versionInfo": {"agentHash": self.agent_hash, "agentVersion": self.agent_version,
                            "dockerVersion": self.docker_version},
        }
        if self.status_reason:
            out["statusReason"] = self.status_reason
        return out


@dataclass(eq=False)
class _Container:
    arn: str
    name: str
    image: str
    cpu: str
    memory_reservation: str
    essential: bool
    host_port: int = 0
    container_port: int = 0
    last_status: str = "PENDING"
    image_digest: str = ""
    runtime_id: str = ""
    exit_code: int | None = None
    reason: str = ""
    health: str = ""


@dataclass(eq=False)
class _Task:
    arn: str
    cluster: _Cluster
    instance: _Instance | None
    launch_type: str
    awsvpc: bool
    family: str
    revision: int
    group: str
    started_by: str
    cpu: str
    memory: str
    az: str
    containers: list[_Container]
    overrides: dict[str, Any]
    path: list[str]            # remaining lastStatus values, front first
    fails: bool
    created_at: int
    eni_id: str = ""
    eni_details: list[dict[str, str]] = field(default_factory=list)
    eni_status: str = "PRECREATED"
    last_status: str = ""
    desired_status: str = "RUNNING"
    version: int = 0
    times: dict[str, int] = field(default_factory=dict)
    stop_code: str = ""
    stopped_reason: str = ""
    exit_code: int = 0

    def detail(self, account: str, region: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.awsvpc:
            out["attachments"] = [{"id": self.eni_id, "type": "eni", "status": self.eni_status,
                                   "details": self.eni_details}]
        out["attributes"] = [{"name": "ecs.cpu-architecture", "value": "x86_64"}]
        out["availabilityZone"] = self.az
        out["clusterArn"] = self.cluster.arn
        if "connectivityAt" in self.times:
            out["connectivity"] = "CONNECTED"
            out["connectivityAt"] = iso_ms(self.times["connectivityAt"])
        if self.instance is not None:
            out["containerInstanceArn"] = self.instance.arn
        containers = []
        for c in self.containers:
            cd: dict[str, Any] = {"containerArn": c.arn}
            if c.exit_code is not None:
                cd["exitCode"] = c.exit_code
            cd["lastStatus"] = c.last_status
            cd["name"] = c.name
            cd["image"] = c.image
            if c.image_digest:
                cd["imageDigest"] = c.image_digest
            if c.runtime_id:
                cd["runtimeId"] = c.runtime_id
            cd["taskArn"] = self.arn
            if self.awsvpc:
                if self.eni_details and len(self.eni_details) > 2:
                    cd["networkInterfaces"] = [{"attachmentId": self.eni_id,
                                                "privateIpv4Address": self.eni_details[-1]["value"]}]
                else:
                    cd["networkInterfaces"] = []
            elif c.host_port and c.last_status == "RUNNING":
                cd["networkBindings"] = [{"bindIP": "0.0.0.0", "containerPort": c.container_port,
                                          "hostPort": c.host_port, "protocol": "tcp"}]
            if c.reason:
                cd["reason"] = c.reason
            if c.health:
                cd["healthStatus"] = c.health
            cd["cpu"] = c.cpu
            cd["memoryReservation"] = c.memory_reservation
            cd["managedAgents"] = []
            containers.append(cd)
        out["containers"] = containers
        out["cpu"] = self.cpu
        out["createdAt"] = iso_ms(self.created_at)
        out["desiredStatus"] = self.desired_status
        out["enableExecuteCommand"] = False
        if self.launch_type == "FARGATE":
            out["ephemeralStorage"] = {"sizeInGiB": 20}
        if "executionStoppedAt" in self.times:
            out["executionStoppedAt"] = iso_ms(self.times["executionStoppedAt"])
        out["group"] = self.group
        out["launchType"] = self.launch_type
        out["lastStatus"] = self.last_status
        out["memory"] = self.memory
        out["overrides"] = self.overrides
        if self.launch_type == "FARGATE":
            out["platformVersion"] = "1.4.0"
            out["platformFamily"] = "Linux"
        for key in ("pullStartedAt", "pullStoppedAt", "startedAt"):
            if key in self.times:
                out[key] = iso_ms(self.times[key])
        if self.started_by:
            out["startedBy"] = self.started_by
        if self.stop_code:
            out["stopCode"] = self.stop_code
        if "stoppedAt" in self.times:
            out["stoppedAt"] = iso_ms(self.times["stoppedAt"])
        if self.stopped_reason:
            out["stoppedReason"] = self.stopped_reason
        if "stoppingAt" in self.times:
            out["stoppingAt"] = iso_ms(self.times["stoppingAt"])
        out["tags"] = []
        out["taskArn"] = self.arn
        out["taskDefinitionArn"] = f"arn:aws:ecs:{region}:{account}:task-definition/{self.family}:{self.revision}"
        out["updatedAt"] = iso_ms(self.times["updatedAt"])
        out["version"] = self.version
        return out


class Simulation:
    """Clusters, container instances and tasks moving through their life cycles; :meth:`step` returns the next
    ECS event (detail-type, resource ARN, event dict). Pure: all randomness comes from ``rng``."""

    def __init__(self, options: Options, rng: random.Random) -> None:
        self.o = options
        self.rng = rng
        self.now = options.start_ms
        self.azs = [f"{options.region}{s}" for s in "abc"]
        self.clusters = [self._cluster(i) for i in range(options.clusters)]
        self.instances: list[_Instance] = []
        for i in range(options.instances):
            self.instances.append(self._instance(self.clusters[i % len(self.clusters)], long_lived=True))
        self.tasks: list[_Task] = [self._task() for _ in range(options.tasks)]
        self.queue: list[_Instance] = []   # instance events owed (task placed, started, stopped)

    # -- construction

    def _cluster(self, i: int) -> _Cluster:
        name = _CLUSTER_NAMES[i % len(_CLUSTER_NAMES)] + ("" if i < len(_CLUSTER_NAMES) else f"-{i}")
        arn = f"arn:aws:ecs:{self.o.region}:{self.o.account}:cluster/{name}"
        services = [f"{fam}" for fam, *_rest, svc in _FAMILIES if svc]
        return _Cluster(name, arn, services)

    def _instance(self, cluster: _Cluster, long_lived: bool) -> _Instance:
        rng = self.rng
        itype, cpu, memory = rng.choice(_INSTANCE_TYPES)
        major = rng.choice((80, 83, 86, 88))
        attributes = [{"name": name} for name in _INSTANCE_ATTRIBUTES]
        az = rng.choice(self.azs)
        attributes += [
            {"name": "ecs.availability-zone", "value": az},
            {"name": "ecs.instance-type", "value": itype},
            {"name": "ecs.os-type", "value": "linux"},
            {"name": "ecs.os-family", "value": "LINUX"},
            {"name": "ecs.cpu-architecture", "value": "x86_64"},
            {"name": "ecs.ami-id", "value": f"ami-{_hex(rng, 17)}"},
            {"name": "ecs.vpc-id", "value": f"vpc-{_hex(rng, 17)}"},
            {"name": "ecs.subnet-id", "value": f"subnet-{_hex(rng, 17)}"},
        ]
        inst = _Instance(
            arn=f"arn:aws:ecs:{self.o.region}:{self.o.account}:container-instance/{cluster.name}/{_hex(rng, 32)}",
            cluster=cluster, ec2_id=f"i-{_hex(rng, 17)}", az=az, itype=itype, cpu=cpu, memory=memory,
            registered_at=self.now - (rng.randrange(86_400_000, 90 * 86_400_000) if long_lived else 0),
            version=rng.randint(50, 150_000) if long_lived else 1,
            agent_version=f"1.{major}.{rng.randrange(4)}", agent_hash=_hex(rng, 8),
            docker_version=f"DockerVersion: {rng.choice(('20.10.25', '24.0.9', '25.0.6'))}",
            attributes=attributes, updated_at=self.now,
        )
        return inst

    def _task(self) -> _Task:
        rng, o = self.rng, self.o
        cluster = rng.choice(self.clusters)
        family, cpu, memory, image, is_service = rng.choice(_FAMILIES)
        hosts = [i for i in self.instances if i.cluster is cluster and i.status == "ACTIVE"
                 and i.cpu - i.used_cpu >= int(cpu) and i.memory - i.used_memory >= int(memory)]
        instance = rng.choice(hosts) if hosts and rng.random() < 0.5 else None
        launch_type = "EC2" if instance else "FARGATE"
        awsvpc = instance is None or rng.random() < 0.5
        image = image.format(acct=o.account, region=o.region, ver=f"{rng.randint(1, 9)}.{rng.randint(0, 40)}."
                                                                   f"{rng.randint(0, 9)}")
        task_id = _hex(rng, 32)
        arn = f"arn:aws:ecs:{o.region}:{o.account}:task/{cluster.name}/{task_id}"
        main = _Container(arn=f"arn:aws:ecs:{o.region}:{o.account}:container/{cluster.name}/{task_id}/{_uuid(rng)}",
                          name=family, image=image, cpu="0", memory_reservation=str(int(memory) // 2),
                          essential=True)
        if not awsvpc:
            main.container_port, main.host_port = 8080, rng.randint(32768, 60999)
        containers = [main]
        n_side = rng.choices((0, 1, 2, 3), weights=(55, 25, 12, 8))[0]
        for name, side_image, mem in rng.sample(_SIDECARS, n_side):
            containers.append(_Container(
                arn=f"arn:aws:ecs:{o.region}:{o.account}:container/{cluster.name}/{task_id}/{_uuid(rng)}",
                name=name, image=side_image, cpu="0", memory_reservation=mem, essential=False))
        overrides: dict[str, Any] = {"containerOverrides": [{"name": c.name} for c in containers],
                                     "inferenceAcceleratorOverrides": []}
        if rng.random() < 0.15:   # a run-task with environment overrides: these make the big events
            env = [{"name": f"FEATURE_FLAG_{k:03d}", "value": _hex(rng, rng.randint(8, 96))}
                   for k in range(rng.choice((3, 10, 30, 80)))]
            overrides["containerOverrides"][0]["environment"] = env
            if rng.random() < 0.5:
                overrides["containerOverrides"][0]["command"] = ["/bin/sh", "-c", f"run --shard {rng.randrange(64)}"]
        fails = rng.random() < 0.05
        path = list(_AWSVPC_PATH if awsvpc else _BRIDGE_PATH)
        if fails:
            path = path[: path.index("PENDING") + 1] + (["DEPROVISIONING", "STOPPED"] if awsvpc else ["STOPPED"])
        else:
            path += ["RUNNING"] * rng.choices((0, 1, 2), weights=(70, 20, 10))[0]   # health-check updates
            path += list(_AWSVPC_STOP if awsvpc else _BRIDGE_STOP)
        svc = is_service and rng.random() < 0.8
        if instance is not None:   # placement reserves the resources at once
            instance.used_cpu += int(cpu)
            instance.used_memory += int(memory)
            if main.host_port:
                instance.used_ports.append(str(main.host_port))
        return _Task(
            arn=arn, cluster=cluster, instance=instance, launch_type=launch_type, awsvpc=awsvpc, family=family,
            revision=rng.randint(1, 120), group=f"service:{family}" if svc else f"family:{family}",
            started_by=f"ecs-svc/{rng.randrange(10**18, 10**19)}" if svc else "", cpu=cpu, memory=memory,
            az=instance.az if instance else rng.choice(self.azs), containers=containers, overrides=overrides,
            path=path, fails=fails, created_at=self.now, eni_id=_uuid(rng) if awsvpc else "",
            eni_details=[{"name": "subnetId", "value": f"subnet-{_hex(rng, 17)}"}] if awsvpc else [],
        )

    # -- events

    def _envelope(self, detail_type: str, resource: str, detail: dict[str, Any],
                  source: str = "aws.ecs") -> dict[str, Any]:
        return {"version": "0", "id": _uuid(self.rng), "detail-type": detail_type, "source": source,
                "account": self.o.account, "time": iso_s(self.now), "region": self.o.region,
                "resources": [resource], "detail": detail}

    def step(self) -> tuple[str, str, dict[str, Any]]:
        """Advance the simulation by one event: (detail-type, resource ARN, event dict)."""
        rng = self.rng
        self.now += int(rng.expovariate(1 / 40)) + 1
        if self.queue:
            inst = self.queue.pop(0)
            if inst.status != "INACTIVE":
                return self._instance_event(inst)
        live = [i for i in self.instances if i.status != "INACTIVE"]
        if live and (not self.tasks or rng.random() < 0.06):
            return self._spontaneous_instance_event(rng.choice(live))
        while True:
            task = rng.choice(self.tasks)
            # RUNNING tasks are long-lived services: they are often passed over
            if task.last_status == "RUNNING" and rng.random() < 0.5:
                continue
            return self._advance(task)

    def _instance_event(self, inst: _Instance) -> tuple[str, str, dict[str, Any]]:
        inst.version = _next_version(self.rng, inst.version)
        inst.updated_at = self.now
        return INSTANCE_TYPE, inst.arn, self._envelope(INSTANCE_TYPE, inst.arn, inst.detail())

    def _spontaneous_instance_event(self, inst: _Instance) -> tuple[str, str, dict[str, Any]]:
        rng = self.rng
        roll = rng.random()
        if not inst.agent_connected:
            inst.agent_connected = True            # agent reconnected
        elif roll < 0.6:
            inst.agent_connected = False           # agent disconnected (reconnects on a later event)
        elif roll < 0.68 and inst.status == "ACTIVE":
            inst.status = "DRAINING"
        elif roll < 0.9 and inst.status == "DRAINING":
            if rng.random() < 0.5:
                inst.status = "ACTIVE"
            else:                                   # deregistered: replaced by a fresh instance
                inst.status, inst.agent_connected = "INACTIVE", False
                inst.status_reason = "Instance deregistration forced by user"
                self.instances.remove(inst)        # its last event is the one returned below
                self.instances.append(self._instance(inst.cluster, long_lived=False))
        else:
            inst.agent_version = inst.agent_version.rsplit(".", 1)[0] + f".{int(inst.agent_version.rsplit('.', 1)[1]) + 1}"
            inst.agent_hash = _hex(rng, 8)
        return self._instance_event(inst)

    def _advance(self, task: _Task) -> tuple[str, str, dict[str, Any]]:
        rng, now = self.rng, self.now
        status = task.path.pop(0)
        previous = task.last_status
        task.version = 1 if not previous else _next_version(rng, task.version)
        task.times["updatedAt"] = now
        inst = task.instance
        if status == "PENDING" and previous != "PENDING":
            task.times["connectivityAt"] = now
            if task.awsvpc:
                task.eni_status = "ATTACHED"
                task.eni_details = task.eni_details[:1] + [
                    {"name": "networkInterfaceId", "value": f"eni-{_hex(rng, 17)}"},
                    {"name": "macAddress", "value": ":".join(_hex(rng, 2) for _ in range(6))},
                    {"name": "privateDnsName", "value": f"ip-10-0-{rng.randrange(256)}-{rng.randrange(256)}."
                                                        f"ec2.internal"},
                    {"name": "privateIPv4Address", "value": _ip(rng)},
                ]
            if inst is not None:
                inst.pending += 1
                self.queue.append(inst)
        elif status in ("ACTIVATING", "RUNNING") and "pullStartedAt" not in task.times:
            since = now - task.times["connectivityAt"]   # the pull happened between connectivity and now
            task.times["pullStartedAt"] = task.times["connectivityAt"] + since * rng.randint(5, 30) // 100
            task.times["pullStoppedAt"] = task.times["connectivityAt"] + since * rng.randint(60, 95) // 100
            for c in task.containers:
                c.image_digest = "sha256:" + _hex(rng, 64)
        if status == "RUNNING":
            if previous != "RUNNING":
                task.times["startedAt"] = now
                for c in task.containers:
                    c.last_status, c.runtime_id = "RUNNING", _hex(rng, 32) + "-" + str(rng.randrange(10**9, 10**10))
                    c.health = "UNKNOWN"
                if inst is not None:
                    inst.pending -= 1
                    inst.running += 1
                    self.queue.append(inst)
            else:
                for c in task.containers:
                    c.health = "HEALTHY"
        if status in ("DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED") and task.desired_status != "STOPPED":
            task.desired_status = "STOPPED"
            task.times["stoppingAt"] = now
            if task.fails:
                task.stop_code = "TaskFailedToStart"
                task.stopped_reason = rng.choice(_FAIL_REASONS).format(image=task.containers[0].image)
            else:
                code, reason, task.exit_code = rng.choice(_STOPS)
                task.stop_code = code
                task.stopped_reason = reason.format(svc=rng.randrange(10**18, 10**19), tg=_hex(rng, 16))
        if status in ("DEPROVISIONING", "STOPPED") or (status == "STOPPING" and not task.awsvpc):
            if "executionStoppedAt" not in task.times:
                task.times["executionStoppedAt"] = now
                for k, c in enumerate(task.containers):
                    c.last_status = "STOPPED"
                    c.exit_code = None if task.fails else (task.exit_code if k == 0 else 0)
                    if task.fails and k == 0:
                        c.reason = task.stopped_reason.split(":")[0]
                    c.health = "UNKNOWN" if c.health else ""
            if task.awsvpc:
                task.eni_status = "DETACHED" if status == "DEPROVISIONING" else "DELETED"
        if status == "STOPPED":
            task.times["stoppedAt"] = now
            if inst is not None:
                if previous == "RUNNING" or "startedAt" in task.times:
                    inst.running -= 1
                else:
                    inst.pending -= 1
                inst.used_cpu -= int(task.cpu)
                inst.used_memory -= int(task.memory)
                for c in task.containers:
                    if c.host_port and str(c.host_port) in inst.used_ports:
                        inst.used_ports.remove(str(c.host_port))
                self.queue.append(inst)
        task.last_status = status
        event = self._envelope(TASK_TYPE, task.arn, task.detail(self.o.account, self.o.region))
        if not task.path:   # stopped: a new task takes its place
            self.tasks[self.tasks.index(task)] = self._task()
        return TASK_TYPE, task.arn, event

    def ignored_event(self) -> tuple[str, str, dict[str, Any]]:
        """A valid ECS event of a detail-type the processor ignores (no versioned state)."""
        rng, o = self.rng, self.o
        cluster = rng.choice(self.clusters)
        service = rng.choice(cluster.services)
        svc_arn = f"arn:aws:ecs:{o.region}:{o.account}:service/{cluster.name}/{service}"
        kind = rng.choice(IGNORED_TYPES)
        if kind == "ECS Service Action":
            detail: dict[str, Any] = {"eventType": "INFO", "eventName": rng.choice(
                ("SERVICE_STEADY_STATE", "TASKSET_STEADY_STATE", "CAPACITY_PROVIDER_STEADY_STATE")),
                "clusterArn": cluster.arn, "createdAt": iso_ms(self.now)}
        elif kind == "ECS Deployment State Change":
            dep = f"ecs-svc/{rng.randrange(10**18, 10**19)}"
            detail = {"eventType": "INFO", "eventName": rng.choice(
                ("SERVICE_DEPLOYMENT_IN_PROGRESS", "SERVICE_DEPLOYMENT_COMPLETED")), "deploymentId": dep,
                "updatedAt": iso_ms(self.now), "reason": f"ECS deployment {dep} in progress."}
        else:
            detail = {"eventVersion": "1.08", "eventTime": iso_s(self.now), "eventSource": "ecs.amazonaws.com",
                      "eventName": rng.choice(("UpdateService", "RunTask", "StopTask")), "awsRegion": o.region,
                      "sourceIPAddress": "ecs.amazonaws.com", "userAgent": "ecs.amazonaws.com",
                      "requestParameters": {"cluster": cluster.name, "service": service},
                      "readOnly": False, "eventType": "AwsApiCall", "managementEvent": True,
                      "recipientAccountId": o.account, "eventCategory": "Management"}
        return kind, svc_arn, self._envelope(kind, svc_arn, detail)


# ------------------------------------------------------------------------------------------------- poison


def _poison_key(rng: random.Random, template: dict[str, Any] | None) -> str:
    roll = rng.random()
    if template is not None and roll < 0.4:
        return str(template["resources"][0])   # a real ARN: the bad record must not touch that ARN's state
    if roll < 0.7:
        return _uuid(rng)                       # EventBridge's default partition key is the event id
    return f"poison-{rng.randrange(10**6)}"


def _arn_field(event: dict[str, Any]) -> str:
    return "taskArn" if event["detail-type"] == TASK_TYPE else "containerInstanceArn"


def make_poison(kind: str, rng: random.Random, template: dict[str, Any], fmt: str) -> bytes:
    """Bytes of one bad record of ``kind``, built (where it makes sense) from ``template``, a copy of a valid
    event already sent. Pure; ``template`` is not modified."""
    ev = json.loads(json.dumps(template))     # deep copy of plain data
    detail = ev["detail"]
    version = detail["version"]
    arn_field = _arn_field(ev)
    enc = (lambda obj: encode(obj, fmt))
    if kind == "truncated":
        data = enc(ev)
        return data[: rng.randrange(1, len(data) - 1)]
    if kind == "invalid-utf8":
        marker = "\u00e9" * 6
        detail["group" if "group" in detail else "ec2InstanceId"] = marker
        data = enc(ev)
        bad = rng.choice((b"\xff\xfe\xfd\xfc\xfb\xfa", b"\xc3\x28\xa0\xa1\xe2\x28", b"\xed\xa0\x80\xed\xbf\xbf"))
        return data.replace(marker.encode("utf-8"), bad + bad, 1)
    if kind == "lone-surrogate":   # JSON only: a valid escape that decodes to a str UTF-8 cannot encode
        data = enc(ev)
        return data.replace(b'"detail":{', b'"detail":{"note":"bad \\ud800 surrogate",', 1)
    if kind == "trailing-data":
        return enc(ev) + rng.choice((b"}", b" x", b"\n{}", b"\x00"))
    if kind == "array":
        return enc([ev])
    if kind == "number":
        return enc(rng.choice((rng.randrange(-10**6, 10**6), rng.random() * 1000)))
    if kind == "string":
        return enc(rng.choice(("ECS Task State Change", "", "{\"version\":\"0\"}")))
    if kind == "null":
        return enc(None)
    if kind == "boolean":
        return enc(rng.random() < 0.5)
    if kind == "empty":
        return b""
    if kind == "whitespace":
        return rng.choice((b" ", b"\n", b"\r\n\t  "))
    if kind == "wrong-source":
        ev["source"] = rng.choice(("aws.ec2", "custom.ecs-replay", "aws.ecs.fake", ""))
        return enc(ev)
    if kind == "no-detail":
        del ev["detail"]
        return enc(ev)
    if kind == "detail-not-object":
        ev["detail"] = rng.choice(([detail], json.dumps(detail), 7))
        return enc(ev)
    if kind.startswith("version-"):
        what = kind.removeprefix("version-")
        if what == "missing":
            del detail["version"]
        elif what == "string":
            detail["version"] = str(version)
        elif what == "float":
            detail["version"] = version + 0.25
        elif what == "negative":
            detail["version"] = -version
        elif what == "huge":
            # beyond 64 bits in JSON; msgpack integers stop at 2**64-1, so there: beyond a signed 64-bit long
            detail["version"] = (2**64 if fmt == "json" else 2**63) + version
        elif what == "nan":
            if fmt == "json":
                return re.sub(rb'"version":%d(?=[,}])' % version, b'"version":NaN', enc(ev), count=1)
            detail["version"] = float("nan")
        elif what == "bool":
            detail["version"] = True
        else:  # pragma: no cover - a programming error
            raise ValueError(kind)
        return enc(ev)
    if kind == "empty-arn":
        detail[arn_field] = ""
        ev["resources"] = [""]
        return enc(ev)
    if kind == "missing-arn":
        del detail[arn_field]
        return enc(ev)
    if kind == "msgpack-garbage":
        head = rng.choice((b"\x85", b"\xde\x00\x09", b"\x8f\xa7version"))
        return head + rng.randbytes(rng.randint(8, 300))
    if kind == "deep-nesting":
        depth = 100_000
        if fmt == "json":
            return enc(ev).replace(b'"detail":{', b'"detail":{"nested":' + b"[" * depth + b"]" * depth + b",", 1)
        return b"\x81\xa6detail" + b"\x91" * depth + b"\xc0"
    if kind == "bom":
        return b"\xef\xbb\xbf" + enc(ev)
    if kind == "duplicate-keys":   # the last value is the real one, so a last-wins parser sees a valid event
        bogus = version + 1_000_000
        if fmt == "json":
            return enc(ev).replace(b'"detail":{', b'"detail":{"version":%d,' % bogus, 1)
        packer = msgpack.Packer(use_bin_type=True)
        out = [packer.pack_map_header(len(ev))]
        for key, value in ev.items():
            out.append(packer.pack(key))
            if key != "detail":
                out.append(packer.pack(value))
                continue
            out.append(packer.pack_map_header(len(value) + 1))
            out.append(packer.pack("version") + packer.pack(bogus))
            for k2, v2 in value.items():
                out.append(packer.pack(k2) + packer.pack(v2))
        return b"".join(out)
    raise ValueError(f"unknown poison kind {kind!r}")


# ------------------------------------------------------------------------------------------------- stream


def _mixed(options: Options, rng: random.Random) -> Iterator[Record]:
    """Events, duplicates, poison and ignored records in generation order (before reordering)."""
    sim = Simulation(options, rng)
    fmt = options.format
    kinds = poison_kinds(fmt)
    template: dict[str, Any] | None = None
    while True:
        roll = rng.random()
        if roll < options.poison_rate and template is not None:   # poison copies an event already sent
            kind = rng.choice(kinds)
            yield Record(_poison_key(rng, template), make_poison(kind, rng, template, fmt), "poison", kind)
            continue
        if options.poison_rate <= roll < options.poison_rate + options.ignored_rate:
            dtype, arn, event = sim.ignored_event()
            yield Record(arn, encode(event, fmt), "ignored", dtype)
            continue
        dtype, arn, event = sim.step()
        template = event
        detail = event["detail"]
        if dtype == TASK_TYPE:
            rec = Record(arn, encode(event, fmt), "task", "", arn, detail["version"], detail["lastStatus"])
        else:
            rec = Record(arn, encode(event, fmt), "instance", "", arn, detail["version"], detail["status"])
        yield rec
        if options.duplicate_rate and rng.random() < options.duplicate_rate:
            yield Record(rec.partition_key, rec.data, rec.kind, rec.detail, rec.arn, rec.version, rec.status, True)


def reorder(records: Iterable[Record], window: int, rng: random.Random) -> Iterator[Record]:
    """Bounded shuffle: record ``i`` gets the sort key ``i + U[0, window)`` and records leave in key order, so
    no record moves ``window`` or more places from where it was generated."""
    if window <= 1:
        yield from records
        return
    heap: list[tuple[float, int, Record]] = []
    for i, rec in enumerate(records):
        heapq.heappush(heap, (i + rng.random() * window, i, rec))
        while heap and heap[0][0] < i + 1:   # every later record has a key >= i + 1
            yield heapq.heappop(heap)[2]
    while heap:
        yield heapq.heappop(heap)[2]


def generate(options: Options) -> Iterator[Record]:
    """The endless, deterministic record stream for ``options`` (take what you need with ``islice``)."""
    rng = random.Random(options.seed)
    reorder_rng = random.Random(f"reorder:{options.seed}")
    return reorder(_mixed(options, rng), options.reorder_window, reorder_rng)
