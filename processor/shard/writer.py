"""The writer: makes one ``Batch`` durable in DynamoDB. The only module that writes on the hot path.

State items go out as conditional ``PutItem`` calls, ``write_concurrency`` at a time (BatchWriteItem takes no
condition; one failed condition cancels a whole TransactWriteItems): each resource's first attempt from the
flushing thread through the client's pipeline (one thread, replies gathered in rounds: a wake-up per round, not
per reply), and whatever needs more (a refusal, a retry, an older candidate, a large record) on a bounded pool of
threads, each with the one retry loop. The condition writes when the item is absent, when the stored ``version``
is missing or not a number (an item left by another tool: treated as older than any version, so it is replaced
rather than blocking the ARN for ever), or when the stored version is lower.
A failed condition means an equal or newer version is already stored: counted as ``stale``, not an error.
Dead letters are plain puts keyed by (shardId, sequenceNumber), so a replay rewrites the same item.

Each resource of the batch comes with its candidate versions, newest first; the item is built here, at flush
time, for the first candidate only, and the next is tried when the builder or DynamoDB refuses one (each refused
candidate is a dead letter with its original bytes): a valid version is never displaced by an invalid one. Only
the closed list of ``shard/failures.py`` refuses a candidate; an exception while building or serialising an item
(a bug, a ``MemoryError``) fails the flush, so nothing is checkpointed past it and no valid record is dead-lettered.

A dead letter counts only once it is durable: its items are stored, or, when DynamoDB refuses one of them, a plain
copy holding the original bytes is; failing both, the flush fails (``Outcome.failed``) and nothing is checkpointed.

Large records are built a bounded few at once (``shard/build_budget.py``): the memory of a flush stays bounded
whatever the records' sizes.

The client is the thin ``DynamoDBHttp`` (``shard/dynamodb_http.py``): a request's body is serialised once and the
same bytes are resent on every retry; a conditional put asks for ``ReturnValuesOnConditionCheckFailure=ALL_OLD``.

Skipping what is known to be stale (``shard/stored_versions.py``): the writer remembers, per (table, ARN), the
version it wrote and the stored version a failed condition returned; a resource whose remembered stored version
is >= its candidate's is counted ``stale`` without a request. While the shard catches up (``write(...,
prefetch=True)``) the stored versions of ARNs it does not remember are read first with ``BatchGetItem`` (counted
in ``requests``). A miss costs one write, never correctness: every item sent keeps its condition.

Every failure is classified once (``shard/failures.py``): record-level -> dead letter; transient -> retried with
the one backoff policy (``processor/retry.py``: exponential, full jitter, capped) while the lease is held, the
cause logged once a minute (``write_retrying``, with the fix when the classifier knows one); an exception from the
client, whatever its type, is transient; with ``write_retry_budget_millis`` /
``write_max_attempts`` set (> 0), a request still failing past them ends in ``Outcome.failed``, and the caller
must not checkpoint.

With a ``catalog`` (``shard/catalog.py``; the processor always has one), each stored or stale item's cluster is
noted, and after the state writes the flush sends the catalogue writes that are due, through the same request
loop: they never become dead letters.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Hashable

from processor.config import Settings
from processor.core.dead_letters import DeadLetter
from processor.core.events import INSTANCE, TASK
from processor.core.items import Item
from processor.core.reducer import Batch
from processor.core.route import Candidate, build, refused
from processor.errors import WriteFailed
from processor.logs import log_dead_letter, log_safely
from processor.retry import DYNAMODB, EveryMinute
from processor.shard.build_budget import SMALL_RECORD_BYTES, BuildBudget
from processor.shard.catalog import Catalog
from processor.shard.dynamodb_http import DynamoDBTransport, Response, pipeline, serialise
from processor.shard.failures import RECORD, STALE, TRANSIENT, Verdict, classify
from processor.shard.metrics import Metrics
from processor.shard.stored_versions import StoredVersions
from processor.shard.stored_versions import prefetch as read_stored_versions
from processor.shard.write_outcome import Outcome, Tally

#: How many bytes of request bodies the pipeline builds ahead in one burst.
PREPARED_BYTES = 4 * 1024 * 1024
CONDITION = "attribute_not_exists(#k) OR NOT attribute_type(#v, :n) OR #v < :v"

Builder = Callable[[Candidate, int], "Item | DeadLetter"]


@dataclass
class _Prepared:
    """One resource's first request, built ahead: what the pipeline sends and what its reply settles."""

    versions: list[Candidate]
    table: str
    arn: str
    version: int
    noted: dict[str, Any]  # the attributes the cluster catalogue notes
    body: bytes


