"""``ecs-state redrive dead-letters | queue``: put records that did not reach the tables back into the stream.

- ``redrive dead-letters [--stream-name S] [--reason-code C]... [--shard ID] [--dry-run]``: every selected dead
  letter's ORIGINAL record (reassembled from all its parts, checked against ``dataSha256``) goes back into the
  stream under its original partition key; a dead letter is deleted, ALL its items in one transaction (first item
  and ``<key>#part<i>`` parts, conditional on ``dataSha256`` being unchanged), only after Kinesis accepted its
  record. The table is listed first (metadata only), so dead letters the redriven records produce again while the
  command runs are not redriven a second time: they wait for the next run.
- ``redrive queue --queue-url U [--stream-name S] [--dry-run]``: moves the messages of an EventBridge SQS dead-letter
  queue (body = the original event) into the stream with the resource ARN as partition key; each message is deleted
  only after its record was accepted. Messages that are not ECS state-change events, or lack the ARN, are reported
  and left in the queue (made visible again at the end, as are all messages of a dry run).

PutRecords requests hold at most 500 records / 5 MiB; only the entries Kinesis reports failed are retried, with
exponential backoff and full jitter, up to ``--max-attempts`` calls per request (``processor.kinesis_put``).

Interrupted runs are safe to repeat: a crash between the put and the delete leaves the dead letter (or message)
in place and a re-run puts its record again. That is fine because the processor is idempotent per version (the
conditional write stores a version only if it is newer; a dead letter is keyed by its new position), so a record
in the stream twice changes nothing. Exit 0: everything selected was put and cleared; 1: something was skipped
or failed (listed); 2: configuration or AWS error.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Iterator, Sequence, TextIO, TypeVar

from processor.errors import ConfigError, EcsStateError
from processor.kinesis_limits import size_batches
from processor.kinesis_put import PutRefused, RecordPutter
from processor.ops.batch_get import batch_get_keys
from processor.ops.redrive_plan import (
    MAX_BATCH_BYTES,
    MAX_BATCH_RECORDS,
    Entry,
    LetterKeys,
    Skipped,
    Tally,
    batches,
    letter_entry,
    letter_keys,
    queue_entry,
    selected,
)
from processor.ops.render import dead_letter_groups, deserialize, sequence_key, to_json

T = TypeVar("T")
METADATA = ("shardId", "sequenceNumber", "reasonCode", "partitionKey", "dataParts", "dataLength")
VISIBILITY_S = 600


class RedriveError(EcsStateError):
    """The stream, table or queue cannot be used (missing, no permission); the message names it and the fix."""

    exit_code = 2


# ---- Kinesis ----------------------------------------------------------------------------------------------------


class Putter(RecordPutter):
    """``processor.kinesis_put.RecordPutter`` with redrive's one-line errors: a batch's (accepted, still failing)."""

    def put_batch(self, batch: Sequence[Entry[T]]) -> tuple[list[Entry[T]], list[Entry[T]]]:
        try:
            result = self.put(batch)
        except PutRefused as exc:
            if exc.missing:
                raise RedriveError(
                    f"Kinesis stream {self.stream!r} does not exist in this account and region; "
                    f"pass the stack's StreamName output as --stream-name"
                ) from exc
            raise RedriveError(f"{exc} (the OperatorPolicy grants kinesis:PutRecords)") from exc
        return result.accepted, result.failing


def _progress(total: int | None, unit: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, file=sys.stderr, disable=None, leave=False)  # None: only on a terminal


# ---- dead letters -----------------------------------------------------------------------------------------------


def list_letters(ddb: Any, table: str, shard: str | None) -> list[list[dict[str, Any]]]:
    """Every dead letter's items (first item, then parts), metadata only, sorted by shard and position."""
    request: dict[str, Any] = {
        "TableName": table,
        "ConsistentRead": True,
        "ProjectionExpression": ", ".join(f"#a{i}" for i in range(len(METADATA))),
        "ExpressionAttributeNames": {f"#a{i}": name for i, name in enumerate(METADATA)},
    }
    if shard:
        request.update(KeyConditionExpression="#a0 = :s", ExpressionAttributeValues={":s": {"S": shard}})
    pages = ddb.get_paginator("query" if shard else "scan").paginate(**request)
    items = [deserialize(it) for page in pages for it in page.get("Items", [])]
    return sorted(dead_letter_groups(items), key=lambda g: (g[0]["shardId"], sequence_key(g[0]["sequenceNumber"])))


