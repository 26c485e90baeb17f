"""The embedded broker with a SASL_SSL listener (SCRAM-SHA-512), ACLs enforced (issue 15).

What :class:`SecureLocalKafka` adds to :class:`~tools.local_kafka.LocalKafka`:

- a throw-away CA and a broker certificate for ``localhost``/``127.0.0.1`` (Python
  ``cryptography``; nothing fetched), PEM files under ``<home>/tls``;
- one random password per principal under ``<home>/credentials/<name>.password`` (mode 0600),
  kept across restarts; SCRAM-SHA-512 credentials for all of them written at format time
  (``kafka-storage format --add-scram``);
- ``server.properties`` with the client listener ``SASL_SSL`` and the KRaft controller listener
  on ``SASL_PLAINTEXT``/PLAIN (KRaft controllers cannot use SCRAM: the SCRAM credentials live in
  the metadata log they serve), ``StandardAuthorizer``, ``allow.everyone.if.no.acl.found=false``
  and super users = the broker and the admin principal. Nothing listens in PLAINTEXT.

Its own home (default ``.local/kafka-secure``) and ports (default ``localhost:19392``,
controller 19393): it never touches the shared plaintext broker.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.settings import PROJECT_ROOT, Settings
from tools.local_kafka import BrokerStatus, KafkaError, LocalKafka

SECURE_HOME = PROJECT_ROOT / ".local" / "kafka-secure"
DEFAULT_SECURE_BROKER = "localhost:19392"
SHARED_LIBS = PROJECT_ROOT / ".local" / "kafka" / "libs"
ACL_FILE = PROJECT_ROOT / "deploy" / "kafka" / "acl.toml"
BROKER_USER = "broker"
ADMIN_USER = "admin"
MECHANISM = "SCRAM-SHA-512"
TLS_HOSTS = ("localhost", "127.0.0.1")


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # the CA certificate clients trust (HUB_SSL_CA_FILE)
    keystore: Path  # broker key (PKCS#8) + certificate chain, Kafka's PEM keystore


def generate_tls(directory: Path, hosts: tuple[str, ...] = TLS_HOSTS) -> TlsFiles:
    """A CA and a broker certificate signed by it (kept if both files exist already)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    files = TlsFiles(directory / "ca.pem", directory / "broker-keystore.pem")
    if files.ca.is_file() and files.keystore.is_file():
        return files
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hub local test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_private(files.keystore, key_pem + cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    files.ca.write_bytes(ca_cert.public_bytes(pem))
    return files


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def principals_in(acl_file: Path = ACL_FILE) -> list[str]:
    """The principal names an ACL file describes (plus broker and admin, always)."""
    data = tomllib.loads(acl_file.read_text(encoding="utf-8"))
    names = [BROKER_USER, ADMIN_USER, *data.get("principals", {})]
    return list(dict.fromkeys(names))


def ensure_passwords(directory: Path, users: list[str]) -> dict[str, Path]:
    """One random password file per user (0600), created once and reused."""
    files = {}
    for user in users:
        path = directory / f"{user}.password"
        if not path.is_file():
            _write_private(path, secrets.token_urlsafe(24).encode())
        files[user] = path
    return files


def _jaas_value(text: str) -> str:
    if '"' in text or "\\" in text:
        raise KafkaError("generated credentials must not contain quotes")
    return text


class SecureLocalKafka(LocalKafka):
    """A :class:`LocalKafka` whose only client listener is SASL_SSL with ACLs enforced."""

    def __init__(self, settings: Settings, users: list[str] | None = None) -> None:
        super().__init__(settings)
        self.tls_dir = self.home / "tls"
        self.credentials_dir = self.home / "credentials"
        self.users = users if users is not None else principals_in()

    # -- what clients need -------------------------------------------------------------
    def password_file(self, user: str) -> Path:
        return self.credentials_dir / f"{user}.password"

    def client_settings(self, user: str, **overrides: Any) -> Settings:
        """Settings for ``user`` against this broker (password from its file)."""
        values: dict[str, Any] = {
            "broker": self.settings.broker,
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": MECHANISM,
            "sasl_username": user,
            "sasl_password_file": self.password_file(user),
            "ssl_ca_file": self.tls_dir / "ca.pem",
            "kafka_home": self.home,
        }
        values.update(overrides)
        return Settings(**values)

    def client_env(self, user: str) -> dict[str, str]:
        """``HUB_*`` variables for a ``hub`` process running as ``user``."""
        return {
            "HUB_BROKER": self.settings.broker,
            "HUB_SECURITY_PROTOCOL": "SASL_SSL",
            "HUB_SASL_MECHANISM": MECHANISM,
            "HUB_SASL_USERNAME": user,
            "HUB_SASL_PASSWORD_FILE": str(self.password_file(user)),
            "HUB_SSL_CA_FILE": str(self.tls_dir / "ca.pem"),
        }

    def client_security(self) -> dict[str, Any]:
        """The admin principal's librdkafka settings (status probes)."""
        from hub.security import confluent_security

        return confluent_security(self.client_settings(ADMIN_USER))

    # -- lifecycle ---------------------------------------------------------------------
    def prepare(self) -> None:
        """Jars (symlinked from the default home), certificates and passwords."""
        self.home.mkdir(parents=True, exist_ok=True)
        libs = self.home / "libs"
        if not libs.exists() and not libs.is_symlink():
            if not SHARED_LIBS.is_dir():
                raise KafkaError(f"no Kafka jars in {SHARED_LIBS}: run `make kafka-libs` first")
            libs.symlink_to(os.path.relpath(SHARED_LIBS, self.home))
        generate_tls(self.tls_dir, tuple(dict.fromkeys((self.host, *TLS_HOSTS))))
        ensure_passwords(self.credentials_dir, self.users)

    def status(self, timeout: float = 5.0) -> BrokerStatus:
        """Not reachable while this home has no CA or admin password yet (never started here):
        a secure client cannot even be configured, let alone talk to whatever holds the port."""
        if not (self.tls_dir / "ca.pem").is_file() or not self.password_file(ADMIN_USER).is_file():
            return BrokerStatus(self.settings.broker, False, None, None, 0, 0, self.managed_pid())
        return super().status(timeout)

    def start(self, wait_s: float = 90.0) -> Any:
        self.prepare()
        status = super().start(wait_s=wait_s)
        if status.reachable:
            self.ensure_scram_users()
        return status

    def ensure_scram_users(self, timeout: float = 30.0) -> None:
        """SCRAM credentials for every principal (a principal added to the ACL file after the
        first start gets one here; existing ones are rewritten with the same password)."""
        from confluent_kafka.admin import (
            AdminClient,
            ScramCredentialInfo,
            ScramMechanism,
            UserScramCredentialAlteration,
            UserScramCredentialUpsertion,
        )

        admin = AdminClient({"bootstrap.servers": self.settings.broker, **self.client_security()})
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192)
        upserts: list[UserScramCredentialAlteration] = [
            UserScramCredentialUpsertion(user, info, self._password(user).encode())
            for user in self.users
            if user != BROKER_USER  # the broker's own login must never change under it
        ]
        for future in admin.alter_user_scram_credentials(upserts).values():
            future.result(timeout)

    def _password(self, user: str) -> str:
        return _jaas_value(self.password_file(user).read_text(encoding="utf-8").strip())

    def _render_properties(self) -> None:
        self.properties.write_text(render_secure_properties(self))
        os.chmod(self.properties, 0o600)  # holds the broker's own password

    def _format_extra_args(self) -> list[str]:
        """``--add-scram`` for every principal: SCRAM credentials exist from the first start."""
        scram = []
        for user in self.users:
            scram += ["--add-scram", f"{MECHANISM}=[name={user},password={self._password(user)}]"]
        return scram

    def _format_storage(self, java: str) -> None:
        try:
            super()._format_storage(java)
        except KafkaError as exc:  # its stderr may quote the arguments: no password leaves
            message = str(exc)
            for user in self.users:
                message = message.replace(self._password(user), "**********")
            raise KafkaError(message) from None


