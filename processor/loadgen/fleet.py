"""The synthetic ECS fleet: a pure, seeded generator of the records an EventBridge rule writes to Kinesis.

:func:`generate` is driven by one seeded ``random.Random``: the same :class:`Options` (seed included) give the
identical stream of :class:`Record` (partition key, bytes, kind, and what the record means). :class:`Simulation`
moves clusters, container instances and tasks (:mod:`processor.loadgen.resources`) through the ECS life cycle;
the stream mixes in duplicates (same bytes again, as EventBridge's at-least-once delivery does), bounded
reordering (:func:`reorder`), poison records (:mod:`processor.loadgen.poison`) and valid events of detail-types
the processor ignores.

Rules: no I/O; every random value comes from the seeded generators, drawn in a fixed order, so any change to
what is drawn when changes every stream (the tests pin hashes). The constant tables are in
:mod:`processor.loadgen.catalog`, the options, record type and encoding in :mod:`processor.loadgen.records`.

What the records mean is accumulated by :class:`processor.loadgen.ground_truth.GroundTruth`;
:mod:`processor.loadgen.producer` sends them to Kinesis; the benchmark (``./scripts/bench``) feeds them to the
processor and to the per-event baseline.
"""

from __future__ import annotations

import heapq
import random
from typing import Any, Iterable, Iterator

from processor.loadgen.catalog import (
    AWSVPC_PATH,
    AWSVPC_STOP,
    BRIDGE_PATH,
    BRIDGE_STOP,
    CLUSTER_NAMES,
    FAIL_REASONS,
    FAMILIES,
    IGNORED_TYPES,
    INSTANCE_ATTRIBUTES,
    INSTANCE_TYPE,
    INSTANCE_TYPES,
    SIDECARS,
    STOPS,
    TASK_TYPE,
)
from processor.loadgen.poison import make_poison, poison_key, poison_kinds
from processor.loadgen.records import Options, Record, encode
from processor.loadgen.resources import Cluster, Container, Instance, Task
from processor.loadgen.values import iso_ms, iso_s, random_hex, random_ip, random_uuid


def _next_version(rng: random.Random, version: int) -> int:
    """+1 per state change; about 3 % of the time a gap (ECS bumped the version without an event we saw)."""
    return version + (rng.randint(2, 4) if rng.random() < 0.03 else 1)


