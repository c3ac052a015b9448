"""Move a registered model's serving alias and keep the history of its moves in the registry.

The history of an alias is a JSON list of version numbers in the registered-model tag
`alias.<ALIAS>.history`, oldest first, whose last entry is the version the alias points at.
Promoting appends a version and rolling back removes the last one, so a rollback goes back to
the version the alias pointed at before the last promotion, also from another process or host.

Limitations:
    MLflow sets the alias and the tag in two requests, with no transaction around them. Two
    moves of the same alias at the same moment can leave a history that misses one of them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

from streamscore.errors import StreamscoreError

logger = logging.getLogger(__name__)


class AliasError(StreamscoreError):
    """An alias cannot be moved: unknown model or version, no history, or a registry failure."""


@dataclass(frozen=True)
class AliasMove:
    """One move of `alias` of the registered model `model_name`; `previous` None if it was unset."""

    model_name: str
    alias: str
    previous: int | None
    current: int

    def describe(self) -> str:
        """Return the move as one line, e.g. `alias champion: version 2 -> version 4`."""
        before = "not set" if self.previous is None else f"version {self.previous}"
        return f"alias {self.alias}: {before} -> version {self.current}"


def history_tag(alias: str) -> str:
    """Return the name of the registered-model tag that stores the history of `alias`."""
    return f"alias.{alias}.history"


def alias_version(client: MlflowClient, name: str, alias: str) -> int | None:
    """Return the version `alias` points at, or None when the model or the alias does not exist."""
    try:
        aliases = client.get_registered_model(name).aliases
    except MlflowException as exc:
        if exc.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return None
        raise
    return int(aliases[alias]) if alias in aliases else None


def promote(client: MlflowClient, name: str, alias: str, version: int) -> AliasMove:
    """Point `alias` at `version` and append the version to the alias history.

    Raises:
        AliasError: the registered model or the version does not exist.
        MlflowException: the registry failed.
    """
    _check_version_exists(client, name, version)
    history = _read_history(client, name, alias)
    if not history or history[-1] != version:
        history.append(version)
    return _move(client, name, alias, version, history)


def rollback(client: MlflowClient, name: str, alias: str) -> AliasMove:
    """Point `alias` back at the version it pointed at before the last promotion.

    Raises:
        AliasError: the model does not exist, or the history contains no earlier version.
        MlflowException: the registry failed.
    """
    history = _read_history(client, name, alias)
    current = alias_version(client, name, alias)
    # A move made outside streamscore, such as in the MLflow UI, is missing from the history.
    # Dropping the entries equal to the current version skips back to the last different one.
    while history and history[-1] == current:
        history.pop()
    if not history:
        raise AliasError(
            f"alias {alias} of model {name} has no earlier version to roll back to: "
            f"use `streamscore promote --version N` to choose one"
        )
    return _move(client, name, alias, history[-1], history)


def _move(
    client: MlflowClient, name: str, alias: str, version: int, history: list[int]
) -> AliasMove:
    """Set the alias and store its new history: the one place where an alias moves."""
    previous = alias_version(client, name, alias)
    client.set_registered_model_alias(name, alias, str(version))
    client.set_registered_model_tag(name, history_tag(alias), json.dumps(history))
    logger.info(
        "alias moved name=%s alias=%s previous=%s version=%d", name, alias, previous, version
    )
    return AliasMove(name, alias, previous, version)


def _read_history(client: MlflowClient, name: str, alias: str) -> list[int]:
    """Return the stored history, seeded with the current version when none is stored yet."""
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            raise AliasError(
                f"registered model {name!r} not found: run `streamscore train` first, or name "
                f"another model with --model"
            ) from exc
        raise
    stored = model.tags.get(history_tag(alias))
    if stored is None:
        current = model.aliases.get(alias)
        return [int(current)] if current is not None else []
    try:
        history = json.loads(stored)
    except json.JSONDecodeError:
        history = None
    if not isinstance(history, list) or not all(isinstance(v, int) for v in history):
        raise AliasError(
            f"tag {history_tag(alias)} of model {name} is not a JSON list of versions: "
            f"{stored[:80]!r}; delete the tag to start a new history"
        )
    return history


def _check_version_exists(client: MlflowClient, name: str, version: int) -> None:
    try:
        client.get_model_version(name, str(version))
    except MlflowException as exc:
        if exc.error_code != ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            raise
        versions = client.search_model_versions(f"name = '{name}'")
        if not versions:
            raise AliasError(
                f"registered model {name!r} not found: run `streamscore train` first, or name "
                f"another model with --model"
            ) from exc
        latest = max(int(found.version) for found in versions)
        raise AliasError(
            f"model {name} has no version {version}: choose an existing version, the latest "
            f"is {latest}"
        ) from exc
