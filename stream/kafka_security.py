"""Kafka client security (TLS, SASL) read from the environment and handed to every client:
Faust, aiokafka and kafka-python each take it in their own form."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from stream.envvars import SettingsError, choice, env_optional, from_environ, setting


@dataclass(frozen=True)
class KafkaSecurity:
    """Kafka client security from ``KAFKA_SECURITY_PROTOCOL`` (``PLAINTEXT``, ``SSL``,
    ``SASL_PLAINTEXT``, ``SASL_SSL``), ``KAFKA_SASL_MECHANISM`` (``PLAIN``,
    ``SCRAM-SHA-256``, ``SCRAM-SHA-512``), ``KAFKA_SASL_USERNAME`` / ``KAFKA_SASL_PASSWORD``
    and ``KAFKA_SSL_CAFILE`` / ``KAFKA_SSL_CERTFILE`` / ``KAFKA_SSL_KEYFILE``; passed to every
    client (Faust, aiokafka, kafka-python). The password never appears in a repr or a log.

    >>> sec = KafkaSecurity(protocol="SASL_SSL", sasl_username="u", sasl_password="secret")
    >>> "secret" in repr(sec), sec.kafka_python()["sasl_plain_password"]
    (False, 'secret')
    >>> KafkaSecurity(protocol="SASL_PLAINTEXT", sasl_username="u")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    stream.envvars.SettingsError: KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT needs ...
    """

    protocol: str = setting(
        "KAFKA_SECURITY_PROTOCOL",
        "PLAINTEXT",
        "`SSL`, `SASL_PLAINTEXT`, `SASL_SSL`: passed to every Kafka client",
        parse=choice("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
    )
    sasl_mechanism: str = setting(
        "KAFKA_SASL_MECHANISM",
        "PLAIN",
        "SASL PLAIN or SCRAM-SHA-256/512",
        parse=choice("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
    )
    sasl_username: str | None = env_optional("KAFKA_SASL_USERNAME", "SASL user name")
    sasl_password: str | None = env_optional(
        "KAFKA_SASL_PASSWORD", "SASL password (never in a repr or a log)", repr=False
    )
    ssl_cafile: str | None = env_optional(
        "KAFKA_SSL_CAFILE", "CA certificates the broker's is checked against"
    )
    ssl_certfile: str | None = env_optional("KAFKA_SSL_CERTFILE", "client certificate (mutual TLS)")
    ssl_keyfile: str | None = env_optional("KAFKA_SSL_KEYFILE", "client certificate's private key")

    def __post_init__(self) -> None:
        if self.uses_sasl and not (self.sasl_username and self.sasl_password):
            raise SettingsError(
                f"KAFKA_SECURITY_PROTOCOL={self.protocol} needs KAFKA_SASL_USERNAME and "
                "KAFKA_SASL_PASSWORD"
            )
        if self.ssl_keyfile and not self.ssl_certfile:
            raise SettingsError("KAFKA_SSL_KEYFILE needs KAFKA_SSL_CERTFILE, the certificate")
        for var, path in (
            ("KAFKA_SSL_CAFILE", self.ssl_cafile),
            ("KAFKA_SSL_CERTFILE", self.ssl_certfile),
            ("KAFKA_SSL_KEYFILE", self.ssl_keyfile),
        ):
            if path and not Path(path).is_file():
                raise SettingsError(f"{var}: no such file: {path}")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> KafkaSecurity:
        return from_environ(cls, env)

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL")

    @property
    def uses_ssl(self) -> bool:
        return self.protocol.endswith("SSL")

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ssl_cafile)
        if self.ssl_certfile:
            ctx.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        return ctx

    def _sasl(self) -> dict:
        out: dict = {"security_protocol": self.protocol}
        if self.uses_sasl:
            out.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password,
            )
        return out

    def kafka_python(self) -> dict:
        """Options for kafka-python's producers, consumers and admin client."""
        return self._client_options(
            lambda: {
                "ssl_cafile": self.ssl_cafile,
                "ssl_certfile": self.ssl_certfile,
                "ssl_keyfile": self.ssl_keyfile,
            }
        )

    def aiokafka(self) -> dict:
        """Options for aiokafka clients (TLS as an ``ssl_context``)."""
        return self._client_options(lambda: {"ssl_context": self.ssl_context()})

    def _client_options(self, tls: Callable[[], dict]) -> dict:
        if self.protocol == "PLAINTEXT":
            return {}
        out = self._sasl()
        if self.uses_ssl:
            out.update(tls())
        return out

    def faust_credentials(self):
        """``broker_credentials`` for the Faust app (None for plaintext)."""
        import faust

        if self.uses_sasl:
            return faust.SASLCredentials(
                username=self.sasl_username,
                password=self.sasl_password,
                mechanism=self.sasl_mechanism,
                ssl_context=self.ssl_context() if self.uses_ssl else None,
            )
        if self.uses_ssl:
            return faust.SSLCredentials(self.ssl_context())
        return None