def chunks(groups: Sequence[list[dict[str, Any]]]) -> Iterator[list[list[dict[str, Any]]]]:
    """Groups of dead letters whose records fit one PutRecords request (by their ``dataLength``)."""
    return size_batches(
        groups,
        lambda group: int(group[0].get("dataLength", 0)) + len(str(group[0].get("partitionKey", ""))),
        MAX_BATCH_RECORDS,
        MAX_BATCH_BYTES,
    )


def fetch(ddb: Any, table: str, groups: Sequence[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
    """The full items (with ``data``) of these dead letters, consistently read, regrouped."""
    keys = [
        {"shardId": {"S": str(it["shardId"])}, "sequenceNumber": {"S": str(it["sequenceNumber"])}}
        for group in groups
        for it in group
    ]
    found = [deserialize(it) for it in batch_get_keys(ddb, table, keys)]
    return dead_letter_groups(found)


def delete_letter(ddb: Any, table: str, keys: LetterKeys) -> str | None:
    """Delete all items of one dead letter at once, only if its data is still what was redriven; returns why
    not, or None."""
    from botocore.exceptions import ClientError

    condition = {
        "ConditionExpression": "attribute_not_exists(#s) OR #h = :h",
        "ExpressionAttributeNames": {"#s": "shardId", "#h": "dataSha256"},
        "ExpressionAttributeValues": {":h": {"S": keys.sha256}},
    }

    def key(sequence: str) -> dict[str, Any]:
        return {"shardId": {"S": keys.shard_id}, "sequenceNumber": {"S": sequence}}

    try:
        if len(keys.sequence_numbers) == 1:
            ddb.delete_item(TableName=table, Key=key(keys.sequence_numbers[0]), **condition)
        else:
            first, *parts = keys.sequence_numbers
            ddb.transact_write_items(
                TransactItems=[{"Delete": {"TableName": table, "Key": key(first), **condition}}]
                + [{"Delete": {"TableName": table, "Key": key(p)}} for p in parts]
            )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("ConditionalCheckFailedException", "TransactionCanceledException"):
            return "was rewritten with other data since it was read; left in the table"
        return f"delete failed ({code}: {exc.response.get('Error', {}).get('Message', '')}); left in the table"
    return None


def redrive_dead_letters(
    ddb: Any,
    kinesis: Any,
    table: str,
    stream: str,
    reason_codes: Sequence[str] = (),
    shard: str | None = None,
    dry_run: bool = False,
    putter: Putter | None = None,
) -> Tally:
    tally = Tally()
    putter = putter or Putter(kinesis, stream)
    letters = [g for g in list_letters(ddb, table, shard) if selected(g, reason_codes)]
    with _progress(len(letters), "letter") as bar:
        for chunk in chunks(letters):
            entries: list[Entry[LetterKeys]] = []
            by_key = {letter_keys(g).name: g for g in chunk}
            full = {letter_keys(g).name: g for g in fetch(ddb, table, chunk)}
            for name, group in by_key.items():
                outcome = (
                    letter_entry(full[name])
                    if name in full
                    else Skipped(str(group[0].get("reasonCode")), name, "deleted by someone else since it was listed")
                )
                if isinstance(outcome, Skipped):
                    tally.skipped.append(outcome)
                else:
                    entries.append(outcome)
            bar.update(len(chunk) - len(entries))
            for batch in batches(entries):
                if dry_run:
                    tally.put.update(e.label for e in batch)
                    bar.update(len(batch))
                    continue
                accepted, failed = putter.put_batch(batch)
                tally.put.update(e.label for e in accepted)
                tally.failed.update(e.label for e in failed)
                for entry in accepted:
                    why = delete_letter(ddb, table, entry.source)
                    if why:
                        tally.errors.append(f"{entry.source.name}: put back, but {why}")
                    else:
                        tally.cleared[entry.label] += 1
                bar.update(len(batch))
    if tally.failed:
        tally.errors.append(
            f"Kinesis kept refusing {sum(tally.failed.values())} records after "
            f"{putter.max_attempts} attempts (errors seen: {dict(putter.errors)}); they stay "
            f"dead letters: run again later"
        )
    return tally


# ---- the SQS queue ----------------------------------------------------------------------------------------------


def _entries_of(
    sqs: Any, queue_url: str, seen: set[str], tally: Tally, left: dict[str, str]
) -> Iterator[Entry[tuple[str, str]]]:
    """Receive until the queue shows nothing new; yields redrivable messages, records the others in ``left``."""
    while True:
        reply = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=VISIBILITY_S
        )
        fresh = [m for m in reply.get("Messages", []) if m["MessageId"] not in seen]
        if not fresh:
            return
        for message in fresh:
            seen.add(message["MessageId"])
            outcome = queue_entry(
                message.get("Body", ""), (message["MessageId"], message["ReceiptHandle"]), message["MessageId"]
            )
            if isinstance(outcome, Skipped):
                tally.skipped.append(outcome)
                left[message["MessageId"]] = message["ReceiptHandle"]
            else:
                yield outcome


def _delete_messages(sqs: Any, queue_url: str, accepted: Sequence[Entry[tuple[str, str]]], tally: Tally) -> None:
    """DeleteMessageBatch, ten at a time, of messages whose records Kinesis accepted."""
    for start in range(0, len(accepted), 10):
        group = accepted[start : start + 10]
        reply = sqs.delete_message_batch(
            QueueUrl=queue_url, Entries=[{"Id": str(i), "ReceiptHandle": e.source[1]} for i, e in enumerate(group)]
        )
        for ok in reply.get("Successful", []):
            tally.cleared[group[int(ok["Id"])].label] += 1
        for bad in reply.get("Failed", []):
            entry = group[int(bad["Id"])]
            tally.errors.append(
                f"message {entry.source[0]}: put back, but not deleted ({bad.get('Code')}: "
                f"{bad.get('Message')}); a re-run puts it again, which is harmless"
            )


def _release(sqs: Any, queue_url: str, left: Sequence[tuple[str, str]]) -> None:
    """Make the messages left in the queue visible again at once (not after the visibility timeout)."""
    for start in range(0, len(left), 10):
        sqs.change_message_visibility_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for i, (_, handle) in enumerate(left[start : start + 10])
            ],
        )


