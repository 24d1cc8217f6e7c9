"""Telling people when scheduled work fails: channels, and one alert per incident.

Channels come from a schedule's `notify:` list (secrets from the environment):

    notify:
      - slack: {webhook_env: DRKIT_SLACK_WEBHOOK}       # POST {"text": ...} (any Slack-compatible hook)
      - sns: {topic_arn: "arn:aws:sns:us-east-1:123456789012:drkit"}
      - pagerduty: {routing_key_env: DRKIT_PAGERDUTY_KEY}   # Events API v2, dedup_key = incident
      - email: {to: [oncall@example.com], smtp_url_env: DRKIT_SMTP_URL}   # smtp://user:pw@host:25

An incident is keyed by (schedule, kind, resource). The first failure (or missed run) opens it
and notifies; further failures while it is open only count; the next success resolves it and
sends one "resolved" message. Open incidents live in the catalog (drkit.catalog.alerts), so a
restarted scheduler does not alert again. Sending never raises: a broken channel is logged,
because an alerting problem must not stop backups.
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
import socket
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from drkit.clock import Clock

log = logging.getLogger("drkit.notify")

HTTP_TIMEOUT_S = 10.0
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"

Key = tuple[str, str, str]  # (schedule, kind, resource)


@dataclass(frozen=True)
class Alert:
    """One message: an incident opened (`firing`) or ended (`resolved`)."""

    key: Key
    state: str  # "firing" | "resolved"
    reason: str  # "failed" | "missed" | "config"
    summary: str  # one line
    detail: str = ""

    @property
    def dedup_key(self) -> str:
        return "drkit:" + "/".join(self.key)

    @property
    def text(self) -> str:
        return f"{self.summary}\n{self.detail}" if self.detail else self.summary


class Channel(Protocol):
    name: str

    def send(self, alert: Alert) -> None: ...


def _post_json(url: str, payload: Mapping[str, Any]) -> None:
    req = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "drkit"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as resp:
        resp.read()


def _env(env: Mapping[str, str], var: str, what: str) -> str:
    value = env.get(var)
    if not value:
        raise RuntimeError(f"{var} is not set (the {what})")
    return value


@dataclass
class SlackChannel:
    """A Slack-compatible incoming webhook (also Mattermost, Rocket.Chat, Teams workflows)."""

    webhook_env: str
    env: Mapping[str, str]
    name: str = "slack"

    def send(self, alert: Alert) -> None:
        _post_json(_env(self.env, self.webhook_env, "Slack webhook URL"), {"text": alert.text})


@dataclass
class SnsChannel:
    """Publish to an SNS topic in the topic's own region, through the schedule's AWS session."""

    topic_arn: str
    client_for: Callable[[str], Any]  # region -> sns client
    name: str = "sns"

    def send(self, alert: Alert) -> None:
        region = self.topic_arn.split(":")[3]
        self.client_for(region).publish(TopicArn=self.topic_arn, Subject=alert.summary[:99], Message=alert.text)


@dataclass
class PagerDutyChannel:
    """PagerDuty Events API v2: trigger on firing, resolve on resolved, same dedup_key."""

    routing_key_env: str
    env: Mapping[str, str]
    url: str = PAGERDUTY_URL
    name: str = "pagerduty"

    def send(self, alert: Alert) -> None:
        payload: dict[str, Any] = {
            "routing_key": _env(self.env, self.routing_key_env, "PagerDuty routing key"),
            "event_action": "trigger" if alert.state == "firing" else "resolve",
            "dedup_key": alert.dedup_key,
        }
        if alert.state == "firing":
            schedule, kind, resource = alert.key
            payload["payload"] = {
                "summary": alert.summary[:1024],
                "source": socket.gethostname(),
                "severity": "error",
                "component": resource or None,
                "group": schedule or None,
                "class": kind,
                "custom_details": {"detail": alert.detail, "reason": alert.reason},
            }
        _post_json(self.url, payload)


@dataclass
class EmailChannel:
    """Email through the SMTP server at the URL in `smtp_url_env`.

    `smtp://[user:password@]host[:port]` (STARTTLS when `?starttls=true`), `smtps://...` for TLS;
    the sender is `?from=` or drkit@<hostname>.
    """

    to: Sequence[str]
    smtp_url_env: str
    env: Mapping[str, str]
    name: str = "email"

    def send(self, alert: Alert) -> None:
        url = urlsplit(_env(self.env, self.smtp_url_env, "SMTP URL"))
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        msg = EmailMessage()
        msg["Subject"] = alert.summary
        msg["From"] = query.get("from", f"drkit@{socket.gethostname()}")
        msg["To"] = ", ".join(self.to)
        msg.set_content(alert.text)
        host = url.hostname or "localhost"
        smtp: smtplib.SMTP
        if url.scheme == "smtps":
            smtp = smtplib.SMTP_SSL(host, url.port or 465, timeout=HTTP_TIMEOUT_S)
        else:
            smtp = smtplib.SMTP(host, url.port or 25, timeout=HTTP_TIMEOUT_S)
        with smtp:
            if query.get("starttls") == "true":
                smtp.starttls()
            if url.username:
                smtp.login(unquote(url.username), unquote(url.password or ""))
            smtp.send_message(msg)


class Notifier:
    """Sends an alert to every channel; a failing channel is logged and the others still get it."""

    def __init__(self, channels: Sequence[Channel]) -> None:
        self.channels = list(channels)

    @classmethod
    def from_schedule(cls, schedule: Any, env: Mapping[str, str] | None = None) -> Notifier:
        """The channels of a schedule's `notify:` list (drkit.config.Schedule)."""
        env = os.environ if env is None else env
        channels: list[Channel] = []
        for item in schedule.notify:
            if item.slack is not None:
                channels.append(SlackChannel(str(item.slack.webhook_env), env))
            elif item.sns is not None:
                channels.append(SnsChannel(str(item.sns.topic_arn), _sns_clients(schedule)))
            elif item.pagerduty is not None:
                channels.append(PagerDutyChannel(str(item.pagerduty.routing_key_env), env))
            elif item.email is not None:
                channels.append(EmailChannel(tuple(item.email.to), str(item.email.smtp_url_env), env))
        return cls(channels)

    def send(self, alert: Alert) -> int:
        """Send to every channel; returns how many accepted it. Never raises."""
        sent = 0
        for channel in self.channels:
            try:
                channel.send(alert)
                sent += 1
            except Exception as exc:  # any channel failure: log it, never stop the scheduler
                log.error("could not notify %s about %s: %s", channel.name, alert.dedup_key, exc)
        return sent


