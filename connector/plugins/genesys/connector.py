"""``GenesysNotificationsSourceConnector``: validation, connection checks and the channel plan.

The connector runs on the worker's main thread. It validates the plan offline (the topics fit
in the usable channels), checks the credentials and topic permissions online for
``connector validate --connect``, and splits the channels over the tasks. The channel budget of
an OAuth client is shared by every connector of the process (``plan.CHANNEL_BUDGET``): it is
reserved in :meth:`task_configs` and released in :meth:`stop`.
"""

from __future__ import annotations

import threading
from typing import Any, cast

from pydantic import BaseModel

from connector.api import (
    AvroSchema,
    ConfigError,
    ConfigIssue,
    ConnectorContext,
    ExactlyOnceSupport,
    SourceConnector,
    TaskConfig,
)
from connector.plugins.genesys import plan, schemas, topics
from connector.plugins.genesys.auth import AuthError, TokenProvider, TokenUnavailableError
from connector.plugins.genesys.channels import (
    ChannelApiError,
    ChannelApiUnavailableError,
    ChannelsClient,
)
from connector.plugins.genesys.spec import SPEC, GenesysNotificationsConfig
from connector.plugins.genesys.task import GenesysNotificationsSourceTask


class GenesysNotificationsSourceConnector(SourceConnector):
    """Genesys Cloud notifications -> Kafka (see ``task.py`` for the delivery guarantee)."""

    spec = SPEC
    task_class = GenesysNotificationsSourceTask

    def __init__(self) -> None:
        self._ctx: ConnectorContext | None = None
        self._config: GenesysNotificationsConfig | None = None
        self._client_key: plan.ClientKey | None = None

    # --- validation ----------------------------------------------------------------------------
    def validate(self, config: BaseModel) -> list[ConfigIssue]:
        """Offline: the topics must fit in the usable channels of the OAuth client."""
        model = cast(GenesysNotificationsConfig, config)
        issues: list[ConfigIssue] = []
        try:
            plan.make_plan(
                model.topics(),
                max_topics=model.channel_max_topics,
                usable_channels=model.usable_channels(),
                max_tasks=1,
            )
        except plan.PlanError as exc:
            issues.append(ConfigIssue("genesys.subscriptions", str(exc)))
        gaps_family = [
            family
            for family, topic in topics.Router(*model.routing()).table().items()
            if topic == model.gaps_topic
        ]
        if gaps_family:
            issues.append(
                ConfigIssue(
                    "gaps.topic",
                    f"Invalid value '{model.gaps_topic}' for gaps.topic: it is also the Kafka "
                    f"topic of family {gaps_family[0]}; gap records need their own topic",
                )
            )
        return issues

    def check_connection(self, config: BaseModel) -> list[ConfigIssue]:
        """Online: a token for the client, and the permissions the subscribed templates need.

        Uses ``GET /api/v2/notifications/availabletopics`` (one call) and reports templates the
        catalogue does not offer. Per-topic permission checks need a channel, which this check
        does not create (it would count against the 20-channel limit); rejected topics are
        reported at run time in the status (``rejected_topics``).
        """
        model = cast(GenesysNotificationsConfig, config)
        hosts = model.hosts()
        tokens = TokenProvider(
            hosts.login,
            model.genesys_client_id,
            model.genesys_client_secret,
            timeout_s=model.http_timeout_ms / 1000,
        )
        try:
            tokens.token()
        except AuthError as exc:
            return [ConfigIssue("genesys.client.id", str(exc))]
        except TokenUnavailableError as exc:
            return [ConfigIssue("genesys.login.url", f"cannot get a token: {exc}")]
        client = ChannelsClient(
            hosts.api,
            tokens,
            timeout_s=model.http_timeout_ms / 1000,
            max_attempts=2,
            stop=threading.Event(),
        )
        try:
            catalogue = client.available_topics(("requiresPermissions", "permissionDetails"))
        except (ChannelApiError, ChannelApiUnavailableError) as exc:
            return [ConfigIssue("genesys.api.url", f"cannot read available topics: {exc}")]
        finally:
            client.close()
        return catalogue_issues(model, catalogue)

    # --- delivery guarantee --------------------------------------------------------------------
    def exactly_once_support(self, config: BaseModel) -> ExactlyOnceSupport:
        """Supported, from the connector's buffer to Kafka.

        With ``exactly.once.source.support: enabled`` every record, gap record and dead letter
        the task polled is written once: they commit in one transaction with the offsets that
        cover them, so a restart never sends again what was committed, and a ``read_committed``
        consumer never sees an aborted write. Upstream stays what Genesys allows (task.py):
        events received but not yet committed when the process dies are lost with its memory,
        and the restart reports them as a gap from the committed offset's ``seen_ms``, which
        under exactly-once is exactly that of the last committed record; events Genesys sends
        twice (channel overlap beyond the dedupe window) can still arrive twice.
        """
        return ExactlyOnceSupport.SUPPORTED

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self, ctx: ConnectorContext) -> None:
        """Keep the validated config for :meth:`task_configs`."""
        self._ctx = ctx
        self._config = cast(GenesysNotificationsConfig, ctx.config)

    def task_configs(self, max_tasks: int) -> list[TaskConfig]:
        """Pack the topics into channels and the channels into at most ``max_tasks`` tasks,
        reserving the channels in the process-wide budget of the OAuth client.

        Raises:
            ConfigError: the plan does not fit (the message says how many channels it needs).
        """
        if self._config is None or self._ctx is None:
            raise RuntimeError("task_configs() called before start()")
        config = self._config
        try:
            whole = plan.make_plan(
                config.topics(),
                max_topics=config.channel_max_topics,
                usable_channels=config.usable_channels(),
                max_tasks=max_tasks,
            )
            key = (config.hosts().login, config.genesys_client_id)
            plan.CHANNEL_BUDGET.reserve(
                key, self._ctx.connector_name, len(whole.channels), config.usable_channels()
            )
            self._client_key = key
        except plan.PlanError as exc:
            raise ConfigError([ConfigIssue("genesys.subscriptions", str(exc))]) from None
        return [
            {
                "channels": [
                    {"index": c.index, "topics": list(c.topics)} for c in whole.task_channels(t)
                ]
            }
            for t in range(len(whole.tasks))
        ]

    def stop(self) -> None:
        """Release this connector's channels from the process-wide budget."""
        if self._client_key is not None and self._ctx is not None:
            plan.CHANNEL_BUDGET.release(self._client_key, self._ctx.connector_name)
            self._client_key = None

    # --- schemas for the registry check -------------------------------------------------------
    @staticmethod
    def value_schemas(config: BaseModel, connector_name: str = "") -> dict[str, AvroSchema]:
        """Kafka topic -> the Avro value schema this connector writes there (for a registry
        compatibility check in ``connector validate --connect``)."""
        model = cast(GenesysNotificationsConfig, config)
        rule, overrides = model.routing()
        router = topics.Router(rule, overrides, connector_name)
        result: dict[str, AvroSchema] = {}
        for family in (*topics.FAMILIES, topics.OTHER_FAMILY):
            name = family.schema or schemas.ENVELOPE_SCHEMA
            result[router.topic_for(family.name)] = schemas.avro_schema(name)
        result[model.gaps_topic] = schemas.avro_schema(schemas.GAP_SCHEMA)
        return result


