"""The README's deploy commands, run as typed on this machine up to the point where AWS
credentials are needed (there is no account here): the path a new user takes cannot rot
without a test failing."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from devtools import REPO_ROOT
from devtools.template import load_template

pytestmark = pytest.mark.build

SAM = REPO_ROOT / ".venv-sam" / "bin" / "sam"
CONFIG = tomllib.loads((REPO_ROOT / "samconfig.toml").read_text(encoding="utf-8"))


def deploy_commands(env: str | None) -> list[str]:
    """What `make deploy [ENV=…]` runs, as make prints it."""
    args = ["make", "-n", "--no-print-directory", "deploy"] + ([f"ENV={env}"] if env else [])
    printed = subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    return [line for line in printed.splitlines() if "sam " in line and not line.startswith("#")]


@pytest.mark.parametrize(("env", "stack"), [(None, "nxcloud-cdr-dev"), ("prod", "nxcloud-cdr")])
def test_make_deploy_builds_then_deploys_the_environment(env, stack):
    commands = deploy_commands(env)

    assert commands[-2].endswith("sam build")
    assert re.search(rf"sam deploy --config-env {env or 'dev'}\b", commands[-1])
    assert CONFIG[env or "dev"]["global"]["parameters"]["stack_name"] == stack


def test_make_deploy_leaves_the_region_and_the_environment_to_the_user(tmp_path: Path):
    # `make deploy` with a stand-in sam that prints what it was given: the region is the
    # user's (their profile's when AWS_DEFAULT_REGION is unset, never a default of the
    # Makefile's), and an ENV exported in the shell does not pick the stack.
    fake = tmp_path / "sam"
    fake.write_text('#!/bin/sh\necho "sam $* region=${AWS_DEFAULT_REGION:-unset}"\n', encoding="utf-8")
    fake.chmod(0o755)
    environment = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    environment["ENV"] = "prod"
    printed = subprocess.run(
        ["make", "--no-print-directory", "-s", "deploy", f"SAM={fake}"],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert printed[-2:] == ["sam build region=unset", "sam deploy --config-env dev region=unset"]


def test_environments_dev_is_throwaway_prod_is_safe():
    template = load_template()["Parameters"]
    dev = CONFIG["dev"]["deploy"]["parameters"]
    overrides = dict(item.split("=", 1) for item in dev["parameter_overrides"].split())
    assert overrides["TableDeletionProtection"] == "false"
    assert set(overrides) <= set(template)  # every override names a real parameter
    for name, value in overrides.items():
        allowed = template[name].get("AllowedValues")
        assert allowed is None or value in [str(choice) for choice in allowed], name
    prod = CONFIG["prod"]["deploy"]["parameters"]
    assert "parameter_overrides" not in prod  # the template's safe defaults
    assert prod["confirm_changeset"] is True
    for config in (dev, prod):
        # CAPABILITY_AUTO_EXPAND: the monitoring is a nested application.
        assert (config["capabilities"], config["resolve_s3"]) == ("CAPABILITY_IAM CAPABILITY_AUTO_EXPAND", True)


def sam_without_credentials(args: list[str], tmp_path: Path, answers: str | None = None) -> str:
    """Runs sam in a home without AWS files and no AWS variable but the region; returns
    what it printed, after checking that it stopped."""
    home = tmp_path / "home"
    home.mkdir()
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "SAM_CLI_TELEMETRY": "0",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    completed = subprocess.run(
        [str(SAM), *args],
        cwd=REPO_ROOT,
        env=environment,
        input=answers,
        stdin=None if answers is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode != 0
    return completed.stdout + completed.stderr


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_sam_deploy_goes_as_far_as_the_credentials(env, tmp_path: Path):
    # What stops the deploy must be the missing credentials, not the template,
    # samconfig.toml or a prompt.
    output = sam_without_credentials(["deploy", "--config-env", env, "--no-execute-changeset"], tmp_path)
    assert "Unable to locate credentials" in output, output[-2000:]


def test_guided_deploy_on_every_default_goes_as_far_as_the_credentials(tmp_path: Path):
    # Enter to every question of `make deploy-guided`: no default may abort the deploy
    # (SAM's "has no authentication. Is this okay? [y/N]" did). The answers are saved to
    # a copy of samconfig.toml, never to the clone's.
    config = tmp_path / "samconfig.toml"
    config.write_text((REPO_ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    output = sam_without_credentials(
        ["deploy", "--guided", "--config-env", "dev", "--config-file", str(config), "--template-file", "template.yaml"],
        tmp_path,
        answers="\n" * 200,
    )
    prompts = re.findall(r"Parameter (\w+) \[", output)
    assert set(prompts) == set(load_template()["Parameters"]), output[-2000:]  # really guided
    assert "Is this okay?" not in output
    assert "Unable to locate credentials" in output, output[-2000:]


TRANSFORM = """
import json, sys
from samcli.yamlhelper import yaml_parse
from samtranslator.translator.transform import transform

class NoManagedPolicies:
    def load(self):
        return {}

template = yaml_parse(sys.stdin.read())
for resource in template["Resources"].values():
    for uri in ("CodeUri", "ContentUri"):
        if uri in resource.get("Properties", {}):
            resource["Properties"][uri] = "s3://bucket/key"
print(json.dumps(transform(template, {}, NoManagedPolicies()), sort_keys=True))
"""


def test_the_api_auth_block_only_answers_sams_question():
    # `Auth: {EnableIamAuthorizer: false}` must leave the deployed API exactly as without
    # it: NXCLOUD's pushes carry nothing an authorizer could check.
    source = (REPO_ROOT / "template.yaml").read_text(encoding="utf-8")
    block = "      Auth:\n        EnableIamAuthorizer: false\n"
    assert source.count(block) == 1

    def transformed(text: str) -> str:
        return subprocess.run(
            [str(SAM.parent / "python"), "-c", TRANSFORM],
            input=text,
            env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    with_block = transformed(source)
    assert '"AWS::ApiGatewayV2::Api"' in with_block
    assert with_block == transformed(source.replace(block, ""))
