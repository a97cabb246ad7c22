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
        assert (config["capabilities"], config["resolve_s3"]) == ("CAPABILITY_IAM", True)


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_sam_deploy_goes_as_far_as_the_credentials(env, tmp_path: Path):
    # A home without AWS files and no AWS variable but the region: what stops the deploy
    # must be the missing credentials, not the template, samconfig.toml or a prompt.
    home = tmp_path / "home"
    home.mkdir()
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "SAM_CLI_TELEMETRY": "0",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    completed = subprocess.run(
        [str(SAM), "deploy", "--config-env", env, "--no-execute-changeset"],
        cwd=REPO_ROOT,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode != 0
    assert "Unable to locate credentials" in output, output[-2000:]
