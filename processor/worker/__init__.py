"""The worker runtime: what runs inside a worker besides the shard processors.

``ecs-state run`` checks everything first (``preflight``), then starts the KCL MultiLangDaemon (``launcher``) as a
child it supervises (``supervisor``), reading its log one line at a time (``daemon_log``); the container's health
check (``liveness``) judges the heartbeat files the supervisor and the shard processors write. The operator's
commands live in ``processor.ops``; this package never imports them.
"""
