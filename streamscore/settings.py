"""Settings for every streamscore command: one frozen pydantic model with nested sections.

Precedence, highest first: values passed by the caller (CLI flags), environment variables
(`STREAMSCORE_` prefix, `__` between levels, e.g. `STREAMSCORE_WORKER__BATCH_SIZE=200`), the YAML
file, then the defaults below. `config/default.yaml` repeats every default with a comment.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from streamscore.errors import ConfigError

ENV_PREFIX = "STREAMSCORE_"
ENV_CONFIG_FILE = "STREAMSCORE_CONFIG"
DEFAULT_CONFIG_FILE = Path(__file__).resolve().parent.parent / "config" / "default.yaml"

# Kafka client properties: librdkafka accepts strings, numbers and booleans.
ClientProperties = dict[str, str | int | float | bool]

_MODEL_URI = re.compile(r"models:/[^/@]+(@[^/@]+|/[0-9]+)")


class Section(BaseModel):
    """Base of every settings section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class SecuritySettings(Section):
    """Authentication and encryption settings of every Kafka client.

    Secrets are `SecretStr`, so they print as asterisks. Set them with environment variables
    such as `STREAMSCORE_KAFKA__SECURITY__SASL_PASSWORD` rather than in a file.
    """

    protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = None
    ssl_certificate_location: Path | None = None
    ssl_key_location: Path | None = None
    ssl_key_password: SecretStr | None = None

    @property
    def is_sasl(self) -> bool:
        """Whether the protocol authenticates with SASL."""
        return self.protocol.startswith("SASL_")

    @property
    def is_ssl(self) -> bool:
        """Whether the protocol encrypts with TLS."""
        return self.protocol in ("SSL", "SASL_SSL")

    @model_validator(mode="after")
    def _validate_protocol_settings(self) -> SecuritySettings:
        sasl = {
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_username": self.sasl_username,
            "sasl_password": self.sasl_password,
        }
        ssl = {
            "ssl_ca_location": self.ssl_ca_location,
            "ssl_certificate_location": self.ssl_certificate_location,
            "ssl_key_location": self.ssl_key_location,
            "ssl_key_password": self.ssl_key_password,
        }
        if self.is_sasl:
            for key, value in sasl.items():
                if value is None:
                    raise ValueError(f"{key} is required when protocol is {self.protocol}")
        else:
            _reject_unused(sasl, self.protocol, "SASL_PLAINTEXT or SASL_SSL")
        if not self.is_ssl:
            _reject_unused(ssl, self.protocol, "SSL or SASL_SSL")
        if (self.ssl_certificate_location is None) != (self.ssl_key_location is None):
            raise ValueError(
                "ssl_certificate_location and ssl_key_location must be set together, "
                "got only one of them"
            )
        return self


def _reject_unused(values: dict[str, Any], protocol: str, needed: str) -> None:
    """Reject settings that the protocol would ignore, because that could hide a wrong protocol."""
    for key, value in values.items():
        if value is not None:
            raise ValueError(f"{key} is set but protocol is {protocol}; set protocol to {needed}")


class KafkaSettings(Section):
    """Connection and client options shared by every Kafka client streamscore creates."""

    bootstrap_servers: str = "127.0.0.1:9092"
    session_timeout_ms: int = Field(10_000, gt=0)
    heartbeat_interval_ms: int = Field(3_000, gt=0)
    max_poll_interval_ms: int = Field(300_000, gt=0)
    linger_ms: int = Field(5, ge=0)
    client: ClientProperties = Field(default_factory=dict)
    consumer: ClientProperties = Field(default_factory=dict)
    producer: ClientProperties = Field(default_factory=dict)
    security: SecuritySettings = Field(default_factory=SecuritySettings)

    @field_validator("bootstrap_servers")
    @classmethod
    def _validate_bootstrap_servers(cls, value: str) -> str:
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port...], got {value!r}")
        return value


class TopicSettings(Section):
    """Names of the topics the worker reads and writes, and how topics are created."""

    input: str = "events"
    output: str = "predictions"
    dead_letter: str = "events.dead-letter"
    partitions: int = Field(4, ge=1)
    replication_factor: int = Field(1, ge=1)


