"""The simulated ECS resources: :class:`Cluster`, :class:`Instance` (a container instance), :class:`Container`
and :class:`Task`, mutable state the simulation moves through the ECS life cycle, and their ``detail()``
renderers, which produce an event's ``detail`` as ECS writes it.

Rules: no randomness here (the simulation decides every value; a renderer only formats the current state);
``detail()`` returns new plain data (JSON/msgpack-ready) with keys in ECS's order, which the stream's hashes
depend on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from processor.loadgen.values import iso_ms


@dataclass(eq=False)
class Cluster:
    """A cluster and the services tasks may belong to."""

    name: str
    arn: str
    services: list[str]
    account: str = "123456789012"
    region: str = "us-east-1"


@dataclass(eq=False)
class Instance:
    """A container instance (an EC2 host registered to a cluster) and the resources its tasks use."""

    arn: str
    cluster: Cluster
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
        """The ``detail`` of an ECS Container Instance State Change event for the current state."""

        def resources(cpu: int, memory: int, ports: list[str]) -> list[dict[str, Any]]:
            return [
                {"name": "CPU", "type": "INTEGER", "doubleValue": 0.0, "longValue": 0, "integerValue": cpu},
                {"name": "MEMORY", "type": "INTEGER", "doubleValue": 0.0, "longValue": 0, "integerValue": memory},
                {
                    "name": "PORTS",
                    "type": "STRINGSET",
                    "doubleValue": 0.0,
                    "longValue": 0,
                    "integerValue": 0,
                    "stringSetValue": ports,
                },
                {
                    "name": "PORTS_UDP",
                    "type": "STRINGSET",
                    "doubleValue": 0.0,
                    "longValue": 0,
                    "integerValue": 0,
                    "stringSetValue": [],
                },
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
            "remainingResources": resources(
                self.cpu - self.used_cpu, self.memory - self.used_memory, base_ports + self.used_ports
            ),
            "runningTasksCount": self.running,
            "status": self.status,
            "updatedAt": iso_ms(self.updated_at),
            "version": self.version,
            "versionInfo": {
                "agentHash": self.agent_hash,
                "agentVersion": self.agent_version,
                "dockerVersion": self.docker_version,
            },
        }
        if self.status_reason:
            out["statusReason"] = self.status_reason
        return out


@dataclass(eq=False)
class Container:
    """One container of a task."""

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
class Task:
    """A task, its containers, and the ``lastStatus`` values it has still to go through."""

    arn: str
    cluster: Cluster
    instance: Instance | None
    launch_type: str
    awsvpc: bool
    family: str
    revision: int
    group: str
    started_by: str
    cpu: str
    memory: str
    az: str
    containers: list[Container]
    overrides: dict[str, Any]
    path: list[str]  # remaining lastStatus values, front first
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
    exit_reason: str = ""  # the main container's reason when it exits (e.g. OutOfMemoryError)

    def detail(self, account: str, region: str) -> dict[str, Any]:
        """The ``detail`` of an ECS Task State Change event for the current state."""
        out: dict[str, Any] = {}
        if self.awsvpc:
            out["attachments"] = [
                {"id": self.eni_id, "type": "eni", "status": self.eni_status, "details": self.eni_details}
            ]
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
                    cd["networkInterfaces"] = [
                        {"attachmentId": self.eni_id, "privateIpv4Address": self.eni_details[-1]["value"]}
                    ]
                else:
                    cd["networkInterfaces"] = []
            elif c.host_port and c.last_status == "RUNNING":
                cd["networkBindings"] = [
                    {"bindIP": "0.0.0.0", "containerPort": c.container_port, "hostPort": c.host_port, "protocol": "tcp"}
                ]
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