class Simulation:
    """Clusters, container instances and tasks moving through their life cycles; :meth:`step` returns the next
    ECS event (detail-type, resource ARN, event dict). Pure: all randomness comes from ``rng``."""

    def __init__(self, options: Options, rng: random.Random) -> None:
        self.o = options
        self.rng = rng
        self.now = options.start_ms
        self.clusters = [self._cluster(i, *home) for home in options.homes() for i in range(options.clusters)]
        self.instances: list[Instance] = []
        for i in range(options.instances):
            self.instances.append(self._instance(self.clusters[i % len(self.clusters)], long_lived=True))
        self.tasks: list[Task] = [self._task() for _ in range(options.tasks)]
        self.queue: list[Instance] = []  # instance events owed (task placed, started, stopped)

    # -- construction

    def _cluster(self, i: int, account: str, region: str) -> Cluster:
        """Cluster ``i`` of one account and region: the same names in every account and region, as in real
        organisations."""
        name = CLUSTER_NAMES[i % len(CLUSTER_NAMES)] + ("" if i < len(CLUSTER_NAMES) else f"-{i}")
        arn = f"arn:aws:ecs:{region}:{account}:cluster/{name}"
        services = [f"{fam}" for fam, *_rest, svc in FAMILIES if svc]
        return Cluster(name, arn, services, account, region)

    @staticmethod
    def _azs(cluster: Cluster) -> list[str]:
        return [f"{cluster.region}{s}" for s in "abc"]

    def _instance(self, cluster: Cluster, long_lived: bool) -> Instance:
        rng = self.rng
        itype, cpu, memory = rng.choice(INSTANCE_TYPES)
        major = rng.choice((80, 83, 86, 88))
        attributes = [{"name": name} for name in INSTANCE_ATTRIBUTES]
        az = rng.choice(self._azs(cluster))
        attributes += [
            {"name": "ecs.availability-zone", "value": az},
            {"name": "ecs.instance-type", "value": itype},
            {"name": "ecs.os-type", "value": "linux"},
            {"name": "ecs.os-family", "value": "LINUX"},
            {"name": "ecs.cpu-architecture", "value": "x86_64"},
            {"name": "ecs.ami-id", "value": f"ami-{random_hex(rng, 17)}"},
            {"name": "ecs.vpc-id", "value": f"vpc-{random_hex(rng, 17)}"},
            {"name": "ecs.subnet-id", "value": f"subnet-{random_hex(rng, 17)}"},
        ]
        inst = Instance(
            arn=f"arn:aws:ecs:{cluster.region}:{cluster.account}:container-instance/{cluster.name}/"
            f"{random_hex(rng, 32)}",
            cluster=cluster,
            ec2_id=f"i-{random_hex(rng, 17)}",
            az=az,
            itype=itype,
            cpu=cpu,
            memory=memory,
            registered_at=self.now - (rng.randrange(86_400_000, 90 * 86_400_000) if long_lived else 0),
            version=rng.randint(50, 150_000) if long_lived else 1,
            agent_version=f"1.{major}.{rng.randrange(4)}",
            agent_hash=random_hex(rng, 8),
            docker_version=f"DockerVersion: {rng.choice(('20.10.25', '24.0.9', '25.0.6'))}",
            attributes=attributes,
            updated_at=self.now,
        )
        return inst

    def _task(self) -> Task:
        rng = self.rng
        cluster = rng.choice(self.clusters)
        account, region = cluster.account, cluster.region
        family, cpu, memory, image, is_service = rng.choice(FAMILIES)
        hosts = [
            i
            for i in self.instances
            if i.cluster is cluster
            and i.status == "ACTIVE"
            and i.cpu - i.used_cpu >= int(cpu)
            and i.memory - i.used_memory >= int(memory)
        ]
        instance = rng.choice(hosts) if hosts and rng.random() < 0.5 else None
        launch_type = "EC2" if instance else "FARGATE"
        awsvpc = instance is None or rng.random() < 0.5
        image = image.format(
            acct=account, region=region, ver=f"{rng.randint(1, 9)}.{rng.randint(0, 40)}.{rng.randint(0, 9)}"
        )
        task_id = random_hex(rng, 32)
        arn = f"arn:aws:ecs:{region}:{account}:task/{cluster.name}/{task_id}"
        container_arn = f"arn:aws:ecs:{region}:{account}:container/{cluster.name}/{task_id}"
        main = Container(
            arn=f"{container_arn}/{random_uuid(rng)}",
            name=family,
            image=image,
            cpu="0",
            memory_reservation=str(int(memory) // 2),
            essential=True,
        )
        if not awsvpc:
            main.container_port, main.host_port = 8080, rng.randint(32768, 60999)
        containers = [main]
        n_side = rng.choices((0, 1, 2, 3), weights=(55, 25, 12, 8))[0]
        for name, side_image, mem in rng.sample(SIDECARS, n_side):
            containers.append(
                Container(
                    arn=f"{container_arn}/{random_uuid(rng)}",
                    name=name,
                    image=side_image,
                    cpu="0",
                    memory_reservation=mem,
                    essential=False,
                )
            )
        overrides: dict[str, Any] = {
            "containerOverrides": [{"name": c.name} for c in containers],
            "inferenceAcceleratorOverrides": [],
        }
        if rng.random() < 0.15:  # a run-task with environment overrides: these make the big events
            env = [
                {"name": f"FEATURE_FLAG_{k:03d}", "value": random_hex(rng, rng.randint(8, 96))}
                for k in range(rng.choice((3, 10, 30, 80)))
            ]
            overrides["containerOverrides"][0]["environment"] = env
            if rng.random() < 0.5:
                overrides["containerOverrides"][0]["command"] = ["/bin/sh", "-c", f"run --shard {rng.randrange(64)}"]
        fails = rng.random() < 0.05
        path = list(AWSVPC_PATH if awsvpc else BRIDGE_PATH)
        if fails:
            path = path[: path.index("PENDING") + 1] + (["DEPROVISIONING", "STOPPED"] if awsvpc else ["STOPPED"])
        else:
            path += ["RUNNING"] * rng.choices((0, 1, 2), weights=(70, 20, 10))[0]  # health-check updates
            path += list(AWSVPC_STOP if awsvpc else BRIDGE_STOP)
        svc = is_service and rng.random() < 0.8
        if instance is not None:  # placement reserves the resources at once
            instance.used_cpu += int(cpu)
            instance.used_memory += int(memory)
            if main.host_port:
                instance.used_ports.append(str(main.host_port))
        return Task(
            arn=arn,
            cluster=cluster,
            instance=instance,
            launch_type=launch_type,
            awsvpc=awsvpc,
            family=family,
            revision=rng.randint(1, 120),
            group=f"service:{family}" if svc else f"family:{family}",
            started_by=f"ecs-svc/{rng.randrange(10**18, 10**19)}" if svc else "",
            cpu=cpu,
            memory=memory,
            az=instance.az if instance else rng.choice(self._azs(cluster)),
            containers=containers,
            overrides=overrides,
            path=path,
            fails=fails,
            created_at=self.now,
            eni_id=random_uuid(rng) if awsvpc else "",
            eni_details=[{"name": "subnetId", "value": f"subnet-{random_hex(rng, 17)}"}] if awsvpc else [],
        )

    # -- events

    def _envelope(
        self, detail_type: str, resource: str, detail: dict[str, Any], source: str = "aws.ecs"
    ) -> dict[str, Any]:
        _, _, _, region, account, _ = resource.split(":", 5)  # the resource's own account and region
        return {
            "version": "0",
            "id": random_uuid(self.rng),
            "detail-type": detail_type,
            "source": source,
            "account": account,
            "time": iso_s(self.now),
            "region": region,
            "resources": [resource],
            "detail": detail,
        }

    def step(self) -> tuple[str, str, dict[str, Any]]:
        """Advance the simulation by one event: (detail-type, resource ARN, event dict)."""
        rng = self.rng
        self.now += int(rng.expovariate(1 / self.o.step_ms)) + 1
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

    def _instance_event(self, inst: Instance) -> tuple[str, str, dict[str, Any]]:
        inst.version = _next_version(self.rng, inst.version)
        inst.updated_at = self.now
        return INSTANCE_TYPE, inst.arn, self._envelope(INSTANCE_TYPE, inst.arn, inst.detail())

    def _spontaneous_instance_event(self, inst: Instance) -> tuple[str, str, dict[str, Any]]:
        rng = self.rng
        roll = rng.random()
        if not inst.agent_connected:
            inst.agent_connected = True  # agent reconnected
        elif roll < 0.6:
            inst.agent_connected = False  # agent disconnected (reconnects on a later event)
        elif roll < 0.68 and inst.status == "ACTIVE":
            inst.status = "DRAINING"
        elif roll < 0.9 and inst.status == "DRAINING":
            if rng.random() < 0.5:
                inst.status = "ACTIVE"
            else:  # deregistered: replaced by a fresh instance
                inst.status, inst.agent_connected = "INACTIVE", False
                inst.status_reason = "Instance deregistration forced by user"
                self.instances.remove(inst)  # its last event is the one returned below
                self.instances.append(self._instance(inst.cluster, long_lived=False))
        else:
            line, patch = inst.agent_version.rsplit(".", 1)
            inst.agent_version = f"{line}.{int(patch) + 1}"
            inst.agent_hash = random_hex(rng, 8)
        return self._instance_event(inst)

    def _advance(self, task: Task) -> tuple[str, str, dict[str, Any]]:
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
                    {"name": "networkInterfaceId", "value": f"eni-{random_hex(rng, 17)}"},
                    {"name": "macAddress", "value": ":".join(random_hex(rng, 2) for _ in range(6))},
                    {
                        "name": "privateDnsName",
                        "value": f"ip-10-0-{rng.randrange(256)}-{rng.randrange(256)}.ec2.internal",
                    },
                    {"name": "privateIPv4Address", "value": random_ip(rng)},
                ]
            if inst is not None:
                inst.pending += 1
                self.queue.append(inst)
        elif status in ("ACTIVATING", "RUNNING") and "pullStartedAt" not in task.times:
            since = now - task.times["connectivityAt"]  # the pull happened between connectivity and now
            task.times["pullStartedAt"] = task.times["connectivityAt"] + since * rng.randint(5, 30) // 100
            task.times["pullStoppedAt"] = task.times["connectivityAt"] + since * rng.randint(60, 95) // 100
            for c in task.containers:
                c.image_digest = "sha256:" + random_hex(rng, 64)
        if status == "RUNNING":
            if previous != "RUNNING":
                task.times["startedAt"] = now
                for c in task.containers:
                    c.last_status = "RUNNING"
                    c.runtime_id = random_hex(rng, 32) + "-" + str(rng.randrange(10**9, 10**10))
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
                task.stopped_reason = rng.choice(FAIL_REASONS).format(image=task.containers[0].image)
            else:
                code, reason, task.exit_code, task.exit_reason = rng.choice(STOPS)
                task.stop_code = code
                task.stopped_reason = reason.format(svc=rng.randrange(10**18, 10**19), tg=random_hex(rng, 16))
        if status in ("DEPROVISIONING", "STOPPED") or (status == "STOPPING" and not task.awsvpc):
            if "executionStoppedAt" not in task.times:
                task.times["executionStoppedAt"] = now
                for k, c in enumerate(task.containers):
                    c.last_status = "STOPPED"
                    c.exit_code = None if task.fails else (task.exit_code if k == 0 else 0)
                    if task.fails and k == 0:
                        c.reason = task.stopped_reason.split(":")[0]
                    elif k == 0 and task.exit_reason:
                        c.reason = task.exit_reason
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
        event = self._envelope(TASK_TYPE, task.arn, task.detail(task.cluster.account, task.cluster.region))
        if not task.path:  # stopped: a new task takes its place
            self.tasks[self.tasks.index(task)] = self._task()
        return TASK_TYPE, task.arn, event

    def ignored_event(self) -> tuple[str, str, dict[str, Any]]:
        """A valid ECS event of a detail-type the processor ignores (no versioned state)."""
        rng = self.rng
        cluster = rng.choice(self.clusters)
        service = rng.choice(cluster.services)
        svc_arn = f"arn:aws:ecs:{cluster.region}:{cluster.account}:service/{cluster.name}/{service}"
        kind = rng.choice(IGNORED_TYPES)
        if kind == "ECS Service Action":
            detail: dict[str, Any] = {
                "eventType": "INFO",
                "eventName": rng.choice(
                    ("SERVICE_STEADY_STATE", "TASKSET_STEADY_STATE", "CAPACITY_PROVIDER_STEADY_STATE")
                ),
                "clusterArn": cluster.arn,
                "createdAt": iso_ms(self.now),
            }
        elif kind == "ECS Deployment State Change":
            dep = f"ecs-svc/{rng.randrange(10**18, 10**19)}"
            detail = {
                "eventType": "INFO",
                "eventName": rng.choice(("SERVICE_DEPLOYMENT_IN_PROGRESS", "SERVICE_DEPLOYMENT_COMPLETED")),
                "deploymentId": dep,
                "updatedAt": iso_ms(self.now),
                "reason": f"ECS deployment {dep} in progress.",
            }
        else:
            detail = {
                "eventVersion": "1.08",
                "eventTime": iso_s(self.now),
                "eventSource": "ecs.amazonaws.com",
                "eventName": rng.choice(("UpdateService", "RunTask", "StopTask")),
                "awsRegion": cluster.region,
                "sourceIPAddress": "ecs.amazonaws.com",
                "userAgent": "ecs.amazonaws.com",
                "requestParameters": {"cluster": cluster.name, "service": service},
                "readOnly": False,
                "eventType": "AwsApiCall",
                "managementEvent": True,
                "recipientAccountId": cluster.account,
                "eventCategory": "Management",
            }
        return kind, svc_arn, self._envelope(kind, svc_arn, detail)


# ------------------------------------------------------------------------------------------------- stream


def _mixed(options: Options, rng: random.Random) -> Iterator[Record]:
    """Events, duplicates, poison and ignored records in generation order (before reordering)."""
    sim = Simulation(options, rng)
    fmt = options.format
    kinds = poison_kinds(fmt)
    template: dict[str, Any] | None = None
    while True:
        roll = rng.random()
        if roll < options.poison_rate and template is not None:  # poison copies an event already sent
            kind = rng.choice(kinds)
            yield Record(poison_key(rng, template), make_poison(kind, rng, template, fmt), "poison", kind)
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
        while heap and heap[0][0] < i + 1:  # every later record has a key >= i + 1
            yield heapq.heappop(heap)[2]
    while heap:
        yield heapq.heappop(heap)[2]


def generate(options: Options) -> Iterator[Record]:
    """The endless, deterministic record stream for ``options`` (take what you need with ``islice``)."""
    rng = random.Random(options.seed)
    reorder_rng = random.Random(f"reorder:{options.seed}")
    return reorder(_mixed(options, rng), options.reorder_window, reorder_rng)
