from __future__ import annotations

from workshop.local.demo import expected_clusters, flush_totals, homes_line, producer_args, try_commands


def test_flush_totals_reads_wrapped_and_raw_processor_lines() -> None:
    lines = [
        (
            '11:52:04.719 ERROR [multi-lang-daemon-0001] s.a.k.multilang.DrainChildSTDERRTask - Received error line '
            'from subprocess [{"ts":1.0,"level":"INFO","event":"flush","records":10,"writes":4,"stale":1,"ignored":2,'
            '"dead_letters":1,"requests":5,"retries":0}] for shard shardId-000000000000'
        ),
        (
            '{"ts":2.0,"level":"INFO","event":"flush","records":5,"writes":1,"stale":0,"ignored":0,"dead_letters":0,'
            '"requests":1,"retries":3}'
        ),
        '{"ts":3.0,"level":"INFO","event":"initialize","shard":"s"}',
        'INFO something else entirely {"ts" broken',
    ]
    totals = flush_totals(lines)
    assert (totals.flushes, totals.records, totals.writes, totals.stale, totals.requests, totals.retries) == (
        2,
        15,
        5,
        1,
        6,
        3,
    )


def test_keep_prints_the_environment_and_read_commands_about_a_stopped_task() -> None:
    env = {
        "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:5000",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "ECS_STATE_PROPERTIES": "/tmp/p.properties",
    }
    task = {
        "taskArn": "arn:aws:ecs:us-east-1:1:task/prod-web/abc",
        "clusterArn": "arn:aws:ecs:us-east-1:1:cluster/prod-web",
        "group": "service:web",
        "startedAt": "2025-03-01T01:00:00.000Z",
        "stoppedAt": "2025-03-01T03:00:00.000Z",
    }
    lines = try_commands(env, task, "i-0abc")
    assert "export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:5000" in lines
    assert "export ECS_STATE_PROPERTIES=/tmp/p.properties" in lines
    assert "export AWS_DEFAULT_REGION=us-east-1" in lines  # boto3 reads this one, not AWS_REGION
    assert "ecs-state why abc --cluster prod-web" in lines
    assert (
        "ecs-state stopped --cluster prod-web --since 2025-03-01T02:00:00.000Z --until 2025-03-01T03:10:00.000Z"
        in lines
    )
    assert "ecs-state tasks --cluster prod-web --instance i-0abc" in lines
    assert "ecs-state tasks --cluster prod-web --at 2025-03-01T01:00:00.000Z" in lines
    assert "ecs-state tasks --cluster prod-web --service web --status RUNNING" in lines


def test_the_demos_producer_spans_the_accounts_and_regions_asked_for() -> None:
    import argparse
    from pathlib import Path

    from processor.loadgen.producer import options_from_args, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    argv = producer_args(1000, "json", 1, Path("/tmp/truth.json"), accounts=3, regions="us-east-1,eu-west-1")
    options = options_from_args(parser.parse_args(argv))
    assert options.accounts == 3 and options.regions == ("us-east-1", "eu-west-1")
    assert len(options.homes()) == 6 and options.clusters == 3 and options.tasks == 900
    single = options_from_args(parser.parse_args(producer_args(1000, "json", 1, Path("/tmp/t.json"))))
    assert single.homes() == [("123456789012", single.region)] and single.tasks == 150


def test_the_demo_says_the_match_holds_in_each_account_and_region() -> None:
    from processor.loadgen.compare import compare
    from processor.loadgen.ground_truth import GroundTruth
    from processor.loadgen.records import Record

    truth = GroundTruth()
    arns = [
        f"arn:aws:ecs:{r}:{a}:task/prod/{n:032x}"
        for a in ("111111111111", "222222222222")
        for r in ("us-east-1",)
        for n in range(2)
    ]
    for arn in arns:
        truth.add(Record(arn, arn.encode(), "task", "", arn, 1, "RUNNING"))
    rows = [{"taskArn": arn, "version": 1, "lastStatus": "RUNNING"} for arn in arns]
    line = homes_line(compare(truth.to_dict(), rows, [], []))
    assert (
        line == "verified per account/region (2): 111111111111/us-east-1 2, 222222222222/us-east-1 2 ARNs, each exact"
    )
    assert homes_line(compare(truth.to_dict(), rows[:2], [], [])) is None  # a mismatch is never "each exact"
    one = GroundTruth()
    one.add(Record(arns[0], b"x", "task", "", arns[0], 1, "RUNNING"))
    assert homes_line(compare(one.to_dict(), rows[:1], [], [])) is None


def test_the_demo_expects_in_the_catalogue_every_cluster_its_tasks_name_per_account_and_region() -> None:
    truth = {
        "tasks": {
            "arn:aws:ecs:us-east-1:111111111111:task/web/a1": {},
            "arn:aws:ecs:us-east-1:111111111111:task/web/a2": {},
            "arn:aws:ecs:eu-west-1:222222222222:task/web/b1": {},
            "arn:aws:ecs:eu-west-1:222222222222:task/batch/b2": {},
        },
        "containerInstances": {"arn:aws:ecs:us-east-1:111111111111:container-instance/web/c1": {}},
    }
    assert expected_clusters(truth) == {
        "111111111111/us-east-1/web",
        "222222222222/eu-west-1/web",
        "222222222222/eu-west-1/batch",
    }
