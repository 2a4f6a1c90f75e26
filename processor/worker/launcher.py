"""The KCL MultiLangDaemon's command line and environment, and finding Java and the KCL jars.

``ecs-state run`` starts::

    java -cp "<amazon_kclpy>/jars/*:<dir of FILE>" software.amazon.kinesis.multilang.MultiLangDaemon \\
         --properties-file FILE --log-configuration processor/worker/logback.xml

(``preflight`` checks first, ``supervisor`` runs it, ``daemon_log`` reads what it says). Building the command
and the environment is pure; finding Java and the jars reads the file system only.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Mapping, Sequence

from processor.config import PROPERTIES_ENV
from processor.errors import WORKER_EXTRA_FIX, LaunchError
from processor.worker.daemon_log import level_rank, normalize_level

MAIN_CLASS = "software.amazon.kinesis.multilang.MultiLangDaemon"
LOGBACK_XML = Path(__file__).with_name("logback.xml")
JARS_ENV = "ECS_STATE_KCL_JARS"


# ---- pure parts ----------------------------------------------------------------------------------------------


def classpath(jars_dir: Path, properties: Path) -> str:
    """``<jars>/*`` (Java expands the wildcard) and the properties file's folder."""
    return f"{jars_dir}{os.sep}*{os.pathsep}{properties.parent}"


def java_command(
    java: str,
    jars_dir: Path,
    properties: Path,
    logback: Path = LOGBACK_XML,
    log_level: str = "INFO",
    jvm_args: Sequence[str] = (),
) -> list[str]:
    """The command line that starts the MultiLangDaemon (pure). ``properties`` should be absolute."""
    level = normalize_level(log_level)
    chatty = level if level_rank(level) <= level_rank("DEBUG") else "WARN"
    marker = level if level_rank(level) < level_rank("INFO") else "INFO"
    return [
        java,
        *jvm_args,
        f"-Decs.kcl.logLevel={level}",
        f"-Decs.kcl.chattyLevel={chatty}",
        f"-Decs.kcl.markerLevel={marker}",
        # Also for logback's own start-up, before the daemon applies --log-configuration: without it the
        # jar's bundled logback.xml is used first and logback prints status lines on stdout.
        f"-Dlogback.configurationFile={logback}",
        "-cp",
        classpath(jars_dir, properties),
        MAIN_CLASS,
        "--properties-file",
        str(properties),
        "--log-configuration",
        str(logback),
    ]


def daemon_env(
    props: Mapping[str, str], properties: Path, base: Mapping[str, str], bin_dir: Path | None = None
) -> dict[str, str]:
    """Environment of the Java process and so of every processor it starts (pure).

    ``ECS_STATE_PROPERTIES`` points the processors at the same file; the folder of this Python (a venv's
    ``bin``, where ``ecs-state-processor`` lives) goes first on PATH; ``dynamoDBEndpoint`` /
    ``kinesisEndpoint`` / ``regionName`` become boto3's ``AWS_ENDPOINT_URL_*`` / region variables unless
    those are already set, so the processors write to the DynamoDB that holds the leases."""
    env = dict(base)
    env[PROPERTIES_ENV] = str(properties)
    if bin_dir is not None:
        entries = env.get("PATH", "").split(os.pathsep) if env.get("PATH") else []
        env["PATH"] = os.pathsep.join([str(bin_dir), *[e for e in entries if e != str(bin_dir)]])
    for key, variable in (
        ("dynamoDBEndpoint", "AWS_ENDPOINT_URL_DYNAMODB"),
        ("kinesisEndpoint", "AWS_ENDPOINT_URL_KINESIS"),
    ):
        if props.get(key) and variable not in env:
            env[variable] = props[key]
    if props.get("regionName"):
        env.setdefault("AWS_REGION", props["regionName"])
        env.setdefault("AWS_DEFAULT_REGION", props["regionName"])
    return env


# ---- finding things ------------------------------------------------------------------------------------------


def find_java(env: Mapping[str, str]) -> str:
    home = env.get("JAVA_HOME")
    if home:
        java = Path(home) / "bin" / "java"
        if not (java.is_file() and os.access(java, os.X_OK)):
            raise LaunchError(
                f"JAVA_HOME={home} has no bin/java; point JAVA_HOME at a Java 17+ installation "
                f"or unset it to use java from PATH"
            )
        return str(java)
    java_path = shutil.which("java", path=env.get("PATH"))
    if not java_path:
        raise LaunchError(
            "java not found (JAVA_HOME unset, no java on PATH); install Java 17+ "
            "(Debian: apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
        )
    return java_path


def kclpy_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("amazon-kclpy")
    except PackageNotFoundError:
        return "?"


def find_jars(override: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The KCL jars: ``override``, ``$ECS_STATE_KCL_JARS``, or amazon_kclpy's ``jars`` folder."""
    env = os.environ if env is None else env
    configured = override or env.get(JARS_ENV)
    if configured:
        jars = Path(configured)
        how = f"--jars / {JARS_ENV} = {configured}"
    else:
        try:
            import amazon_kclpy
        except ImportError:
            raise LaunchError(f"{sys.executable}: {WORKER_EXTRA_FIX}") from None
        jars = Path(amazon_kclpy.__file__).parent / "jars"
        how = f"amazon-kclpy {kclpy_version()}"
    if not any(jars.glob("amazon-kinesis-client-multilang-*.jar")):
        raise LaunchError(
            f"no KCL jars in {jars} ({how}: amazon-kinesis-client-multilang-*.jar missing); "
            f"amazon-kclpy downloads them when it is installed: pip install --force-reinstall "
            f"--no-deps --no-cache-dir amazon-kclpy=={kclpy_version()}"
        )
    return jars


# ---- running -------------------------------------------------------------------------------------------------


# ---- CLI -----------------------------------------------------------------------------------------------------
