"""Read template.yaml, so that tests and local runs use the deployed schema and routes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import REPO_ROOT

TEMPLATE_PATH = REPO_ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that keeps CloudFormation's short-form tags (!Ref, !Sub, ...) as
    ``{"Ref": ...}`` / ``{"Fn::Sub": ...}`` mappings."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _tag)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        template: dict[str, Any] = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    return template


def resources_of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: body for name, body in template["Resources"].items() if body["Type"] == kind}


def _parameter_values(template: dict[str, Any], parameters: dict[str, str]) -> dict[str, str]:
    values = {name: str(body.get("Default", "")) for name, body in template.get("Parameters", {}).items()}
    values.update(parameters)
    return values


def _holds(body: dict[str, Any], values: dict[str, str]) -> bool:
    """A condition made of ``!Not`` and ``!Equals [!Ref Parameter, value]``."""
    if "Fn::Not" in body:
        return not _holds(body["Fn::Not"][0], values)
    left, right = body["Fn::Equals"]
    return values[left["Ref"]] == str(right)


def _condition_values(template: dict[str, Any], parameters: dict[str, str]) -> dict[str, bool]:
    """The template's conditions at the given parameter values, defaults for the others."""
    values = _parameter_values(template, parameters)
    return {name: _holds(body, values) for name, body in template.get("Conditions", {}).items()}


def rule_failures(template: dict[str, Any], parameters: dict[str, str]) -> list[str]:
    """What CloudFormation's ``Rules`` would refuse these parameter values for (the
    assertions' descriptions)."""
    values = _parameter_values(template, parameters)
    failures: list[str] = []
    for rule in template.get("Rules", {}).values():
        if "RuleCondition" in rule and not _holds(rule["RuleCondition"], values):
            continue
        failures.extend(
            assertion["AssertDescription"]
            for assertion in rule["Assertions"]
            if not _holds(assertion["Assert"], values)
        )
    return failures


def _choose(value: Any, conditions: dict[str, bool]) -> Any:
    """``value`` with every ``!If`` decided and ``AWS::NoValue`` list entries left out."""
    if isinstance(value, dict):
        if set(value) == {"Fn::If"}:
            name, when_true, when_false = value["Fn::If"]
            return _choose(when_true if conditions[name] else when_false, conditions)
        return {key: _choose(inner, conditions) for key, inner in value.items()}
    if isinstance(value, list):
        chosen = [_choose(inner, conditions) for inner in value]
        return [inner for inner in chosen if inner != {"Ref": "AWS::NoValue"}]
    return value


