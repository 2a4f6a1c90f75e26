"""Every file that states a fact states the same one: the template (deploy/ecs-state.yaml), the properties files,
the code and the docs (README.md, docs/*.md) are read side by side, and a test fails where they drift apart:
partition key paths, the stream and table names, the policies the docs name, the settings' defaults the docs
state, and every relative link of the docs. No AWS and no emulator: the files only (here beside test_deploy.py
because it reads the template with the same loader)."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from cfn_template import load_template

from processor.config import KCL_KEYS, Settings, parse_properties, property_key
from processor.core.events import VERSIONED

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
AWS_PROPERTIES = parse_properties((ROOT / "properties" / "aws.properties").read_text(encoding="utf-8"))
LOCAL_PROPERTIES = parse_properties((ROOT / "properties" / "local.properties").read_text(encoding="utf-8"))
CONFIGURATION = ROOT / "docs" / "configuration.md"


#: docs other branches of this round write, linked from here before they are merged; the lead removes this list
#: once they are in (a name is allowed only while its file is missing)
def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def rules(template: dict[str, Any]) -> dict[str, str]:
    """detail-type -> PartitionKeyPath of the rule's Kinesis target."""
    found = {}
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Events::Rule":
            [detail_type] = resource["Properties"]["EventPattern"]["detail-type"]
            [target] = resource["Properties"]["Targets"]
            found[detail_type] = target["KinesisParameters"]["PartitionKeyPath"]
    return found


def markdown_tables(path: Path) -> list[list[dict[str, str]]]:
    """Every table of a markdown file as rows of {header: cell} (cells stripped, escaped pipes kept; an empty
    header is the column's index)."""
    tables, current, header = [], [], None
    for line in text(path).splitlines() + [""]:
        if line.startswith("|"):
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if header is None:
                header = cells
            elif not all(set(c) <= set("-: ") for c in cells):
                current.append(
                    {name or str(i): cell for i, (name, cell) in enumerate(zip(header, cells, strict=False))}
                )
        elif header is not None:
            tables.append(current)
            current, header = [], None
    return tables


def first_code(cell: str) -> str | None:
    """The first `backticked` value of a cell, None when it has none ("(default)", "(unset ...)")."""
    match = re.search(r"`([^`]*)`", cell)
    return match.group(1) if match else None


# ---- partition keys, streams, tables ------------------------------------------------------------------------


def test_the_rules_partition_by_the_arn_the_processor_and_redrive_read(template: dict[str, Any]) -> None:
    assert rules(template) == {dt: f"$.detail.{key}" for dt, (_, key) in VERSIONED.items()}


def test_every_partition_key_path_the_docs_and_properties_name_is_the_templates(template: dict[str, Any]) -> None:
    paths = set(rules(template).values())
    files = [*DOCS, ROOT / "properties" / "aws.properties", ROOT / "properties" / "local.properties"]
    for path in files:
        for found in re.findall(r"\$\.[A-Za-z0-9_.\[\]]+", text(path)):
            assert found.rstrip(".") in paths, f"{rel(path)} names PartitionKeyPath {found}; the template uses {paths}"


def test_the_stream_name_is_the_templates_default_on_aws_and_the_local_stacks_locally(template: dict[str, Any]) -> None:
    aws_stream = template["Parameters"]["StreamName"]["Default"]
    assert AWS_PROPERTIES["streamName"] == aws_stream
    local_stream = LOCAL_PROPERTIES["streamName"]
    for path in [*DOCS, ROOT / "properties" / "aws.properties"]:
        for found in re.findall(r"\becs-(?:state-)?events\b", text(path)):
            assert found in (aws_stream, local_stream), f"{rel(path)} names stream {found}"
    assert re.search(rf"`streamName` / `streamArn` \| `{aws_stream}` \| `{local_stream}`", text(CONFIGURATION))


def test_table_names_agree_in_the_template_the_code_and_both_properties_files(template: dict[str, Any]) -> None:
    parameters, settings = template["Parameters"], Settings()
    for parameter, field in (
        ("TaskTableName", "task_table"),
        ("InstanceTableName", "instance_table"),
        ("DeadLetterTableName", "dead_letter_table"),
    ):
        name = getattr(settings, field)
        assert parameters[parameter]["Default"] == name
        assert AWS_PROPERTIES[property_key(field)] == LOCAL_PROPERTIES[property_key(field)] == name


