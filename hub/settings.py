"""Runtime settings from the environment (``HUB_*``) and an optional TOML file (``HUB_CONFIG``)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUB_", extra="ignore")

    broker: str = Field(default="localhost:19092", description="Kafka bootstrap servers")
    partitions: int = Field(default=8, ge=1, le=1024)
    replication_factor: int = Field(default=1, ge=1)
    # min.insync.replicas of the topics the hub creates; None = the broker's default. On a
    # replicated cluster 2 with RF 3: an acks=all write survives the loss of any one broker,
    # and the cluster refuses writes (producers retry) rather than accept them on one copy.
    min_insync_replicas: int | None = Field(default=None, ge=1)
    # Faust standby replicas of the tables (warm copies on other workers; faster failover).
    # Keep 0: faust-streaming's standby copies can miss changelog records (stop 38)
    standby_replicas: int = Field(default=0, ge=0)
    # a starting worker reads the tables' changelogs into RocksDB in bulk before Faust's own
    # (per-message) recovery, which then has ~nothing left (hub.pipeline.prerestore)
    pre_restore: bool = True
    topic_prefix: str = Field(default="hub.", description="prefix of every topic the hub owns")
    data_dir: Path = Field(default=PROJECT_ROOT / ".local" / "data")
    rules_config: Path | None = Field(
        default=None, description="TOML rules config; default built in"
    )
    reference_config: Path | None = Field(default=None, description="municipalities/steering TOML")
    schema_registry_url: str | None = None
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    web_port: int = Field(default=6066, ge=0, le=65535)
    log_json: bool = False
    log_level: str = "INFO"
    app_id: str = "hub"
    # Plausibility of CaseEvent.occurred_at (docs/contracts.md): a typo such as 2204 would
    # otherwise freeze a case, because later corrections carry an earlier occurred_at.
    occurred_at_floor: AwareDatetime = Field(
        default=datetime(2012, 1, 1, tzinfo=UTC),
        description="earliest accepted occurred_at (default: the Huizinge quake, 2012-01-01Z)",
    )
    occurred_at_max_future: timedelta = Field(
        default=timedelta(days=1),
        ge=timedelta(0),
        description="how far occurred_at may lie ahead of the hub's clock (seconds or ISO 8601)",
    )
    # Client security (issue 15, docs/security.md): one set for both client libraries, rendered
    # by hub.security. The password never appears in repr, logs or `hub status` (SecretStr).
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = Field(default=None, description="or sasl_password_file")
    sasl_password_file: Path | None = Field(default=None, description="file holding the password")
    ssl_ca_file: Path | None = Field(default=None, description="PEM CA that signed the broker")
    # Inbound: one topic per agency (case-events.<source>, source bound to the principal that
    # may write it) and the shared case-events topic for trusted internal producers (HTTP
    # ingress, simulator); an operator with only agency producers may switch the shared one off.
    shared_inbound: bool = Field(default=True, description="also consume the shared case-events")
    # Privacy (issue 15): false = published dossier/alert records carry the contact's role and
    # agency but no name, phone or e-mail (hub.contracts.privacy), for routing-only readers.
    publish_contact_details: bool = True
    # Format the ingest stage writes on hub.normalised (hub.pipeline.batches): 2 (rows); 1 while
    # a rolling upgrade still runs workers of a release that reads only format 1.
    batch_format: Literal[1, 2] = 2
    # test-only fault hook: the correlate step raises on its first N calls (fault suite)
    fault_correlate_errors: int = Field(default=0, ge=0)

    # local broker (hub kafka start)
    kafka_home: Path = Field(default=PROJECT_ROOT / ".local" / "kafka")
    kafka_heap: str = "512m"
    # local three-node cluster (hub kafka start --brokers 3): its own home and ports, node i
    # (1-based) at kafka_cluster_port + i - 1, its controller listener 100 above
    kafka_cluster_home: Path = Field(default=PROJECT_ROOT / ".local" / "kafka-cluster")
    kafka_cluster_port: int = Field(default=19292, ge=1024, le=65000)
    kafka_cluster_heap: str = "384m"

    @model_validator(mode="after")
    def _min_isr_within_replicas(self) -> Settings:
        if self.min_insync_replicas is not None and (
            self.min_insync_replicas > self.replication_factor
        ):
            raise ValueError(
                f"min_insync_replicas ({self.min_insync_replicas}) exceeds replication_factor "
                f"({self.replication_factor}): no write could ever be acknowledged"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Precedence: arguments, then ``HUB_*`` variables, then the TOML file in HUB_CONFIG."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = os.environ.get("HUB_CONFIG")
        if toml_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml_file)))
        return tuple(sources)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