def create_table_requests(
    template: dict[str, Any], names: dict[str, str], parameters: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """``CreateTable`` arguments for each table in the template; ``names`` maps the
    logical id to the physical name to use; ``parameters`` overrides the template's
    parameter defaults (the optional indexes)."""
    conditions = _condition_values(template, parameters or {})
    requests = []
    for logical_id, resource in resources_of_type(template, "AWS::DynamoDB::Table").items():
        props = _choose(resource["Properties"], conditions)
        request: dict[str, Any] = {
            "TableName": names[logical_id],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if props.get("StreamSpecification"):
            view = props["StreamSpecification"]["StreamViewType"]
            request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": view}
        if props.get("GlobalSecondaryIndexes"):
            request["GlobalSecondaryIndexes"] = [
                {"IndexName": gsi["IndexName"], "KeySchema": gsi["KeySchema"], "Projection": gsi["Projection"]}
                for gsi in props["GlobalSecondaryIndexes"]
            ]
        requests.append(request)
    return requests


def create_tables(
    client: Any, names: dict[str, str], template: dict[str, Any] | None = None, parameters: dict[str, str] | None = None
) -> None:
    """Create the template's tables (and their TTL settings) through ``client``."""
    template = template or load_template()
    resources = template["Resources"]
    for request in create_table_requests(template, names, parameters):
        client.create_table(**request)
        client.get_waiter("table_exists").wait(TableName=request["TableName"])
    for logical_id, name in names.items():
        ttl = resources[logical_id]["Properties"].get("TimeToLiveSpecification")
        if ttl:
            client.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)


@dataclass(frozen=True)
class Route:
    function: str
    method: str
    path: str
    code_uri: str
    handler: str

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"


def http_routes(template: dict[str, Any] | None = None) -> list[Route]:
    """Every HttpApi route of the template with the function behind it."""
    template = template or load_template()
    routes = []
    for name, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        props = resource["Properties"]
        for event in (props.get("Events") or {}).values():
            if event["Type"] == "HttpApi":
                routes.append(
                    Route(
                        name,
                        event["Properties"]["Method"],
                        event["Properties"]["Path"],
                        props["CodeUri"],
                        props["Handler"],
                    )
                )
    return routes


def _resolve(
    value: Any, parameters: dict[str, Any], resources: dict[str, str], conditions: dict[str, bool] | None = None
) -> Any:
    """A template value with Ref resolved from parameter defaults and ``resources``
    (logical id, or a pseudo parameter such as ``AWS::StackName`` -> local value), a
    Sub of such names, and an If by the conditions at the parameters' defaults; other
    intrinsics are not used in environments."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        name = value["Ref"]
        if name in resources:
            return resources[name]
        if name in parameters:
            return str(parameters[name].get("Default", ""))
        raise KeyError(f"cannot resolve Ref {name} locally")
    if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        return re.sub(
            r"\$\{([\w:]+)\}", lambda match: str(_resolve({"Ref": match[1]}, parameters, resources)), value["Fn::Sub"]
        )
    if isinstance(value, dict) and set(value) == {"Fn::If"} and conditions is not None:
        condition, when_true, when_false = value["Fn::If"]
        return _resolve(when_true if conditions[condition] else when_false, parameters, resources, conditions)
    return value


def function_environment(
    function: str, resources: dict[str, str], template: dict[str, Any] | None = None
) -> dict[str, str]:
    """The environment the template gives ``function`` (Globals, then its own), with
    parameters at their defaults and resources mapped by ``resources``; a variable whose
    resource is mapped to ``""`` is left out."""
    template = template or load_template()
    parameters = template.get("Parameters", {})
    variables = dict(template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}))
    own = template["Resources"][function]["Properties"].get("Environment", {}).get("Variables", {})
    variables.update(own)
    conditions = _condition_values(template, {})
    environment = {name: str(_resolve(value, parameters, resources, conditions)) for name, value in variables.items()}
    return {name: value for name, value in environment.items() if value != ""}


def function_timeout(function: str, template: dict[str, Any] | None = None) -> int:
    template = template or load_template()
    own = template["Resources"][function]["Properties"].get("Timeout")
    return int(own or template.get("Globals", {}).get("Function", {}).get("Timeout", 3))


@dataclass(frozen=True)
class StreamSource:
    """A function's DynamoDB stream event source, as the template sets it."""

    function: str
    table: str  # the table's logical id
    batch_size: int
    max_retries: int
    patterns: tuple[dict[str, Any], ...]


def stream_sources(template: dict[str, Any] | None = None) -> list[StreamSource]:
    import json  # noqa: PLC0415

    template = template or load_template()
    sources = []
    for name, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        for event in (resource["Properties"].get("Events") or {}).values():
            if event["Type"] != "DynamoDB":
                continue
            props = event["Properties"]
            filters = (props.get("FilterCriteria") or {}).get("Filters") or []
            sources.append(
                StreamSource(
                    name,
                    props["Stream"]["Fn::GetAtt"][0],
                    int(props.get("BatchSize", 100)),
                    int(props.get("MaximumRetryAttempts", -1)),
                    tuple(json.loads(entry["Pattern"]) for entry in filters),
                )
            )
    return sources