#: the rule from when the stack always created the state tables; no file may state it any more
OLD_SETUP_RULE = re.compile(r"do not run `?ecs-state setup`? against", re.IGNORECASE)
#: the files that tell a user on AWS when to run ``ecs-state setup``
SETUP_RULE_FILES = ("README.md", "docs/deploy.md", "docs/cli.md", "docs/migration.md", "properties/aws.properties")


def prose(path: Path) -> str:
    """The file's words with line breaks, indentation and comment marks folded, so a sentence is found whole."""
    lines = text(path).splitlines()
    if path.suffix == ".properties":
        lines = [line.lstrip("# ") for line in lines if line.startswith("#")]
    return " ".join(" ".join(lines).split())


def test_the_files_state_one_rule_for_ecs_state_setup_on_aws(template: dict[str, Any]) -> None:
    """On AWS, `ecs-state setup` runs on tables the stack adopted (StateTables=existing), under the SetupPolicy, and
    never deletes or recreates a table; no file still says never to run it there."""
    values = template["Parameters"]["StateTables"]["AllowedValues"]
    assert template["Resources"]["SetupPolicy"]["Type"] == "AWS::IAM::ManagedPolicy"
    for name in SETUP_RULE_FILES:
        body = prose(ROOT / name)
        assert not OLD_SETUP_RULE.search(body), f"{name} still says not to run ecs-state setup on AWS"
        for phrase in ("StateTables=existing", "SetupPolicy", "never deletes or recreates"):
            assert phrase in body, f"{name} states the rule for ecs-state setup on AWS without {phrase!r}"
    for path in [*DOCS, ROOT / "properties" / "aws.properties"]:
        for value in re.findall(r"StateTables=(\w+)", prose(path)):
            assert value in values, f"{rel(path)} names StateTables={value}; the template allows {values}"


def test_the_setup_rule_check_finds_the_old_rule() -> None:
    old = (
        "# The stack creates these tables; do not run ecs-state setup against the account (it is for the local stack)."
    )
    assert OLD_SETUP_RULE.search(" ".join(old.lstrip("# ").split()))
    assert OLD_SETUP_RULE.search("The stack owns the tables: do not run `ecs-state setup` against the account")


# ---- policies ---------------------------------------------------------------------------------------------------


def test_every_policy_the_docs_name_is_in_the_template_and_each_is_documented(template: dict[str, Any]) -> None:
    policies = {name for name, r in template["Resources"].items() if r["Type"] == "AWS::IAM::ManagedPolicy"}
    # the AWS managed policies the templates attach (arn:...:iam::aws:policy/...), which docs may name too
    aws_managed = {
        name
        for path in sorted((ROOT / "deploy").glob("*.yaml"))
        for name in re.findall(r"iam::aws:policy/(?:[\w-]+/)*(\w+Policy)\b", text(path))
    }
    for path in DOCS:
        for found in set(re.findall(r"`(\w+Policy)`", text(path))):
            assert found in policies | aws_managed, f"{rel(path)} names {found}; the template's policies are {policies}"
    deploy = text(ROOT / "docs" / "deploy.md")
    assert all(f"`{name}`" in deploy for name in policies), "docs/deploy.md describes every policy"


def test_the_operator_policy_grants_what_status_needs_as_the_docs_say(template: dict[str, Any]) -> None:
    statements = template["Resources"]["OperatorPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    lease_table = [
        s for s in statements if "${ApplicationName}" in str(s["Resource"]) and "dynamodb:Scan" in s["Action"]
    ]
    assert lease_table, "status scans the lease table: the OperatorPolicy must grant dynamodb:Scan on it"
    operations = text(ROOT / "docs" / "operations.md")
    assert "needs `dynamodb:Scan` on the lease table; the `OperatorPolicy` grants\nit" in operations
    for path in DOCS:
        assert "does not\nyet grant" not in text(path) and "does not yet grant" not in text(path), rel(path)


# ---- settings -----------------------------------------------------------------------------------------------