def catalogue_issues(config: GenesysNotificationsConfig, catalogue: list[Any]) -> list[ConfigIssue]:
    """Issues from the ``availabletopics`` catalogue: templates it does not offer, and templates
    that need the current user (impossible with a client-credentials token, §5.2)."""
    offered: dict[str, dict[str, Any]] = {
        str(entry.get("id")): entry for entry in catalogue if isinstance(entry, dict)
    }
    issues: list[ConfigIssue] = []
    reported: set[str] = set()
    for topic in config.topics():
        match = topics.match_topic(topic)
        template = match.family.template
        if match.family is topics.OTHER_FAMILY:
            continue
        if match.detail_event:
            template = template.replace("{event}", match.detail_event)
        if template in reported:
            continue
        entry = offered.get(template)
        if entry is None:
            reported.add(template)
            issues.append(
                ConfigIssue(
                    "genesys.subscriptions",
                    f"topic template {template} is not offered by this Genesys org "
                    "(GET /api/v2/notifications/availabletopics)",
                )
            )
        elif entry.get("requiresCurrentUser") is True:
            reported.add(template)
            issues.append(
                ConfigIssue(
                    "genesys.subscriptions",
                    f"topic template {template} requires the current user; a client-credentials "
                    "token has none, so Genesys will reject it",
                )
            )
    return issues
