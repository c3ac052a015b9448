"""The kafka.security section: validation, environment secrets and librdkafka properties."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamscore.errors import ConfigError
from streamscore.kafka import consumer_config, producer_config, security_properties
from streamscore.settings import SecuritySettings, load_settings

PASSWORD = "s3cret-Pa55word"  # noqa: S105 - a test value


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_security_default_is_plaintext() -> None:
    properties = security_properties(SecuritySettings())

    assert properties == {"security.protocol": "PLAINTEXT"}


def test_security_sasl_password_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(
        tmp_path,
        "kafka:\n  security:\n    protocol: SASL_SSL\n    sasl_mechanism: SCRAM-SHA-512\n"
        "    sasl_username: scorer\n",
    )
    monkeypatch.setenv("STREAMSCORE_KAFKA__SECURITY__SASL_PASSWORD", PASSWORD)

    settings = load_settings(path)

    properties = security_properties(settings.kafka.security)
    assert properties == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "scorer",
        "sasl.password": PASSWORD,
    }
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings.model_dump())


def test_security_reaches_every_client() -> None:
    security = SecuritySettings(
        protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="scorer",
        sasl_password=PASSWORD,
    )
    settings = load_settings(None, kafka={"security": security})

    for config in (
        consumer_config(settings.kafka, "group"),
        producer_config(settings.kafka),
    ):
        assert config["security.protocol"] == "SASL_PLAINTEXT"
        assert config["sasl.password"] == PASSWORD


@pytest.mark.parametrize("missing", ["sasl_mechanism", "sasl_username", "sasl_password"])
def test_security_sasl_without_credential_names_key(tmp_path: Path, missing: str) -> None:
    values = {"sasl_mechanism": "PLAIN", "sasl_username": "scorer", "sasl_password": PASSWORD}
    del values[missing]
    lines = "".join(f"    {key}: {value}\n" for key, value in values.items())
    path = _write(tmp_path, f"kafka:\n  security:\n    protocol: SASL_SSL\n{lines}")

    with pytest.raises(ConfigError, match=rf"kafka.security: {missing} is required") as caught:
        load_settings(path)

    assert PASSWORD not in str(caught.value)


def test_security_sasl_with_plaintext_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, "kafka:\n  security:\n    sasl_username: scorer\n")

    with pytest.raises(ConfigError, match="sasl_username is set but protocol is PLAINTEXT"):
        load_settings(path)


def test_security_unknown_mechanism_rejected(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "kafka:\n  security:\n    protocol: SASL_SSL\n    sasl_mechanism: GSSAPI\n",
    )

    with pytest.raises(ConfigError, match="kafka.security.sasl_mechanism.*'GSSAPI'"):
        load_settings(path)


def test_security_invalid_password_value_hidden(tmp_path: Path) -> None:
    path = _write(tmp_path, "kafka:\n  security:\n    sasl_password: [4711, 815]\n")

    with pytest.raises(ConfigError, match=r"sasl_password.*\(value hidden\)") as caught:
        load_settings(path)

    assert "4711" not in str(caught.value)


def test_security_certificate_without_key_rejected(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "kafka:\n  security:\n    protocol: SSL\n    ssl_certificate_location: client.pem\n",
    )

    with pytest.raises(ConfigError, match="ssl_certificate_location and ssl_key_location"):
        load_settings(path)


def test_security_missing_ca_file_names_key(tmp_path: Path) -> None:
    security = SecuritySettings(protocol="SSL", ssl_ca_location=tmp_path / "absent-ca.pem")

    with pytest.raises(ConfigError, match="kafka.security.ssl_ca_location: file .*absent-ca.pem"):
        security_properties(security)


def test_security_ssl_files_mapped(tmp_path: Path) -> None:
    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / name).write_text("-----BEGIN-----\n", encoding="utf-8")
    security = SecuritySettings(
        protocol="SSL",
        ssl_ca_location=tmp_path / "ca.pem",
        ssl_certificate_location=tmp_path / "client.pem",
        ssl_key_location=tmp_path / "client.key",
        ssl_key_password=PASSWORD,
    )

    properties = security_properties(security)

    assert properties["ssl.ca.location"] == str(tmp_path / "ca.pem")
    assert properties["ssl.certificate.location"] == str(tmp_path / "client.pem")
    assert properties["ssl.key.location"] == str(tmp_path / "client.key")
    assert properties["ssl.key.password"] == PASSWORD