def redrive_queue(
    sqs: Any, kinesis: Any, queue_url: str, stream: str, dry_run: bool = False, putter: Putter | None = None
) -> Tally:
    tally = Tally()
    putter = putter or Putter(kinesis, stream)
    seen: set[str] = set()
    left: dict[str, str] = {}
    approximate = int(
        sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"].get(
            "ApproximateNumberOfMessages", 0
        )
    )
    try:
        with _progress(approximate or None, "message") as bar:
            for batch in batches(_entries_of(sqs, queue_url, seen, tally, left)):
                if dry_run:
                    tally.put.update(e.label for e in batch)
                    left.update(e.source for e in batch)
                else:
                    accepted, failed = putter.put_batch(batch)
                    tally.put.update(e.label for e in accepted)
                    tally.failed.update(e.label for e in failed)
                    left.update(e.source for e in failed)
                    _delete_messages(sqs, queue_url, accepted, tally)
                bar.update(len(batch))
    finally:
        _release(sqs, queue_url, list(left.items()))
    if tally.failed:
        tally.errors.append(
            f"Kinesis kept refusing {sum(tally.failed.values())} records after "
            f"{putter.max_attempts} attempts (errors seen: {dict(putter.errors)}); their messages "
            f"stay in the queue: run again later"
        )
    return tally


