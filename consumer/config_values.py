"""How raw values become configuration values: strict types, never a silent conversion.

A TOML value must have its key's type: ``12.7``, ``true`` or ``"12"`` for an integer key is an
error naming the key, never rounded or converted. The few keys that hold comma-separated lists
(`JOINED_LISTS`) also take a TOML array of strings, joined with ``,``. Environment values are text
and are parsed by the key's type: integers as decimal digits, booleans as
true/false/1/0/yes/no/on/off. librdkafka property tables take strings, integers and booleans
(written ``true``/``false``, librdkafka's spelling); other tables take strings only. A number key
(a float default) takes a TOML float or integer, and from the environment JSON number syntax.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from consumer.errors import ConfigError

_TRUE_WORDS = ("1", "true", "yes", "on")
_FALSE_WORDS = ("0", "false", "no", "off")
_DECIMAL = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")  # JSON number syntax


def parse_env_value(name: str, default: Any, text: str) -> Any:
    """The environment variable `name`'s text as a value of `default`'s type."""
    if isinstance(default, Mapping):
        raise ConfigError("a table cannot be set from the environment", key=name)
    if isinstance(default, bool):
        if text.strip().lower() in _TRUE_WORDS + _FALSE_WORDS:
            return text.strip().lower() in _TRUE_WORDS
        raise ConfigError(f"expected a boolean (true or false), got {text!r}", key=name)
    if isinstance(default, int):
        if _DECIMAL.fullmatch(text.strip()):
            return int(text)
        raise ConfigError(f"expected an integer, got {text!r}", key=name)
    if isinstance(default, float):
        if _NUMBER.fullmatch(text.strip()):
            return float(text)
        raise ConfigError(f"expected a number, got {text!r}", key=name)
    return text


#: Keys holding a comma-separated list: a TOML array of strings is accepted and joined with ",".
JOINED_LISTS = frozenset(
    {"kafka.bootstrap_servers", "features.user_features", "features.item_features"}
)

_TOML_TYPES: dict[type[Any], str] = {
    bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "an array",
    dict: "a table",
}  # fmt: skip


def shown(value: Any) -> str:
    """What a value is, as an error message says it: ``a float (12.7)``, ``a table``."""
    kind = _TOML_TYPES.get(type(value), f"a {type(value).__name__}")
    return f"{kind} ({value!r})" if not isinstance(value, dict) else kind


def coerce(key: str, default: Any, value: Any) -> Any:
    """`value` if it has the key's type (never converted), else `ConfigError` naming the key."""
    if isinstance(default, Mapping):
        return table(key, value)
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise ConfigError(f"expected a boolean (true or false), got {shown(value)}", key=key)
    if isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"expected an integer, got {shown(value)}", key=key)
    if isinstance(default, float):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)  # an integer written for a number key is exact
        raise ConfigError(f"expected a number, got {shown(value)}", key=key)
    if isinstance(value, str):
        return value
    if key in JOINED_LISTS:
        if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
            return ",".join(value)
        raise ConfigError(
            f"expected a string or an array of non-empty strings, got {shown(value)}", key=key
        )
    raise ConfigError(f"expected a string, got {shown(value)}", key=key)


def table(key: str, value: Any) -> dict[str, str]:
    """A librdkafka property table (strings, integers, booleans) or a table of strings."""
    librdkafka = key.startswith("kafka.")
    if not isinstance(value, dict):
        kind = "librdkafka properties" if librdkafka else "strings"
        raise ConfigError(f"must be a table of {kind}, got {shown(value)}", key=key)
    out: dict[str, str] = {}
    for name, item in value.items():
        entry = f'{key}."{name}"'
        if isinstance(item, str):
            out[str(name)] = item
        elif librdkafka and isinstance(item, bool):
            out[str(name)] = "true" if item else "false"
        elif librdkafka and isinstance(item, int):
            out[str(name)] = str(item)
        elif librdkafka and isinstance(item, dict):
            raise ConfigError(
                "expected a string, integer or boolean, got a table: quote dotted librdkafka "
                f'names ("{name}.…" = value)',
                key=entry,
            )
        else:
            kind = "a string, integer or boolean" if librdkafka else "a string"
            raise ConfigError(f"expected {kind}, got {shown(item)}", key=entry)
    return out
