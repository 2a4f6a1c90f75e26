"""The tables' schema, once: key schemas, the types of the attributes the processor writes, the read indexes with
their projections, and the derived index-key attributes the item builder writes. Pure data and pure functions
(stdlib only). Read by ``ecs-state setup`` (``ops/setup_tables.py``), the processor's start-up check
(``shard/table_check.py``), the item builder (``core/items.py``), the event decoder (``core/events.py``), the read
side (``ops/read.py``, ``ops/reconcile.py``) and a test that holds deploy/ecs-state.yaml equal to it.

Rules:
- The processor needs only the tables' key schemas. The indexes serve the read side; a missing one is a warning at
  start, never a refusal. An index keyed on an attribute the processor writes, with another type, is a
  configuration error (DynamoDB would refuse every such item).
- DynamoDB refuses a whole PutItem when an index key attribute is present but is not a non-empty string within its
  size limit (hash keys 2048 bytes, range keys 1024). Detail fields used as index keys (``INDEX_KEY_LIMITS``) are
  checked by the item builder (the record becomes a dead letter); derived attributes (``index_attributes``) are
  written only when they are such strings, so they never cause a refusal.
- Index design for big fleets: no index is keyed on the cluster ARN alone (one hot partition per cluster): the
  cluster listing spreads a cluster over ``CLUSTER_PARTS`` partitions (``cluster_part``), the stopped-task index
  over one partition per cluster and UTC day (``stopped_day``); indexes are sparse where only some items must be
  found (tasks placed on a container instance; tasks of a service; stopped tasks) and project keys only, or the one
  attribute a listing filters on; readers fetch the full items with BatchGetItem.
- The cluster catalogue (``CATALOG``) is one item per cluster keyed by its ARN, with no index: the processor
  writes it at a bounded rate (``shard/catalog.py``), the read side scans it (a few items per cluster).
- Derived attribute names are snake_case like the other metadata, so they cannot be an ECS (camelCase) field; a
  ``detail`` field of one of those names is left out of the item all the same.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Mapping

from processor.core.words import Word


class Kind(Word):
    """What a table holds. A ``str`` so that it compares, hashes, formats and serialises as its value."""

    TASK = "task"
    INSTANCE = "instance"
    DEAD_LETTER = "dead-letter"
    CATALOG = "catalog"


TASK, INSTANCE, DEAD_LETTER, CATALOG = Kind.TASK, Kind.INSTANCE, Kind.DEAD_LETTER, Kind.CATALOG

#: detail-type -> (kind, key attribute). Only these carry a per-resource ``version``.
VERSIONED: dict[str, tuple[Kind, str]] = {
    "ECS Task State Change": (TASK, "taskArn"),
    "ECS Container Instance State Change": (INSTANCE, "containerInstanceArn"),
}
#: kind -> its table's hash key
TABLE_KEYS: dict[str, str] = {TASK: "taskArn", INSTANCE: "containerInstanceArn"}
#: kind -> the settings field naming its table
TABLE_SETTINGS: dict[str, str] = {
    TASK: "task_table",
    INSTANCE: "instance_table",
    DEAD_LETTER: "dead_letter_table",
    CATALOG: "catalog_table",
}

HASH_KEY_LIMIT = 2048
RANGE_KEY_LIMIT = 1024
#: how many index partitions one cluster's tasks are spread over in ``cluster-index`` (readers query each)
CLUSTER_PARTS = 16

#: attributes the processor adds to every state item (besides ``detail``'s fields); reserved names
METADATA_ATTRIBUTES = (
    "cw_version",
    "event_id",
    "event_time",
    "kinesis_shard_id",
    "kinesis_sequence_number",
    "kinesis_subsequence_number",
    "compressed_attributes",
    "expires_at",
)
#: derived index-key attributes of task items (``index_attributes``); reserved names
DERIVED_ATTRIBUTES = ("cluster_part", "cluster_service", "stopped_day")

#: the type of every attribute the processor itself writes (detail fields have whatever type the event has)
OWN_TYPES = {
    "taskArn": "S",
    "containerInstanceArn": "S",
    "clusterArn": "S",
    "lastStatus": "S",
    "version": "N",
    "cw_version": "S",
    "event_id": "S",
    "event_time": "S",
    "kinesis_shard_id": "S",
    "kinesis_sequence_number": "S",
    "kinesis_subsequence_number": "N",
    "expires_at": "N",
    "cluster_part": "S",
    "cluster_service": "S",
    "stopped_day": "S",
    "stoppedAt": "S",
    "ec2InstanceId": "S",
    "shardId": "S",
    "sequenceNumber": "S",
    "reasonCode": "S",
    "partitionKey": "S",
}

#: The cluster catalogue (``shard/catalog.py`` writes it, ``ops/catalog.py`` reads it): one item per cluster,
#: keyed by its ARN, with these attributes (all written by the processor; ``newest_event_ms`` only ever grows).
CATALOG_KEY = "clusterArn"
CATALOG_ATTRIBUTES = ("clusterArn", "account", "region", "clusterName", "newestEvent", "newest_event_ms")

#: The DynamoDB type of each field ECS sends in an event's ``detail``, as the item builder writes it (JSON string
#: -> S, number -> N, true/false -> BOOL, list -> L, object -> M; ECS sends ``cpu`` and ``memory`` as strings). From
#: the ECS event reference (docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_task_events.html and
#: ecs_container_instance_events.html). A field ECS adds later is not listed and not checked.
ECS_DETAIL_TYPES: dict[str, dict[str, str]] = {
    TASK: {
        **dict.fromkeys(
            (
                "availabilityZone",
                "capacityProviderName",
                "clusterArn",
                "connectivity",
                "connectivityAt",
                "containerInstanceArn",
                "cpu",
                "createdAt",
                "desiredStatus",
                "executionStoppedAt",
                "group",
                "healthStatus",
                "launchType",
                "lastStatus",
                "memory",
                "platformFamily",
                "platformVersion",
                "pullStartedAt",
                "pullStoppedAt",
                "startedAt",
                "startedBy",
                "stopCode",
                "stoppedAt",
                "stoppedReason",
                "stoppingAt",
                "taskArn",
                "taskDefinitionArn",
                "updatedAt",
            ),
            "S",
        ),
        **dict.fromkeys(("attachments", "attributes", "containers", "inferenceAccelerators", "tags"), "L"),
        **dict.fromkeys(("ephemeralStorage", "fargateEphemeralStorage", "overrides"), "M"),
        "enableExecuteCommand": "BOOL",
        "version": "N",
    },
    INSTANCE: {
        **dict.fromkeys(
            (
                "agentUpdateStatus",
                "capacityProviderName",
                "clusterArn",
                "containerInstanceArn",
                "ec2InstanceId",
                "registeredAt",
                "status",
                "statusReason",
                "updatedAt",
            ),
            "S",
        ),
        **dict.fromkeys(("attachments", "attributes", "registeredResources", "remainingResources", "tags"), "L"),
        **dict.fromkeys(("pendingTasksCount", "runningTasksCount", "version"), "N"),
        "agentConnected": "BOOL",
        "versionInfo": "M",
    },
}
#: The attributes of a dead-letter item and their types (``core/dead_letters.py``)
DEAD_LETTER_TYPES: dict[str, str] = {
    **dict.fromkeys(
        ("shardId", "sequenceNumber", "reasonCode", "reason", "partitionKey", "dataEncoding", "dataSha256"), "S"
    ),
    "receivedAt": "S",
    "data": "B",
    **dict.fromkeys(("dataLength", "approximateArrivalTimestamp", "dataParts"), "N"),
}


def written_types(kind: str) -> dict[str, str]:
    """attribute -> the DynamoDB type the processor writes it with, in the table of ``kind`` (what an index key on
    that attribute must be declared as, or DynamoDB refuses the whole PutItem). The metadata and derived attributes
    (``OWN_TYPES``) win over a detail field of the same name, which the item builder leaves out."""
    if kind == DEAD_LETTER:
        return dict(DEAD_LETTER_TYPES)
    if kind == CATALOG:
        return {**dict.fromkeys(CATALOG_ATTRIBUTES, "S"), "newest_event_ms": "N"}
    metadata = {name: OWN_TYPES[name] for name in (*METADATA_ATTRIBUTES, *DERIVED_ATTRIBUTES) if name in OWN_TYPES}
    return {**ECS_DETAIL_TYPES[kind], TABLE_KEYS[kind]: "S", "version": "N", **metadata, "compressed_attributes": "SS"}


@dataclass(frozen=True)
class Index:
    """One global secondary index of a state table."""

    name: str
    kind: str  # TASK or INSTANCE: the table it belongs to
    hash_key: str
    range_key: str | None
    include: tuple[str, ...]  # non-key attributes projected (empty: KEYS_ONLY)
    serves: str  # the read commands that query it

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.hash_key,) if self.range_key is None else (self.hash_key, self.range_key)

    def spec(self) -> dict[str, Any]:
        """The GlobalSecondaryIndexes element of CreateTable / UpdateTable (on-demand: no throughput)."""
        key_schema = [{"AttributeName": self.hash_key, "KeyType": "HASH"}]
        if self.range_key:
            key_schema.append({"AttributeName": self.range_key, "KeyType": "RANGE"})
        projection: dict[str, Any] = (
            {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(self.include)}
            if self.include
            else {"ProjectionType": "KEYS_ONLY"}
        )
        return {"IndexName": self.name, "KeySchema": key_schema, "Projection": projection}


#: The listings' indexes have a hash key only and project ``lastStatus`` (``--status`` is a filter on the index):
#: an item's entry is put once and updated (1 write unit) when its status changes, where a ``lastStatus`` range
#: key would cost a delete and a put (2) on every change (``python -m workshop index-cost`` measures both).
CLUSTER_INDEX = Index(
    "cluster-index",
    TASK,
    "cluster_part",
    None,
    ("lastStatus",),
    "ecs-state tasks --cluster [--status] [--at], ecs-state reconcile",
)
SERVICE_INDEX = Index(
    "service-index", TASK, "cluster_service", None, ("lastStatus",), "ecs-state tasks --service [--status] [--at]"
)
INSTANCE_INDEX = Index(
    "instance-index",
    TASK,
    "containerInstanceArn",
    None,
    ("lastStatus",),
    "ecs-state tasks --instance [--status] [--at]",
)
STOPPED_INDEX = Index("stopped-index", TASK, "stopped_day", "stoppedAt", ("group",), "ecs-state stopped")
EC2_INSTANCE_INDEX = Index(
    "ec2-instance-index",
    INSTANCE,
    "ec2InstanceId",
    None,
    (),
    "ecs-state tasks --instance i-... (EC2 instance id -> container instance)",
)
#: every read index, in the order setup adds them
INDEXES: tuple[Index, ...] = (CLUSTER_INDEX, STOPPED_INDEX, INSTANCE_INDEX, SERVICE_INDEX, EC2_INSTANCE_INDEX)
INDEX_NAMES = tuple(index.name for index in INDEXES)

#: kind -> detail fields used as index keys (or as inputs of derived keys), with the byte limit DynamoDB sets
#: for them. ``clusterArn`` also keys ``clusterArn-lastStatus-index``, which existing tables may keep (upgrading.md).
INDEX_KEY_LIMITS: dict[str, tuple[tuple[str, int], ...]] = {
    TASK: (
        ("clusterArn", HASH_KEY_LIMIT),
        ("lastStatus", RANGE_KEY_LIMIT),
        ("containerInstanceArn", HASH_KEY_LIMIT),
        ("stoppedAt", RANGE_KEY_LIMIT),
    ),
    INSTANCE: (("ec2InstanceId", HASH_KEY_LIMIT),),
}
#: kind -> attributes never compressed (index keys, derived-key inputs, projected attributes)
UNCOMPRESSED: dict[str, frozenset[str]] = {
    TASK: frozenset({"clusterArn", "lastStatus", "containerInstanceArn", "stoppedAt", "group"}),
    INSTANCE: frozenset({"ec2InstanceId"}),
}


def select_indexes(names: tuple[str, ...] | None = None) -> tuple[Index, ...]:
    """The indexes named (``None``: all), in ``INDEXES`` order."""
    return INDEXES if names is None else tuple(index for index in INDEXES if index.name in names)


def _key_ok(text: str, limit: int) -> bool:
    return bool(text) and (len(text) <= limit // 4 or len(text.encode("utf-8", "surrogatepass")) <= limit)


def cluster_part(cluster: str, task_arn: str) -> str:
    """The ``cluster-index`` hash key of a task: its cluster ARN and one of ``CLUSTER_PARTS`` parts."""
    return f"{cluster}#{zlib.crc32(task_arn.encode('utf-8', 'surrogatepass')) % CLUSTER_PARTS:02d}"


def cluster_parts(cluster: str) -> list[str]:
    """Every ``cluster-index`` hash key of a cluster (a reader queries each)."""
    return [f"{cluster}#{part:02d}" for part in range(CLUSTER_PARTS)]


def cluster_service(cluster: str, group: str) -> str:
    """The ``service-index`` hash key: ``<clusterArn>#<group>`` (a service's tasks have group ``service:NAME``)."""
    return f"{cluster}#{group}"


