"""The synthetic fleet's fixed vocabulary: event detail-types, wire formats and the constant tables the simulation
draws from (cluster names, EC2 instance types, task families, sidecars, stop and failure reasons, container
instance attributes, task status paths).

Rules: data only (no functions, no randomness, no imports from the package); every table is a tuple, so nothing
mutates it. The generator's output depends on these values *and their order* (the seeded ``random.Random``
picks by index): changing either changes the stream for every seed.
"""

from __future__ import annotations

# ------------------------------------------------------------------------------------------------ event types

TASK_TYPE = "ECS Task State Change"
INSTANCE_TYPE = "ECS Container Instance State Change"
IGNORED_TYPES = ("ECS Service Action", "ECS Deployment State Change", "AWS API Call via CloudTrail")
FORMATS = ("json", "msgpack")

# ---------------------------------------------------------------------------------------------- fleet tables

CLUSTER_NAMES = ("prod-web", "prod-batch", "staging", "payments", "analytics", "internal-tools", "edge", "ml")
INSTANCE_TYPES = (  # type, CPU units, MEMORY MiB registered
    ("m5.large", 2048, 7680),
    ("m5.xlarge", 4096, 15620),
    ("c5.2xlarge", 8192, 15620),
    ("r5.large", 2048, 15817),
    ("m6i.2xlarge", 8192, 31655),
)
FAMILIES = (  # family, task cpu, task memory, main image, service?
    ("web", "512", "1024", "{acct}.dkr.ecr.{region}.amazonaws.com/web-frontend:{ver}", True),
    ("api", "1024", "2048", "{acct}.dkr.ecr.{region}.amazonaws.com/orders-api:{ver}", True),
    ("worker", "2048", "4096", "{acct}.dkr.ecr.{region}.amazonaws.com/queue-worker:{ver}", True),
    ("nginx", "256", "512", "public.ecr.aws/nginx/nginx:1.27-alpine", True),
    ("nightly-report", "1024", "3072", "{acct}.dkr.ecr.{region}.amazonaws.com/reports:{ver}", False),
    ("db-migrate", "256", "512", "{acct}.dkr.ecr.{region}.amazonaws.com/migrations:{ver}", False),
)
SIDECARS = (
    ("envoy", "public.ecr.aws/appmesh/aws-appmesh-envoy:v1.29.6.0-prod", "64"),
    ("xray-daemon", "public.ecr.aws/xray/aws-xray-daemon:3.3.12", "32"),
    ("log-router", "public.ecr.aws/aws-observability/aws-for-fluent-bit:2.32.2", "50"),
)
STOPS = (  # stopCode, stoppedReason, exit code and reason of the main container
    (
        "EssentialContainerExited",
        "Essential container in task exited",
        137,
        "OutOfMemoryError: Container killed due to memory usage",
    ),
    ("ServiceSchedulerInitiated", "Scaling activity initiated by (deployment ecs-svc/{svc})", 0, ""),
    ("UserInitiated", "Task stopped by user", 143, ""),
    ("ServiceSchedulerInitiated", "Task failed ELB health checks in (target-group {tg})", 137, ""),
    ("SpotInterruption", "Your Spot Task was interrupted.", 143, ""),
)
FAIL_REASONS = (
    "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref "
    "{image}: not found",
    "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: "
    "unable to retrieve secret from asm: service call has been retried 1 time(s)",
    "CannotStartContainerError: Error response from daemon: failed to create shim task: OCI runtime create failed",
)
INSTANCE_ATTRIBUTES = (
    "com.amazonaws.ecs.capability.logging-driver.syslog",
    "com.amazonaws.ecs.capability.logging-driver.awslogs",
    "com.amazonaws.ecs.capability.logging-driver.json-file",
    "com.amazonaws.ecs.capability.logging-driver.none",
    "com.amazonaws.ecs.capability.privileged-container",
    "com.amazonaws.ecs.capability.docker-remote-api.1.17",
    "com.amazonaws.ecs.capability.docker-remote-api.1.18",
    "com.amazonaws.ecs.capability.docker-remote-api.1.19",
    "com.amazonaws.ecs.capability.docker-remote-api.1.20",
    "com.amazonaws.ecs.capability.docker-remote-api.1.21",
    "com.amazonaws.ecs.capability.docker-remote-api.1.22",
    "com.amazonaws.ecs.capability.docker-remote-api.1.23",
    "com.amazonaws.ecs.capability.docker-remote-api.1.24",
    "com.amazonaws.ecs.capability.docker-remote-api.1.25",
    "com.amazonaws.ecs.capability.docker-remote-api.1.29",
    "com.amazonaws.ecs.capability.docker-remote-api.1.32",
    "com.amazonaws.ecs.capability.docker-remote-api.1.44",
    "com.amazonaws.ecs.capability.ecr-auth",
    "com.amazonaws.ecs.capability.task-iam-role",
    "com.amazonaws.ecs.capability.task-iam-role-network-host",
    "ecs.capability.execution-role-awslogs",
    "ecs.capability.execution-role-ecr-pull",
    "ecs.capability.secrets.asm.environment-variables",
    "ecs.capability.secrets.ssm.environment-variables",
    "ecs.capability.container-health-check",
    "ecs.capability.task-eni",
    "ecs.capability.awsvpc-trunking",
    "ecs.capability.firelens.fluentbit",
    "ecs.capability.container-ordering",
    "ecs.capability.full-sync",
    "ecs.capability.service-connect-v1",
    "ecs.capability.efsAuth",
)
# a task's lastStatus values: start, then stop; awsvpc tasks (an ENI of their own) have more of both
AWSVPC_PATH = ("PROVISIONING", "PENDING", "ACTIVATING", "RUNNING")
AWSVPC_STOP = ("DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED")
BRIDGE_PATH = ("PENDING", "RUNNING")
BRIDGE_STOP = ("STOPPING", "STOPPED")
