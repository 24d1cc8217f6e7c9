"""Alerts: one message per incident (not per retry), one "resolved", remembered across restarts;
real HTTP for the Slack/PagerDuty stand-ins, moto for SNS, a real SQLite catalog for state."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from drkit.catalog import Catalog
from drkit.catalog.alerts import CatalogIncidentStore
from drkit.catalog.connect import create_catalog_engine, normalize_url
from drkit.clock import FakeClock
from drkit.config import Notify, Schedule
from drkit.notify import Alert, Incidents, Notifier, PagerDutyChannel

KEY = ("production", "pg-backup", "app")


class Receiver:
    """A local HTTP server standing in for a webhook: records every JSON body it is sent."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CatalogIncidentStore]:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    Catalog.open(url).close()  # creates the schema (migration 0002: alert_incidents)
    engine = create_catalog_engine(normalize_url(url))
    yield CatalogIncidentStore(engine)
    engine.dispose()


def _schedule(notify: list[dict[str, Any]]) -> Schedule:
    return Schedule.model_validate({"environment": "production", "targets": {"rto": "1h", "rpo": "15m"},
                                    "notify": notify})  # fmt: skip


def _slack(receiver: Receiver) -> Notifier:
    sched = _schedule([{"slack": {"webhook_env": "HOOK"}}])
    return Notifier.from_schedule(sched, env={"HOOK": receiver.url})


def test_three_failures_send_one_alert_and_a_success_sends_one_resolved(
    receiver: Receiver, store: CatalogIncidentStore
) -> None:
    clock = FakeClock(datetime(2026, 3, 10, 6, 0, tzinfo=UTC))
    incidents = Incidents(store, lambda schedule: _slack(receiver), clock)
    results = []
    for attempt in range(3):
        results.append(incidents.failed(KEY, "drkit: pg-backup production/app FAILED", f"pg_dump: boom {attempt}"))
        clock.advance(60)
    assert results == [True, False, False]
    assert len(receiver.bodies) == 1
    assert "FAILED" in receiver.bodies[0]["text"] and "boom 0" in receiver.bodies[0]["text"]
    assert store.get(KEY).failures == 3  # type: ignore[union-attr]

    assert incidents.succeeded(KEY, "drkit: pg-backup production/app is working again") is True
    assert len(receiver.bodies) == 2
    assert "working again" in receiver.bodies[1]["text"] and "after 3 failure(s)" in receiver.bodies[1]["text"]
    # Further successes are quiet; a new failure is a new incident.
    assert incidents.succeeded(KEY, "again") is False
    assert incidents.failed(KEY, "drkit: FAILED again") is True
    assert len(receiver.bodies) == 3


def test_a_restarted_scheduler_does_not_alert_again_for_an_open_incident(
    receiver: Receiver, store: CatalogIncidentStore
) -> None:
    clock = FakeClock(datetime(2026, 3, 10, 6, 0, tzinfo=UTC))
    Incidents(store, lambda s: _slack(receiver), clock).failed(KEY, "FAILED")
    restarted = Incidents(store, lambda s: _slack(receiver), clock)  # a new process, same catalog
    assert restarted.failed(KEY, "FAILED") is False
    assert restarted.succeeded(KEY, "resolved") is True
    assert [b["text"].splitlines()[0] for b in receiver.bodies] == ["FAILED", "resolved"]


def test_a_broken_channel_is_logged_and_the_others_still_get_the_alert(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    sched = _schedule([{"slack": {"webhook_env": "DEAD"}}, {"slack": {"webhook_env": "UNSET"}},
                       {"slack": {"webhook_env": "HOOK"}}])  # fmt: skip
    notifier = Notifier.from_schedule(sched, env={"DEAD": "http://127.0.0.1:9/nothing", "HOOK": receiver.url})
    with caplog.at_level(logging.ERROR, logger="drkit.notify"):
        sent = notifier.send(Alert(KEY, "firing", "failed", "drkit: FAILED"))
    assert sent == 1 and len(receiver.bodies) == 1
    assert "UNSET is not set" in caplog.text and "could not notify slack" in caplog.text


def test_pagerduty_triggers_and_resolves_with_the_incident_as_dedup_key(receiver: Receiver) -> None:
    channel = PagerDutyChannel("PD_KEY", {"PD_KEY": "routing-123"}, url=receiver.url)
    channel.send(Alert(KEY, "firing", "failed", "drkit: FAILED", "pg_dump: boom"))
    channel.send(Alert(KEY, "resolved", "failed", "drkit: ok again"))
    trigger, resolve = receiver.bodies
    assert trigger["routing_key"] == "routing-123" and trigger["event_action"] == "trigger"
    assert trigger["payload"]["summary"] == "drkit: FAILED" and trigger["payload"]["severity"] == "error"
    assert resolve["event_action"] == "resolve"
    assert trigger["dedup_key"] == resolve["dedup_key"] == "drkit:production/pg-backup/app"


@mock_aws
def test_sns_publishes_to_the_topic_in_its_own_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    sns = boto3.client("sns", region_name="eu-west-1")
    sqs = boto3.client("sqs", region_name="eu-west-1")
    topic = sns.create_topic(Name="drkit")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="oncall")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    # The schedule's own region is elsewhere: the topic's ARN decides where to publish.
    sched = Schedule.model_validate(
        {
            "environment": "production",
            "targets": {"rto": "1h", "rpo": "15m"},
            "aws": {"region": "us-east-1"},
            "notify": [{"sns": {"topic_arn": topic}}],
        }
    )
    assert Notify.model_validate({"sns": {"topic_arn": topic}}).kind == "sns"
    sent = Notifier.from_schedule(sched).send(Alert(KEY, "firing", "failed", "drkit: FAILED", "pg_dump: boom"))
    assert sent == 1
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 1
    body = json.loads(messages[0]["Body"])
    assert body["Subject"] == "drkit: FAILED" and "pg_dump: boom" in body["Message"]