def stopped_day(cluster: str, day: str) -> str:
    """The ``stopped-index`` hash key: ``<clusterArn>#<YYYY-MM-DD>`` (the UTC day of ``stoppedAt``)."""
    return f"{cluster}#{day}"


def _is_day(text: str) -> bool:
    return (
        len(text) >= 10
        and text[4] == "-"
        and text[7] == "-"
        and text[:4].isdigit()
        and text[5:7].isdigit()
        and text[8:10].isdigit()
    )


def index_attributes(kind: str, item: Mapping[str, Any]) -> dict[str, str]:
    """The derived index-key attributes of an item (``item``: the event's ``detail``, or a stored item as plain
    Python values): only those whose inputs are present strings and whose value is a valid key."""
    if kind != TASK:
        return {}
    cluster, arn = item.get("clusterArn"), item.get("taskArn")
    if type(cluster) is not str or not cluster or type(arn) is not str:
        return {}
    derived = {"cluster_part": cluster_part(cluster, arn)}
    group = item.get("group")
    if type(group) is str and group.startswith("service:"):  # sparse: a service's tasks only, not family:NAME
        derived["cluster_service"] = cluster_service(cluster, group)
    stopped = item.get("stoppedAt")
    if item.get("lastStatus") == "STOPPED" and type(stopped) is str and _is_day(stopped):
        derived["stopped_day"] = stopped_day(cluster, stopped[:10])
    return {name: value for name, value in derived.items() if _key_ok(value, HASH_KEY_LIMIT)}


