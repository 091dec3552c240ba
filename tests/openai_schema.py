"""Validating gateway output against OpenAI's own OpenAPI schemas (``shared/spec/openai-openapi.yaml``).

The spec is OpenAPI 3.1 but still marks optional values with ``nullable: true``, which JSON
Schema does not know: ``json_schema_of`` rewrites those into a ``null`` type first (adding
``None`` to an ``enum``), then validators resolve ``$ref``s inside the spec's components.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

_BASE = "urn:openai-openapi"


def nullable_to_null_type(node: Any) -> Any:
    """Rewrite OpenAPI ``nullable: true`` as JSON Schema, recursively."""
    if isinstance(node, list):
        return [nullable_to_null_type(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: nullable_to_null_type(value) for key, value in node.items()}
    if out.get("nullable") is True:
        del out["nullable"]
        if "type" in out:
            kinds = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = [*kinds, "null"] if "null" not in kinds else kinds
            if "enum" in out and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


class OpenAISchemas:
    def __init__(self, spec_path: Path) -> None:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        with open(spec_path, encoding="utf-8") as handle:
            spec = yaml.load(handle, Loader=loader)
        root = {"components": {"schemas": nullable_to_null_type(spec["components"]["schemas"])}}
        self._registry = Registry().with_resource(_BASE, Resource.from_contents(root, default_specification=DRAFT202012))

    @lru_cache(maxsize=None)
    def validator(self, name: str, closed: bool = False) -> Draft202012Validator:
        """``closed``: also refuse top-level fields the schema does not name (OpenAI rejects them)."""
        schema: dict = {"$ref": f"{_BASE}#/components/schemas/{name}"}
        if closed:
            schema = {"allOf": [schema], "unevaluatedProperties": False}
        return Draft202012Validator(schema, registry=self._registry)

    def check(self, name: str, instance: Any, *, closed: bool = False) -> None:
        """Raise ``AssertionError`` listing every way ``instance`` breaks schema ``name``."""
        errors = sorted(self.validator(name, closed).iter_errors(instance), key=lambda e: list(e.path))
        if errors:
            lines = [f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message[:300]}" for e in errors[:10]]
            raise AssertionError(f"not a valid {name}:\n" + "\n".join(lines))
