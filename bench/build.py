"""What ``sam build`` produced, read from the built template: each function's code
directory, handler, layers (Globals' then its own, as SAM merges them), memory,
timeout and environment; each layer's directory; the tables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devtools import REPO_ROOT
from devtools.template import load_template

FUNCTION_TYPE = "AWS::Serverless::Function"
LAYER_TYPE = "AWS::Serverless::LayerVersion"
TABLE_TYPE = "AWS::DynamoDB::Table"


@dataclass(frozen=True)
class Layer:
    name: str
    path: Path

    @property
    def python_paths(self) -> list[Path]:
        """What Lambda adds to sys.path for this layer (``/opt/python/lib/python3.13/site-packages``
        and ``/opt/python``), where it exists."""
        candidates = [self.path / "python" / "lib" / "python3.13" / "site-packages", self.path / "python"]
        return [path for path in candidates if path.is_dir()]


@dataclass(frozen=True)
class Function:
    name: str
    code_dir: Path
    handler: str
    layers: tuple[Layer, ...]
    memory_mb: int
    timeout_s: int
    variables: dict[str, Any]
    http_paths: tuple[str, ...] = ()
    event_types: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def sys_path(self) -> list[str]:
        """The function's code, then its layers: on Lambda every layer is unpacked into
        one /opt, a later layer over an earlier one, so later layers come first."""
        paths = [str(self.code_dir)]
        for layer in reversed(self.layers):
            paths.extend(str(path) for path in layer.python_paths)
        return paths

    @property
    def handler_module(self) -> str:
        return self.handler.rsplit(".", 1)[0]

    @property
    def handler_function(self) -> str:
        return self.handler.rsplit(".", 1)[1]


@dataclass
class Build:
    root: Path
    template: dict[str, Any]
    functions: dict[str, Function]
    layers: dict[str, Layer]
    tables: list[str]  # logical ids
    notes: list[str] = field(default_factory=list)

    def parameter_default(self, name: str) -> str | None:
        parameter = self.template.get("Parameters", {}).get(name)
        if parameter is None or "Default" not in parameter:
            return None
        return str(parameter["Default"])

    def environment(self, function: str, refs: dict[str, str]) -> dict[str, str]:
        """The function's variables with Ref resolved: parameters at their defaults,
        resources from ``refs`` (logical id -> local value). A variable whose value
        cannot be resolved locally (a secret's ARN, a GetAtt) is left out."""
        environment: dict[str, str] = {}
        for name, value in self.functions[function].variables.items():
            resolved = self._resolve(value, refs)
            if resolved is not None:
                environment[name] = resolved
        return environment

    def _resolve(self, value: Any, refs: dict[str, str]) -> str | None:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str | int | float):
            return str(value)
        if isinstance(value, dict) and set(value) == {"Ref"}:
            name = str(value["Ref"])
            if name in refs:
                return refs[name] or None
            return self.parameter_default(name)
        return None


def _merge(global_value: Any, own: Any) -> Any:
    if own is None:
        return global_value
    if isinstance(global_value, list) and isinstance(own, list):
        return [*global_value, *own]  # SAM: lists in Globals are prepended
    if isinstance(global_value, dict) and isinstance(own, dict):
        return {**global_value, **own}
    return own


def _ref(value: Any) -> str | None:
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return str(value["Ref"])
    return None


def read_build(build_dir: Path) -> Build:
    template_path = build_dir / "template.yaml"
    if not template_path.is_file():
        raise FileNotFoundError(f"{template_path} not found: run `sam build` (or pass --build-dir)")
    template = load_template(template_path)
    resources: dict[str, dict[str, Any]] = template.get("Resources", {})
    globals_ = template.get("Globals", {}).get("Function", {})
    build = Build(build_dir, template, {}, {}, [])

    for name, resource in resources.items():
        if resource.get("Type") == LAYER_TYPE:
            content = resource.get("Properties", {}).get("ContentUri")
            if isinstance(content, str):
                build.layers[name] = Layer(name, (build_dir / content).resolve())
        elif resource.get("Type") == TABLE_TYPE:
            build.tables.append(name)

    for name, resource in resources.items():
        if resource.get("Type") != FUNCTION_TYPE:
            continue
        props = resource.get("Properties", {})
        notes: list[str] = []
        layers: list[Layer] = []
        for entry in _merge(globals_.get("Layers", []), props.get("Layers")) or []:
            logical = _ref(entry)
            if logical in build.layers:
                layers.append(build.layers[logical])
            else:
                notes.append(f"layer {entry!r} is not built here (left out)")
        variables = _merge(
            globals_.get("Environment", {}).get("Variables", {}),
            props.get("Environment", {}).get("Variables"),
        )
        paths = tuple(
            str(event["Properties"]["Path"])
            for event in (props.get("Events") or {}).values()
            if event.get("Type") == "HttpApi" and "Path" in event.get("Properties", {})
        )
        build.functions[name] = Function(
            name=name,
            code_dir=(build_dir / str(props.get("CodeUri", name))).resolve(),
            handler=str(_merge(globals_.get("Handler"), props.get("Handler")) or "app.handler"),
            layers=tuple(layers),
            memory_mb=int(_merge(globals_.get("MemorySize"), props.get("MemorySize")) or 128),
            timeout_s=int(_merge(globals_.get("Timeout"), props.get("Timeout")) or 3),
            variables=dict(variables or {}),
            http_paths=paths,
            event_types=tuple(str(event.get("Type")) for event in (props.get("Events") or {}).values()),
            notes=tuple(notes),
        )
    if not build.functions:
        raise ValueError(f"no {FUNCTION_TYPE} in {template_path}")
    return build


def source_code_dirs() -> dict[str, Path]:
    """Each function's source directory (the repository's template.yaml), for the
    measurements made in the development virtualenv."""
    template = load_template(REPO_ROOT / "template.yaml")
    return {
        name: (REPO_ROOT / str(resource["Properties"]["CodeUri"])).resolve()
        for name, resource in template.get("Resources", {}).items()
        if resource.get("Type") == FUNCTION_TYPE
    }


def tree_bytes(path: Path, *, with_bytecode: bool = True) -> int:
    """Unzipped size: the sum of the files' sizes (what Lambda's 250 MB limit counts)."""
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            if not with_bytecode and (name.endswith(".pyc") or "__pycache__" in directory):
                continue
            total += (Path(directory) / name).stat().st_size
    return total