def render_secure_properties(kafka: SecureLocalKafka) -> str:
    broker_password = kafka._password(BROKER_USER)
    tls = TlsFiles(kafka.tls_dir / "ca.pem", kafka.tls_dir / "broker-keystore.pem")
    host, port, cport = kafka.host, kafka.port, kafka.port + 1
    scram_jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{BROKER_USER}" password="{broker_password}";'
    )
    plain_jaas = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="{BROKER_USER}" password="{broker_password}" '
        f'user_{BROKER_USER}="{broker_password}";'
    )
    lines = [
        "# Rendered by tools/local_kafka_secure.py: SASL_SSL (SCRAM-SHA-512) + ACLs (issue 15).",
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.bootstrap.servers={host}:{cport}",
        f"listeners=SASL_SSL://{host}:{port},CONTROLLER://{host}:{cport}",
        f"advertised.listeners=SASL_SSL://{host}:{port}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=SASL_SSL",
        "listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
        # client listener: SCRAM-SHA-512 over TLS
        f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
        f"listener.name.sasl_ssl.sasl.enabled.mechanisms={MECHANISM}",
        f"listener.name.sasl_ssl.{MECHANISM.lower()}.sasl.jaas.config={scram_jaas}",
        # controller listener: PLAIN, the broker's own account only
        "sasl.mechanism.controller.protocol=PLAIN",
        "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
        f"listener.name.controller.plain.sasl.jaas.config={plain_jaas}",
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={tls.keystore}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={tls.ca}",
        "ssl.client.auth=none",
        # authorisation
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found=false",
        f"super.users=User:{BROKER_USER};User:{ADMIN_USER}",
        f"log.dirs={kafka.data_dir}",
        "num.partitions=1",
        "auto.create.topics.enable=false",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=8",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "transaction.state.log.num.partitions=8",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        "log.retention.hours=168",
        "num.network.threads=2",
        "num.io.threads=4",
    ]
    return "\n".join(lines) + "\n"


def secure_settings(base: Settings | None = None, address: str | None = None) -> Settings:
    """Settings of the local secure broker: its own home and address (HUB_SECURE_BROKER)."""
    base = base or Settings()
    return base.model_copy(
        update={
            "broker": address or os.environ.get("HUB_SECURE_BROKER", DEFAULT_SECURE_BROKER),
            "kafka_home": SECURE_HOME,
        }
    )
