"""``make upgrade ENV=<env>``: bring a deployed stack to this version one index at a time.

DynamoDB adds or removes one global secondary index per table update, and CloudFormation
fails an update that asks for more. A stack more than one release behind may lack two
indexes (``ByDidY`` came with 0.3.0, ``ByRecordingFailure`` with 0.4.0), so ``make
deploy`` alone would fail on it. The upgrade reads the deployed table's indexes, then
deploys in steps: first with every optional lookup (template parameters) as the table
has it, which adds the one new index no parameter turns off, then each optional lookup
turned to its wanted value, one per deployment. A stack one release behind, or current,
is one plain deployment.

The plan is pure (:func:`plan`) and tested on DynamoDB Local from each earlier table
shape (``tests/unit/test_upgrade.py``); running it needs the AWS credentials ``make
deploy`` uses.
"""

from __future__ import annotations

import argparse
import itertools
import shlex
import subprocess
import sys
import tomllib
from typing import Any

from devtools import REPO_ROOT
from devtools.template import create_table_requests, load_template

RECORDS = "CallRecordsTable"
# Each optional lookup index and the template parameter that turns it on.
OPTIONAL = {"ByDid": "DidLookup", "ByDidY": "DidYLookup", "ByCustomerBindId": "CustomerBindIdLookup"}
# The index set of each release's records table, every optional lookup on (CHANGELOG.md).
RELEASES = {
    "0.1.0": {"ByTime", "ByCaller", "ByCallee", "ByDid", "ByBindId", "ByCustomerBindId"},
    "0.2.0": {"ByTime", "ByCaller", "ByCallee", "ByDid", "ByBindId", "ByCustomerBindId"},
    "0.3.0": {"ByTime", "ByCaller", "ByCallee", "ByDid", "ByDidY", "ByBindId", "ByCustomerBindId"},
}


class UpgradeError(Exception):
    """The stack cannot be brought to this version by deployments of it alone."""


def indexes_for(parameters: dict[str, str], template: dict[str, Any] | None = None) -> set[str]:
    """The records table's indexes this template makes with ``parameters``."""
    requests = create_table_requests(template or load_template(), {RECORDS: "t", "QuarantineTable": "q"}, parameters)
    [records] = [request for request in requests if request["TableName"] == "t"]
    return {index["IndexName"] for index in records.get("GlobalSecondaryIndexes", [])}


def plan(existing: set[str], wanted: dict[str, str], template: dict[str, Any] | None = None) -> list[dict[str, str]]:
    """The parameter overrides of each deployment, in order, that take a table with the
    ``existing`` indexes to the ones ``wanted`` (the user's parameters) gives, one index
    per deployment. The last step is always ``wanted`` itself."""
    template = template or load_template()
    target = indexes_for(wanted, template)
    # As the table is: each optional lookup on exactly when its index exists.
    current = dict(wanted) | {parameter: str(index in existing).lower() for index, parameter in OPTIONAL.items()}
    fixed_new = indexes_for(current, template) - existing
    if len(fixed_new) > 1:
        raise UpgradeError(f"the table lacks {sorted(fixed_new)}: more than one index no parameter turns off")
    gone = existing - indexes_for(current, template)
    if gone:
        raise UpgradeError(f"the table has indexes this version does not know: {sorted(gone)}")
    steps = [current] if fixed_new else []
    for parameter in OPTIONAL.values():
        if current[parameter] != wanted.get(parameter, current[parameter]):
            current = current | {parameter: wanted[parameter]}
            steps.append(dict(current))
    if not steps or steps[-1] != wanted:
        steps.append(dict(wanted))
    shapes = [existing] + [indexes_for(step, template) for step in steps]
    for before, after in itertools.pairwise(shapes):
        if len(before ^ after) > 1:
            raise UpgradeError(f"a step would change {sorted(before ^ after)} at once")
    if shapes[-1] != target:
        raise UpgradeError(f"the steps end at {sorted(shapes[-1])}, not {sorted(target)}")
    return steps


def _samconfig(env: str) -> tuple[str, dict[str, str]]:
    config = tomllib.loads((REPO_ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    section = config.get(env)
    if not section or "deploy" not in section:
        known = sorted(name for name, value in config.items() if isinstance(value, dict) and "deploy" in value)
        raise UpgradeError(f"unknown environment {env!r}: samconfig.toml has {', '.join(known)}")
    stack = (
        section.get("global", {}).get("parameters", {}).get("stack_name")
        or config["default"]["global"]["parameters"]["stack_name"]
    )
    overrides = section["deploy"]["parameters"].get("parameter_overrides", "")
    return str(stack), dict(part.split("=", 1) for part in shlex.split(overrides))


def _deployed_indexes(stack: str) -> set[str]:
    import boto3  # noqa: PLC0415 - only when run against AWS

    resource = boto3.client("cloudformation").describe_stack_resource(StackName=stack, LogicalResourceId=RECORDS)
    table = resource["StackResourceDetail"]["PhysicalResourceId"]
    described = boto3.client("dynamodb").describe_table(TableName=table)["Table"]
    return {index["IndexName"] for index in described.get("GlobalSecondaryIndexes", [])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make upgrade", description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--config-env", default="dev")
    parser.add_argument("--dry-run", action="store_true", help="print the deployments, run none")
    args = parser.parse_args(argv)
    try:
        stack, overrides = _samconfig(args.config_env)
        steps = plan(_deployed_indexes(stack), overrides)
    except UpgradeError as exc:
        sys.stderr.write(f"make upgrade: {exc}\n")
        return 2
    for number, step in enumerate(steps, 1):
        parameters = " ".join(f"{name}={value}" for name, value in sorted(step.items()))
        command = [
            str(REPO_ROOT / ".venv-sam" / "bin" / "sam"),
            "deploy",
            "--config-env",
            args.config_env,
            "--no-confirm-changeset",
            "--no-fail-on-empty-changeset",
            "--parameter-overrides",
            parameters,
        ]
        sys.stdout.write(f"step {number} of {len(steps)}: {parameters}\n")
        if not args.dry_run and subprocess.run(command, cwd=REPO_ROOT, check=False).returncode != 0:  # noqa: S603
            sys.stderr.write(f"make upgrade: step {number} failed; run make upgrade again once it is fixed\n")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