def _sns_clients(schedule: Any) -> Callable[[str], Any]:
    def client_for(region: str) -> Any:
        from drkit.aws.session import SessionFactory  # only when an SNS channel is used

        return SessionFactory.from_schedule(schedule).client("sns", region=region)

    return client_for


class IncidentStore(Protocol):
    """Where open incidents are remembered (drkit.catalog.alerts.CatalogIncidentStore)."""

    def get(self, key: Key) -> Any: ...  # an object with .status, .failures, .opened_at, or None
    def open(self, key: Key, reason: str, detail: str, at: datetime) -> None: ...
    def bump(self, key: Key, detail: str, at: datetime) -> None: ...
    def resolve(self, key: Key, at: datetime) -> None: ...


class Incidents:
    """Alert once per incident: open on the first failure, resolve on the next success.

    `notifier_for(schedule)` gives the channels of that schedule's `notify:` list.
    """

    def __init__(self, store: IncidentStore, notifier_for: Callable[[str], Notifier], clock: Clock) -> None:
        self.store = store
        self.notifier_for = notifier_for
        self.clock = clock

    def failed(self, key: Key, summary: str, detail: str = "", *, reason: str = "failed") -> bool:
        """Record a failure; notifies (and returns True) only if it opens a new incident."""
        now = self.clock.now()
        current = self.store.get(key)
        if current is not None and current.status == "open":
            self.store.bump(key, detail or summary, now)
            log.info("incident %s still open (%d failures); not alerting again", "/".join(key), current.failures + 1)
            return False
        # Remember first, then send: a crash in between must not turn into an alert per retry.
        self.store.open(key, reason, detail or summary, now)
        self._notify(key, Alert(key, "firing", reason, summary, detail))
        return True

    def succeeded(self, key: Key, summary: str) -> bool:
        """Record a success; resolves (and returns True) if an incident was open."""
        current = self.store.get(key)
        if current is None or current.status != "open":
            return False
        self.store.resolve(key, self.clock.now())
        detail = f"after {current.failures} failure(s); open since {current.opened_at.isoformat()}"
        self._notify(key, Alert(key, "resolved", current.reason, summary, detail))
        return True

    def is_open(self, key: Key) -> bool:
        current = self.store.get(key)
        return current is not None and current.status == "open"

    def _notify(self, key: Key, alert: Alert) -> None:
        try:
            notifier = self.notifier_for(key[0])
        except Exception as exc:  # e.g. the schedule vanished in a reload
            log.error("no notifier for schedule %r: %s", key[0], exc)
            return
        log.warning("alert %s: %s", alert.state, alert.summary)
        notifier.send(alert)
