from __future__ import annotations

from workshop.local.demo import flush_totals, try_commands


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