def setting_rows(path: Path) -> dict[str, dict[str, str]]:
    """Rows of the tables of ``path`` whose first cell is an `ecsState.*` key, by key."""
    rows = {}
    for table in markdown_tables(path):
        for row in table:
            key = first_code(next(iter(row.values())))
            if key and re.fullmatch(r"ecsState\.[A-Za-z]+", key):
                rows[key] = row
    return rows


def test_configuration_md_lists_every_setting_with_the_codes_default_and_aws_properties_value() -> None:
    rows = setting_rows(CONFIGURATION)
    defaults = {property_key(f.name): str(f.default) for f in fields(Settings) if f.name not in KCL_KEYS}
    assert set(rows) == set(defaults), "docs/configuration.md has a row per setting, no more"
    for key, row in rows.items():
        assert first_code(row["default"]) == defaults[key], f"{key}: the code's default is {defaults[key]}"
        in_file = AWS_PROPERTIES.get(key)
        assert first_code(row["aws.properties"]) == in_file, f"{key}: properties/aws.properties says {in_file}"


def test_every_default_the_docs_state_is_the_codes() -> None:
    defaults = {property_key(f.name): str(f.default) for f in fields(Settings)}
    for path in DOCS:
        for key, row in setting_rows(path).items():
            assert key in defaults, f"{rel(path)} documents an unknown setting {key}"
            if "default" in row:
                assert first_code(row["default"]) == defaults[key], f"{rel(path)}: {key} defaults to {defaults[key]}"


def test_the_kcl_keys_table_says_what_the_properties_files_set() -> None:
    [table] = [t for t in markdown_tables(CONFIGURATION) if t and "local.properties" in t[0]]
    checked = 0
    for row in table:
        keys = re.findall(r"`([A-Za-z]+)`", row["key"])
        if len(keys) != 1 or row["key"].count("`") != 2:
            continue  # a row of several keys
        for column, props in (("aws.properties", AWS_PROPERTIES), ("local.properties", LOCAL_PROPERTIES)):
            stated = first_code(row[column]) if row[column] != "rendered" else props.get(keys[0])
            assert stated == props.get(keys[0]), f"{keys[0]}: {column} sets {props.get(keys[0])}, the docs say {stated}"
            checked += 1
    assert checked >= 20


# ---- links --------------------------------------------------------------------------------------------------


def anchors(path: Path) -> set[str]:
    """GitHub's anchors of a markdown file's headings."""
    found = set()
    for line in text(path).splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


def test_every_relative_link_of_the_docs_resolves() -> None:
    missing = []
    for path in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", text(path)):
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            file_part, _, anchor = target.partition("#")
            resolved = (path.parent / file_part).resolve() if file_part else path
            if not resolved.exists():
                missing.append(f"{rel(path)} -> {target}")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                missing.append(f"{rel(path)} -> {target} (no such heading)")
    assert not missing, missing


#: a short commit hash as people write one: 7-10 hex digits with a letter and a digit, standing alone (not inside an
#: ARN, a task id or a sequence number)
COMMIT = re.compile(r"(?<![\w/:.-])(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,10}(?![\w/-])")


def test_the_readme_keeps_the_two_commands_ci_runs_and_stays_short() -> None:
    readme = text(ROOT / "README.md")
    assert "./scripts/demo     # fresh machine" in readme and "./scripts/test     # the same set-up" in readme
    assert len(readme.splitlines()) <= 300


@pytest.mark.parametrize(
    "name",
    [
        "README.md",
        "docs/deploy.md",
        "docs/operations.md",
        "docs/configuration.md",
        "docs/cli.md",
        "docs/design.md",
        "docs/upgrading.md",
    ],
)
def test_user_docs_carry_no_issue_numbers_or_commit_hashes(name: str) -> None:
    body = text(ROOT / name)
    assert not re.search(r"\bissue \d+", body, re.IGNORECASE), name
    assert not COMMIT.search(body), (name, COMMIT.search(body))


def test_the_commit_pattern_finds_hashes_and_not_ids() -> None:
    assert COMMIT.search("the run of a0e996f (133 µs)") and COMMIT.search("commit 2247a22,")
    for not_a_hash in ("100663296", "task/prod/3f1c9a7e2b6d4e0f9a8b7c6d5e4f3a2b", "shardId-000000000001", "deadbeef"):
        assert not COMMIT.search(not_a_hash), not_a_hash
