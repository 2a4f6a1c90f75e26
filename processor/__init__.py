"""ecs-state: keeps an exact, always-newest copy of every Amazon ECS task and container instance in DynamoDB.

``__version__`` is the one version source: setup.cfg reads it (``version = attr: processor.__version__``, taken
from this file without importing it), ``ecs-state --version`` prints it, and CHANGELOG.md names it."""

__version__ = "0.3.1"