def derived_size_bound(kind: str, item: Mapping[str, Any]) -> int:
    """At most what ``index_attributes`` adds to an item's size, without building it (the compression decision)."""
    if kind != TASK:
        return 0
    cluster, group = item.get("clusterArn"), item.get("group")
    size = 3 * (len(cluster) * 4 if type(cluster) is str else 0) + 80
    return size + (len(group) * 4 if type(group) is str else 0)


def _attribute_definitions(kind_key: str, indexes: tuple[Index, ...]) -> list[dict[str, str]]:
    names = [kind_key] + [k for index in indexes for k in index.keys]
    seen: list[str] = []
    for name in names:
        if name not in seen:
            seen.append(name)
    return [{"AttributeName": name, "AttributeType": OWN_TYPES[name]} for name in seen]


def state_table_spec(kind: str, table: str, indexes: tuple[Index, ...] = INDEXES) -> dict[str, Any]:
    """The CreateTable request of a state table (on-demand billing) with those of ``indexes`` that belong to it."""
    own = tuple(index for index in indexes if index.kind == kind)
    spec: dict[str, Any] = {
        "TableName": table,
        "KeySchema": [{"AttributeName": TABLE_KEYS[kind], "KeyType": "HASH"}],
        "AttributeDefinitions": _attribute_definitions(TABLE_KEYS[kind], own),
        "BillingMode": "PAY_PER_REQUEST",
    }
    if own:
        spec["GlobalSecondaryIndexes"] = [index.spec() for index in own]
    return spec


