"""Loading a config: YAML that refuses duplicate keys, and the JSON schema with its defaults.

Everything in `thinkcost.config` runs when Snakemake parses the workflow, so it must be cheap and
must fail with a message that names the offending key or file before any job is planned.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from thinkcost.config.errors import ConfigError


class _StrictLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate mapping keys.

    PyYAML (and so Snakemake's configfile) silently keeps the last of two equal keys, which turns
    a copy-pasted model entry into a model that quietly disappears from the grid.
    """


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(
                f"{key_node.start_mark.name}: duplicate key {key!r} at line "
                f"{key_node.start_mark.line + 1} (first defined at line {seen[key] + 1})"
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml_strict(path: str | os.PathLike) -> Any:
    """Load a YAML file, raising ConfigError on duplicate keys or a parse error."""
    path = Path(path)
    try:
        with path.open() as handle:
            return yaml.load(handle, Loader=_StrictLoader)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error


# --------------------------------------------------------------------------- schema


def _with_defaults(validator_class: type) -> type:
    """Extend a jsonschema validator so that validating also fills in schema defaults."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = json.loads(json.dumps(subschema["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_DefaultingValidator = _with_defaults(jsonschema.Draft202012Validator)


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    where = _key_path(error)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        if allowed and unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, allowed, n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            return f"{where}: unknown key {', '.join(hints)}; allowed keys: {', '.join(allowed)}"
    if error.validator == "oneOf" and error.absolute_path and "source" in error.absolute_path:
        return (
            f"{where}: a model source names exactly one of 'hub' (with optional 'revision'), "
            f"'path', or 'pypi' with 'gguf'; got keys {sorted(error.instance)}"
        )
    return f"{where}: {error.message}"


_SCIENTIFIC = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def _coerce_scientific(value: Any) -> Any:
    """'1.4e9' -> 1.4e9. YAML 1.1 (PyYAML, Snakemake) reads 1.4e9 as a string: it wants 1.4e+9."""
    if isinstance(value, str) and _SCIENTIFIC.match(value.strip()):
        return float(value)
    if isinstance(value, dict):
        return {key: _coerce_scientific(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_coerce_scientific(item) for item in value]
    return value


def apply_schema(config: dict, schema_path: str | os.PathLike) -> dict:
    """Validate `config` in place against the JSON schema, filling in the schema's defaults."""
    for section in ("models", "imports", "analysis"):
        if section in config:
            config[section] = _coerce_scientific(config[section])
    schema = load_yaml_strict(schema_path)
    validator = _DefaultingValidator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), e.path))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise ConfigError(f"config error at {_describe(best)}{more}")
    return config