# ---- CLI --------------------------------------------------------------------------------------------------------


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "redrive",
        help="put dead letters or EventBridge's dead-letter messages back into the stream",
        description="Put records that did not reach the tables back into the stream; each source item is deleted "
        "only after Kinesis accepted its record. Exit 0: all done; 1: something skipped or failed; "
        "2: error.",
    )
    what = parser.add_subparsers(dest="source", required=True, metavar="SOURCE")
    letters = what.add_parser(
        "dead-letters",
        help="the dead-letter table's records, with their partition keys",
        description="Put each selected dead letter's original record back into the stream "
        "with its original partition key, then delete the dead letter (all "
        "its parts).",
    )
    letters.add_argument(
        "--reason-code",
        action="append",
        default=[],
        metavar="CODE",
        help="only dead letters with this reasonCode (repeatable; default: all)",
    )
    letters.add_argument("--shard", help="only dead letters of this shard (as `ecs-state dead-letters --shard`)")
    letters.add_argument("--shard-id", dest="shard", help=argparse.SUPPRESS)  # the old spelling, kept working
    queue = what.add_parser(
        "queue",
        help="an EventBridge SQS dead-letter queue's events",
        description="Move the queue's ECS events into the stream (partition key = the task or "
        "container-instance ARN), deleting each message after its record was "
        "accepted; other messages are reported and left.",
    )
    queue.add_argument(
        "--queue-url",
        required=True,
        help="TaskEventsDeadLetterQueueUrl or InstanceEventsDeadLetterQueueUrl of the stack",
    )
    for sub in (letters, queue):
        sub.add_argument(
            "--stream-name",
            default=None,
            help="the stream (the stack's StreamName output; default: streamName or streamArn of "
            "the --properties file)",
        )
        sub.add_argument("--dry-run", action="store_true", help="report what would be put back; change nothing")
        sub.add_argument(
            "--max-attempts",
            type=int,
            default=10,
            metavar="N",
            help="PutRecords calls per batch before giving up on its failing entries (default 10)",
        )
        sub.add_argument("--output", choices=("json", "table"), default="table")
        sub.add_argument(
            "--properties",
            default=argparse.SUPPRESS,
            metavar="PATH",
            help="KCL properties file with the ecsState.* table names",
        )
        sub.set_defaults(func=run)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from processor.aws import client
    from processor.config import load_settings, stream_from_properties

    out = out or sys.stdout
    stream = args.stream_name or stream_from_properties(getattr(args, "properties", None))
    if not stream:
        raise ConfigError(
            "which stream? pass --stream-name (the stack's StreamName output) or --properties "
            "with the workers' streamName"
        )
    kinesis = client("kinesis", botocore_retries=1)  # Putter retries; a botocore retry could put twice
    putter = Putter(kinesis, stream, max_attempts=max(1, args.max_attempts))
    if args.source == "dead-letters":
        settings = load_settings(getattr(args, "properties", None))
        tally = redrive_dead_letters(
            client("dynamodb", botocore_retries=8),
            kinesis,
            settings.dead_letter_table,
            stream,
            args.reason_code,
            args.shard,
            args.dry_run,
            putter,
        )
        what = "dead letters"
    else:
        tally = redrive_queue(client("sqs", botocore_retries=8), kinesis, args.queue_url, stream, args.dry_run, putter)
        what = "messages"
    out.write(
        to_json(tally.to_dict(args.dry_run)) + "\n" if args.output == "json" else tally.render(what, args.dry_run)
    )
    return 0 if tally.ok and not tally.skipped else 1
