"""A fast, one-shot check of a broker's TLS and SASL, before any client starts retrying.

Kafka clients treat an untrusted certificate or a wrong password like a broker that is not up
yet: they retry until a timeout and then report "unable to bootstrap". ``check_security``
opens one connection, does the TLS handshake and the SASL exchange itself (SaslHandshake v1,
SaslAuthenticate v0) and says in one line which of the two failed.
"""

from __future__ import annotations

import socket
import ssl
import struct

from stream.kafka_security import KafkaSecurity

_SASL_HANDSHAKE, _SASL_AUTHENTICATE = 17, 36
_CLIENT_ID = b"interest-tracker-check"


class SecurityCheckFailed(RuntimeError):
    """The broker refused the TLS handshake or the SASL credentials (a one-line reason).

    A listener on this machine that takes the connection and never answers (not Kafka, or
    not SASL) fails the SASL exchange:

    >>> silent = socket.create_server(("127.0.0.1", 0))
    >>> sasl = KafkaSecurity(protocol="SASL_PLAINTEXT", sasl_username="u", sasl_password="p")
    >>> check_security(sasl, "127.0.0.1", silent.getsockname()[1], timeout=0.05)
    Traceback (most recent call last):
    ...
    stream.brokercheck.SecurityCheckFailed: SASL exchange with 127.0.0.1:... failed: timed out ...
    >>> silent.close()
    """


def _sasl_mechanism(security: KafkaSecurity, host: str):
    try:
        from kafka.net.sasl import get_sasl_mechanism  # kafka-python 3
    except ImportError:  # kafka-python 2.2
        from kafka.sasl import get_sasl_mechanism
    return get_sasl_mechanism(security.sasl_mechanism)(
        host=host,
        security_protocol=security.protocol,
        sasl_mechanism=security.sasl_mechanism,
        sasl_plain_username=security.sasl_username,
        sasl_plain_password=security.sasl_password,
    )


class _Wire:
    """Length-prefixed Kafka request/response frames over one socket."""

    def __init__(self, sock: socket.socket):
        self.sock, self.correlation = sock, 0

    def request(self, api_key: int, version: int, body: bytes) -> bytes:
        self.correlation += 1
        header = struct.pack(">hhih", api_key, version, self.correlation, len(_CLIENT_ID))
        frame = header + _CLIENT_ID + body
        self.sock.sendall(struct.pack(">i", len(frame)) + frame)
        (size,) = struct.unpack(">i", self._read(4))
        return self._read(size)[4:]  # past the correlation id

    def _read(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("the broker closed the connection")
            out += chunk
        return out


def _authenticate(wire: _Wire, security: KafkaSecurity, host: str, where: str) -> None:
    mech = security.sasl_mechanism.encode()
    resp = wire.request(_SASL_HANDSHAKE, 1, struct.pack(">h", len(mech)) + mech)
    (error,) = struct.unpack(">h", resp[:2])
    if error:
        raise SecurityCheckFailed(
            f"the broker at {where} does not accept SASL mechanism {security.sasl_mechanism} "
            f"(KAFKA_SASL_MECHANISM; error code {error})"
        )
    mechanism = _sasl_mechanism(security, host)
    while not mechanism.is_done():
        token = mechanism.auth_bytes()
        resp = wire.request(_SASL_AUTHENTICATE, 0, struct.pack(">i", len(token)) + token)
        error, msg_len = struct.unpack(">hh", resp[:4])
        message = resp[4 : 4 + msg_len].decode(errors="replace") if msg_len > 0 else ""
        if error:
            raise SecurityCheckFailed(
                f"SASL authentication as {security.sasl_username!r} failed at {where}: "
                f"{message or 'error code ' + str(error)} "
                "(check KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD)"
            )
        rest = resp[4 + max(msg_len, 0) :]
        (n,) = struct.unpack(">i", rest[:4])
        mechanism.receive(rest[4 : 4 + max(n, 0)])
    if not mechanism.is_authenticated():
        raise SecurityCheckFailed(f"SASL authentication failed at {where}")


def check_security(security: KafkaSecurity, host: str, port: int, timeout: float = 5.0) -> None:
    """Raise ``SecurityCheckFailed`` if TLS or SASL to ``host:port`` fails; no-op for plaintext.

    >>> check_security(KafkaSecurity(), "127.0.0.1", 9)  # PLAINTEXT: nothing to check
    """
    if security.protocol == "PLAINTEXT":
        return
    where = f"{host}:{port}"
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        if security.uses_ssl:
            try:
                sock = security.ssl_context().wrap_socket(sock, server_hostname=host)
            except ssl.SSLCertVerificationError as exc:
                raise SecurityCheckFailed(
                    f"TLS: the broker's certificate at {where} is not trusted: "
                    f"{exc.verify_message} (KAFKA_SSL_CAFILE={security.ssl_cafile})"
                ) from None
            except (ssl.SSLError, OSError) as exc:
                raise SecurityCheckFailed(f"TLS handshake with {where} failed: {exc}") from None
        if security.uses_sasl:
            try:
                _authenticate(_Wire(sock), security, host, where)
            except (OSError, struct.error) as exc:
                raise SecurityCheckFailed(
                    f"SASL exchange with {where} failed: {exc} "
                    f"(is the listener {security.protocol}?)"
                ) from None
    finally:
        sock.close()