class _Refused(Exception):
    """A request DynamoDB refused as the record's fault (internal to the writer)."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.text)
        self.verdict = verdict


class Writer:
    def __init__(
        self,
        settings: Settings,
        client: DynamoDBTransport,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        build_item: Builder = build,
        shard_id: str = "?",
        catalog: Catalog | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog  # the cluster catalogue (``shard/catalog.py``), written after the state writes
        self.client = client
        self.shard_id = shard_id
        self.tables: dict[str, str] = {TASK: settings.task_table, INSTANCE: settings.instance_table}
        self.stored = StoredVersions(settings.stored_versions_capacity)
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._build = build_item
        self._budget = BuildBudget()
        self._pool = ThreadPoolExecutor(max_workers=settings.write_concurrency, thread_name_prefix="put")
        self._retrying_log = EveryMinute(clock=clock)
        self._metrics: Metrics | None = None
        self._beat: Callable[[], None] = lambda: None

    def observe(self, metrics: Metrics, beat: Callable[[], None]) -> None:
        """Where the retry loop reports: ``WriteRetryingFor`` (with its once-a-minute log line) and the liveness
        ``beat`` on every request, retries and the prefetch's reads included (``shard/heartbeat.py``: a retrying
        flush is alive)."""
        self._metrics = metrics
        self._beat = beat

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def write(self, batch: Batch, prefetch: bool = False) -> Outcome:
        """Make every resource and dead letter of ``batch`` durable, or report what failed. With ``prefetch``
        (the shard is catching up), the stored versions of resources not remembered are read first."""
        start = self._clock()
        flush = Tally(Outcome())
        if prefetch and batch.resources:
            self._prefetch(batch, flush)
        jobs: list[Callable[[], None]] = []
        retrying: list[Future[None]] = []
        try:
            self._put_in_pipeline(batch.resources, flush, jobs, retrying)
        except Exception as exc:  # a bug while building or sending: never checkpoint past it
            flush.add_failure(f"unexpected {type(exc).__name__}: {exc}")
        jobs += [partial(self._put_dead_letter, dead, flush) for dead in batch.dead_letters]
        self._run_all(jobs, flush)
        for job in retrying:
            job.result()
        if self.catalog is not None:

            def catalogue_put(request: dict[str, Any], what: str) -> tuple[Verdict | None, Response | None]:
                answered = self._call(request, flush, what)
                flush.add(catalogued=1)
                return answered

            self._run_all(self.catalog.jobs(self._clock(), catalogue_put), flush)
        flush.outcome.millis = (self._clock() - start) * 1000
        return flush.outcome

    def _run_all(self, jobs: list[Callable[[], None]], flush: Tally) -> None:
        """Run every job, ``write_concurrency`` at a time: that many drainers (the calling thread one of them)
        each take the next job from one shared iterator until none is left, so a put costs a lock rather than a
        future and a thread wake-up. A job that fails is recorded and the others go on."""
        iterator, lock = iter(jobs), threading.Lock()

        def drain() -> None:
            while True:
                with lock:
                    job = next(iterator, None)
                if job is None:
                    return
                self._run_job(job, flush)

        helpers = [self._pool.submit(drain) for _ in range(min(self.settings.write_concurrency, len(jobs)) - 1)]
        drain()
        for helper in helpers:
            helper.result()

    @staticmethod
    def _run_job(job: Callable[[], None], flush: Tally) -> None:
        """Run one job; a failure is recorded in the flush (which then fails) and never raised."""
        try:
            job()
        except WriteFailed as exc:
            flush.add_failure(str(exc))
        except Exception as exc:  # a bug: never checkpoint past it
            flush.add_failure(f"unexpected {type(exc).__name__}: {exc}")

    def _prefetch(self, batch: Batch, flush: Tally) -> None:
        """Read the stored versions of the batch's resources this writer does not remember (an optimisation: a
        request that keeps failing leaves its keys unknown, and they are simply written)."""
        unknown = self.stored.unknown([versions[0] for versions in batch.resources], self.tables)
        if not unknown:
            return
        got = read_stored_versions(
            self.client, unknown, self.tables, pool=self._pool, sleep=self._sleep, rng=self._rng, beat=self._beat
        )
        for (table, arn), version in got.versions.items():
            self.stored.remember(table, arn, version)
        flush.add(requests=got.requests, prefetched=len(got.versions))
        if got.errors:
            log_safely(
                "prefetch_incomplete",
                level="WARNING",
                shard=self.shard_id,
                keys_not_read=got.given_up,
                examples=got.errors[:3],
                note="those resources are written without knowing their stored version (the conditional write decides)",
            )

    def _put_in_pipeline(
        self,
        resources: list[list[Candidate]],
        flush: Tally,
        later: list[Callable[[], None]],
        retrying: list[Future[None]],
    ) -> None:
        """The first attempt of each resource's newest candidate, all on this thread through the client's pipeline
        (``write_concurrency`` in flight, replies gathered in rounds: ``shard/http_pipeline.py``). Requests are
        built ahead in bursts of up to ``PREPARED_BYTES`` of bodies: a burst runs on warm caches, where a build
        squeezed between two waits for replies costs several times its CPU (docs/field-notes.md). A written or
        stale reply settles the resource here. Anything else goes at once to the writer's threads (``retrying``),
        which take it from there with this reply as its first attempt: a refusal (dead letter, older candidate),
        a transient failure (retried after its backoff, as if it had been sent from there). At the first transient
        failure the pipeline stops sending and every resource not yet sent is left in ``later`` for the threaded
        path, so a throttled table never gets a burst. So are large records (built there within the build
        budget) and candidates the builder refuses."""
        pending = iter(resources)
        ready: deque[_Prepared] = deque()
        flying: dict[Hashable, _Prepared] = {}
        tokens = itertools.count()
        troubled = False

        def prepare() -> None:
            size = 0
            for versions in pending:
                prepared = self._prepare(versions, flush, later)
                if prepared is not None:
                    ready.append(prepared)
                    size += len(prepared.body)
                    if size >= PREPARED_BYTES:
                        return

        def next_request() -> tuple[int, bytes] | None:
            if troubled:
                later.extend(partial(self._put_resource, p.versions, flush) for p in ready)
                later.extend(partial(self._put_resource, versions, flush) for versions in pending)
                ready.clear()
                return None
            if not ready:
                prepare()
                if not ready:
                    return None
            prepared = ready.popleft()
            self._beat()
            flush.add(requests=1)
            token = next(tokens)
            flying[token] = prepared
            return token, prepared.body

        def on_reply(token: Hashable, outcome: Response | Exception) -> None:
            nonlocal troubled
            sent = flying.pop(token)
            if isinstance(outcome, Response) and outcome.ok:
                self.stored.remember(sent.table, sent.arn, sent.version)
                flush.add(written=1)
            else:
                verdict = classify(outcome)
                if verdict.kind != STALE:
                    troubled = troubled or verdict.kind == TRANSIENT
                    job = partial(self._put_resource, sent.versions, flush, first=outcome)
                    retrying.append(self._pool.submit(self._run_job, job, flush))
                    return
                stored = outcome.item if isinstance(outcome, Response) else None
                self.stored.remember_stored_item(sent.table, sent.arn, stored)
                flush.add(stale=1)
            if self.catalog is not None:
                self.catalog.note(sent.noted)

        pipeline(self.client, "PutItem", next_request, on_reply, self.settings.write_concurrency)

    def _prepare(self, versions: list[Candidate], flush: Tally, later: list[Callable[[], None]]) -> _Prepared | None:
        """The first request of one resource for the pipeline, or None: known stale (counted), or left to the
        threaded path (appended to ``later``), or a bug while building or serialising (the flush fails, the other
        resources go on)."""
        candidate = versions[0]
        table = self.tables[candidate.kind]
        if self.stored.is_stale(table, candidate.arn, candidate.version):
            flush.add(stale=1, skipped=1)
            return None
        if len(candidate.data) > SMALL_RECORD_BYTES:
            later.append(partial(self._put_resource, versions, flush))
            return None
        try:
            built = self._build(candidate, self.settings.task_retention_hours)
            if isinstance(built, DeadLetter):
                later.append(partial(self._put_resource, versions, flush))
                return None
            body = serialise(self._state_request(built))
        except Exception as exc:  # a bug: this resource fails the flush, the others go on
            flush.add_failure(f"unexpected {type(exc).__name__}: {exc}")
            return None
        noted = {name: built.attributes[name] for name in Catalog.NOTED if name in built.attributes}
        return _Prepared(versions, table, built.arn, built.version, noted, body)

    def _put_resource(self, versions: list[Candidate], flush: Tally, first: Response | Exception | None = None) -> None:
        """Store the newest candidate that can be stored; every newer one is a dead letter. ``first``: the outcome
        of the newest candidate's first attempt, already made (by the pipeline)."""
        for n, candidate in enumerate(versions):
            if self.stored.is_stale(self.tables[candidate.kind], candidate.arn, candidate.version):
                flush.add(stale=1, skipped=1)  # an equal or newer version is stored: the condition would fail
                return
            with self._budget.hold(len(candidate.data)):  # big records: a bounded few built at once
                built = self._build(candidate, self.settings.task_retention_hours)  # raises only on a bug
                if isinstance(built, DeadLetter):
                    self._log_refused(built)
                    self._put_dead_letter(built, flush)
                    continue
                try:
                    written = self._put_state(built, flush, first if n == 0 else None)
                except _Refused as exc:
                    dead = refused(candidate, "refused", f"DynamoDB refused the item: {exc.verdict.text}")
                    self._log_refused(dead)
                    self._put_dead_letter(dead, flush)
                    continue
            flush.add(written=int(written), stale=int(not written), fallbacks=int(n > 0))
            if self.catalog is not None:
                self.catalog.note(built.attributes)
            return

    def _state_request(self, item: Item) -> dict[str, Any]:
        """The conditional PutItem of a state item (module docstring)."""
        return {
            "TableName": self.tables[item.kind],
            "Item": item.attributes,
            "ConditionExpression": CONDITION,
            "ExpressionAttributeNames": {"#k": item.key_name, "#v": "version"},
            "ExpressionAttributeValues": {":v": {"N": str(item.version)}, ":n": {"S": "N"}},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }

    def _put_state(self, item: Item, flush: Tally, first: Response | Exception | None = None) -> bool:
        """True when written, False when stale; raises _Refused when DynamoDB refuses the item for what it holds
        (``failures.ITEM_REFUSALS``), WriteFailed past a finite budget. ``first``: its first attempt's outcome,
        when already made."""
        table = self.tables[item.kind]
        what = (
            f"{item.key_name} {item.arn} version {item.version} ({item.position.shard_id} "
            f"{item.position.dead_letter_key()}) in {table}"
        )
        verdict, reply = self._call(self._state_request(item), flush, what, first=first)
        if verdict is None:
            self.stored.remember(table, item.arn, item.version)
            return True
        if verdict.kind == STALE:
            self.stored.remember_stored_item(table, item.arn, reply.item if reply is not None else None)
            return False
        raise _Refused(verdict)

    def _put_dead_letter(self, dead: DeadLetter, flush: Tally) -> None:
        """Make ``dead`` durable, or raise WriteFailed (the flush fails): it is counted only once stored."""
        what = (
            f"dead letter {dead.position.shard_id} {dead.position.dead_letter_key()} in "
            f"{self.settings.dead_letter_table}"
        )
        for attributes in dead.items:
            request = {"TableName": self.settings.dead_letter_table, "Item": attributes}
            verdict, _ = self._call(request, flush, what)
            if verdict is not None:  # RECORD: our own dead-letter item was refused
                # Keep the bytes at least, in the plainest form; if even that is refused, it is not about this
                # record (retried as transient).
                plain: dict[str, Any] = {
                    k: attributes[k]
                    for k in ("shardId", "sequenceNumber", "data", "dataEncoding", "dataLength", "dataSha256")
                    if k in attributes
                }
                plain["reasonCode"] = {"S": "dead-letter-refused"}
                request = {"TableName": self.settings.dead_letter_table, "Item": plain}
                fallback, _ = self._call(request, flush, what, record_is_transient=True)
                if fallback is not None:  # neither form stored: the record is not durable, so no checkpoint
                    raise WriteFailed(f"{what}: not stored ({verdict.text}), nor its plain copy ({fallback.text})")
        flush.add(dead_letters=1)

    def _call(
        self,
        request: dict[str, Any],
        flush: Tally,
        what: str,
        record_is_transient: bool = False,
        first: Response | Exception | None = None,
    ) -> tuple[Verdict | None, Response | None]:
        """PutItem with retries of transient failures: (None, reply) when it succeeded, else the STALE or RECORD
        verdict and DynamoDB's reply; WriteFailed when a finite retry budget runs out. The body is serialised once;
        every retry resends the same bytes. A body that cannot be serialised is a bug (the core checked every
        value): its exception goes up and fails the flush. ``first``: the outcome of the first attempt, already
        made (by the pipeline, which counted its request)."""
        body = serialise(request)
        attempt = 0
        budget_s = self.settings.write_retry_budget_millis / 1000
        max_attempts = self.settings.write_max_attempts
        started = self._clock()
        while True:
            attempt += 1
            outcome: Response | Exception
            if attempt == 1 and first is not None:
                outcome = first
            else:
                self._beat()
                flush.add(requests=1)
                try:
                    outcome = self.client.call("PutItem", body)
                except Exception as exc:  # whatever the type (credentials, network, the reply): never the record's
                    outcome = exc
            reply = outcome if isinstance(outcome, Response) else None
            if reply is not None and reply.ok:
                return None, reply
            verdict = classify(outcome)
            if verdict.kind != TRANSIENT and not (record_is_transient and verdict.kind == RECORD):
                return verdict, reply
            flush.add(retries=1, throttled=int(verdict.throttled))
            delay = DYNAMODB.delay(attempt, self._rng)
            waited = self._clock() - started
            if (max_attempts and attempt >= max_attempts) or (budget_s and waited + delay > budget_s):
                raise WriteFailed(
                    f"{what}: still failing after {attempt} attempts ({verdict.text}); DynamoDB "
                    f"unavailable or throttling beyond the retry budget "
                    f"({self.settings.write_retry_budget_millis} ms, {max_attempts} attempts)"
                )
            self._log_retrying(verdict, what, attempt, waited)
            self._sleep(delay)

    def _log_retrying(self, verdict: Verdict, what: str, attempt: int, waited_s: float) -> None:
        """At most one line a minute per processor while transient failures go on (a long outage logs every
        minute; a throttled flush logs once)."""
        if not self._retrying_log.due():
            return
        log_safely(
            "write_retrying",
            level="WARNING",
            shard=self.shard_id,
            cause=verdict.text,
            request=what,
            attempt=attempt,
            retrying_for_s=round(waited_s, 1),
            action="retrying while holding the lease; nothing is checkpointed past this write. "
            + (
                f"Fix: {verdict.fix}."
                if verdict.fix
                else "Check DynamoDB availability and throttling, the table and the worker's IAM permissions."
            ),
        )
        if self._metrics is not None:
            self._metrics.emit(self.shard_id, {"retrying_for_ms": round(waited_s * 1000)})

    def _log_refused(self, dead: DeadLetter) -> None:
        log_dead_letter(dead, self.settings.dead_letter_table)