class WorkerSettings(Section):
    """Consumer group membership, micro-batching, delivery guarantee and shutdown of the worker.

    `processing_guarantee` is `at_least_once` (results may repeat after a crash) or
    `exactly_once` (results and input offsets are committed in one Kafka transaction).
    `transactional_id` names the worker's transactional producer. When unset, each worker
    claims `GROUP-HOST-N` with the lowest N that no other live worker on this host has claimed,
    so a restarted worker takes over (and fences) its predecessor's id.
    """

    group_id: str = "streamscore"
    processing_guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"
    transactional_id: str | None = None
    batch_size: int = Field(2_000, ge=1, le=100_000)
    batch_wait_ms: int = Field(100, ge=0)
    max_event_bytes: int = Field(100_000, ge=1)
    flush_timeout_s: float = Field(30.0, gt=0, allow_inf_nan=False)
    retry_backoff_s: float = Field(1.0, gt=0, allow_inf_nan=False)
    retry_backoff_max_s: float = Field(30.0, gt=0, allow_inf_nan=False)
    shutdown_timeout_s: float = Field(60.0, gt=0, allow_inf_nan=False)

    @field_validator("transactional_id")
    @classmethod
    def _validate_transactional_id(cls, value: str | None) -> str | None:
        if value is not None and (not value or any(c.isspace() for c in value)):
            raise ValueError(
                f"expected an id without spaces, or null for GROUP-HOST-N, got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _validate_backoff(self) -> WorkerSettings:
        if self.retry_backoff_max_s < self.retry_backoff_s:
            raise ValueError(
                f"retry_backoff_max_s ({self.retry_backoff_max_s:g}) is less than "
                f"retry_backoff_s ({self.retry_backoff_s:g})"
            )
        return self


class ModelSettings(Section):
    """Registered model the worker serves, its MLflow registry, reload and shadow settings."""

    uri: str = "models:/sms-spam@champion"
    tracking_uri: str = "sqlite:///.streamscore/mlflow.db"
    refresh_interval_s: float = Field(30.0, ge=0)
    shadow_uri: str | None = None

    @field_validator("uri", "shadow_uri")
    @classmethod
    def _validate_uri(cls, value: str | None) -> str | None:
        if value is not None and not _MODEL_URI.fullmatch(value):
            raise ValueError(f"expected models:/NAME@ALIAS or models:/NAME/VERSION, got {value!r}")
        return value


class MetricsSettings(Section):
    """The HTTP endpoint that serves Prometheus metrics, /healthz and /readyz."""

    host: str = "127.0.0.1"
    port: int = Field(9400, ge=0, le=65_535)


class DriftSettings(Section):
    """Feature drift of live events against the baseline the trainer saved with the model."""

    window_events: int = Field(5_000, ge=10)
    min_events: int = Field(500, ge=1)
    interval_s: float = Field(30.0, ge=0)
    psi_threshold: float = Field(0.2, gt=0)

    @model_validator(mode="after")
    def _validate_min_events(self) -> DriftSettings:
        if self.min_events > self.window_events:
            raise ValueError(
                f"min_events ({self.min_events}) must not exceed window_events "
                f"({self.window_events})"
            )
        return self


# Held-out metrics that the trainer computes, and that the quality gate can set minimums for.
Metric = Literal["precision", "recall", "f1", "accuracy", "roc_auc"]
MetricMinimum = Annotated[float, Field(ge=0, le=1)]


def _default_minimums() -> dict[Metric, float]:
    return {"f1": 0.8}


class TrainingSettings(Section):
    """Data, pipeline kind, parameters and quality gate of the model that `train` registers.

    The `text` pipeline counts the words of `text_column`. The `tabular` pipeline scales
    `numeric_columns` and one-hot encodes `categorical_columns`. Both end in a random forest.
    """

    data_path: Path = Path("data/sms_spam_collection.tsv")
    columns: list[str] | None = Field(default_factory=lambda: ["label", "message"])
    pipeline: Literal["text", "tabular"] = "text"
    text_column: str = "message"
    numeric_columns: list[str] = Field(default_factory=list)
    categorical_columns: list[str] = Field(default_factory=list)
    label_column: str = "label"
    positive_label: str = "spam"
    experiment: str = "sms-spam"
    registered_model: str = "sms-spam"
    alias: str = "champion"
    max_features: int = Field(5000, ge=1)
    n_estimators: int = Field(42, ge=1)
    max_depth: int | None = Field(35, ge=1)
    test_size: float = Field(0.2, gt=0, lt=1)
    random_state: int = 111
    min_metrics: dict[Metric, MetricMinimum] = Field(default_factory=lambda: _default_minimums())
    gate_metric: Metric = "f1"

    @model_validator(mode="after")
    def _validate_feature_columns(self) -> TrainingSettings:
        features = self.feature_columns
        if not features:
            raise ValueError(
                "the tabular pipeline needs numeric_columns or categorical_columns, got neither"
            )
        repeated = sorted({name for name in features if features.count(name) > 1})
        if repeated:
            raise ValueError(f"column {repeated[0]!r} is named twice among the feature columns")
        if self.label_column in features:
            raise ValueError(f"label column {self.label_column!r} is also a feature column")
        return self

    @property
    def feature_columns(self) -> list[str]:
        """Columns the model reads, in the order of its signature."""
        if self.pipeline == "text":
            return [self.text_column]
        return [*self.numeric_columns, *self.categorical_columns]


LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class LoggingSettings(Section):
    """Log level and format of every command, and levels of single loggers."""

    level: LogLevel = "INFO"
    format: Literal["text", "json"] = "text"
    # Logger name to level, e.g. {"stream.worker": "DEBUG", "streamscore.librdkafka": "ERROR"}.
    loggers: dict[str, LogLevel] = Field(default_factory=dict)

    @field_validator("level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return _upper(value)

    @field_validator("loggers", mode="before")
    @classmethod
    def _upper_logger_levels(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {name: _upper(level) for name, level in value.items()}


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


class Settings(BaseSettings):
    """All streamscore settings. Load them with `load_settings`, once, in an entry point."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    state_dir: Path = Path(".streamscore")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    drift: DriftSettings = Field(default_factory=DriftSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Order the sources: caller values, then environment, then the YAML file."""
        return init_settings, env_settings, _YamlFileSource(settings_cls, _config_data.get() or {})


# The YAML mapping being loaded; `load_settings` sets it for the duration of one construction.
_config_data: ContextVar[dict[str, Any] | None] = ContextVar("_config_data", default=None)


class _YamlFileSource(PydanticBaseSettingsSource):
    """Settings source that returns an already parsed YAML mapping."""

    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe YAML loader that rejects a mapping with the same key twice."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                line = key_node.start_mark.line + 1
                raise ConfigError(f"duplicate key {key!r} at line {line}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a YAML config file into a mapping.

    Raises:
        ConfigError: the file is missing, is not valid YAML, repeats a key or is not a mapping.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: malformed YAML{line}: {problem}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    return data


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Load settings from a YAML file, the environment and caller overrides.

    Args:
        config_file: the YAML file; default `$STREAMSCORE_CONFIG`, else `config/default.yaml`
            beside the package when it exists, else the built-in defaults alone.
        overrides: top-level sections or values, highest precedence (CLI flags).

    Raises:
        ConfigError: one line per invalid key, naming the key and the problem.
    """
    path = config_file or _default_config_file()
    data = read_config_file(path) if path is not None else {}
    token = _config_data.set(data)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError("\n".join(_describe(error) for error in exc.errors())) from exc
    except SettingsError as exc:
        # pydantic-settings reads lists and mappings from environment variables as JSON only.
        raise ConfigError(
            f"{exc}: a list or mapping in an environment variable must be JSON, "
            f'e.g. {ENV_PREFIX}TRAINING__COLUMNS=\'["label", "message"]\''
        ) from exc
    finally:
        _config_data.reset(token)


def _default_config_file() -> Path | None:
    from_env = os.environ.get(ENV_CONFIG_FILE)
    if from_env:
        return Path(from_env)
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def _describe(error: Any) -> str:
    """Format one pydantic error as `key: problem (got VALUE)`, naming the env var if one set it."""
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        message = f"{key}: unknown setting"
    elif error["type"] == "value_error":
        # Our own validators already name the value they reject.
        message = f"{key}: {error['msg'].removeprefix('Value error, ')}"
    elif _is_secret(error["loc"]):
        message = f"{key}: {error['msg']} (value hidden)"
    else:
        message = f"{key}: {error['msg']} (got {error.get('input')!r})"
    env_name = ENV_PREFIX + "__".join(str(part) for part in error["loc"]).upper()
    if env_name in os.environ:
        message += f" (from environment variable {env_name})"
        if error["type"] in ("list_type", "dict_type"):
            message += "; a list or mapping in an environment variable must be JSON"
    return message


def _is_secret(location: tuple[Any, ...]) -> bool:
    """Return whether an error is about a password, whose value must not be printed."""
    return any(str(part).endswith("password") for part in location)