def dead_letter_table_spec(table: str) -> dict[str, Any]:
    return {
        "TableName": table,
        "KeySchema": [
            {"AttributeName": "shardId", "KeyType": "HASH"},
            {"AttributeName": "sequenceNumber", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "shardId", "AttributeType": "S"},
            {"AttributeName": "sequenceNumber", "AttributeType": "S"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


def catalog_table_spec(table: str) -> dict[str, Any]:
    """The cluster catalogue: hash key ``clusterArn`` (S), on-demand, no index (a small table; readers scan it)."""
    return {
        "TableName": table,
        "KeySchema": [{"AttributeName": CATALOG_KEY, "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": CATALOG_KEY, "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }


def table_specs(
    task_table: str, instance_table: str, dead_letter_table: str, indexes: tuple[Index, ...] = INDEXES
) -> list[dict[str, Any]]:
    """CreateTable requests for our three tables, in this order: tasks, container instances, dead letters
    (``kinds()`` gives the same order). Matches deploy/ecs-state.yaml with every index."""
    return [
        state_table_spec(TASK, task_table, indexes),
        state_table_spec(INSTANCE, instance_table, indexes),
        dead_letter_table_spec(dead_letter_table),
    ]


def kinds() -> tuple[str, str, str]:
    """The kinds of ``table_specs``' tables, in its order."""
    return (TASK, INSTANCE, DEAD_LETTER)
