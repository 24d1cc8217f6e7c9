"""Email alerts against a real SMTP server on localhost (aiosmtpd): what arrives, with and
without a login, and a dead server that does not stop the other channels."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from drkit.config import Schedule
from drkit.notify import Alert, EmailChannel, Notifier

KEY = ("production", "rds-snapshot", "orders")
ALERT = Alert(KEY, "firing", "missed", "drkit: daily snapshot of orders MISSED", "no snapshot since 2026-11-28 03:00")


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd's hook name
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield inbox, controller.port
    controller.stop()


@pytest.fixture
def smtp_with_login() -> Iterator[tuple[Inbox, int, list[tuple[str, str]]]]:
    inbox = Inbox()
    tried: list[tuple[str, str]] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        user, password = data.login.decode(), data.password.decode()
        tried.append((user, password))
        return AuthResult(success=(user, password) == ("alerts", "p@ss:w/rd"))

    controller = Controller(
        inbox, hostname="127.0.0.1", port=_free_port(), authenticator=authenticator, auth_require_tls=False
    )
    controller.start()
    yield inbox, controller.port, tried
    controller.stop()


def test_an_alert_arrives_as_one_mail_to_every_recipient(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    env = {"SMTP": f"smtp://127.0.0.1:{port}?from=drkit@example.com"}
    EmailChannel(("oncall@example.com", "dba@example.com"), "SMTP", env).send(ALERT)

    assert len(inbox.messages) == 1
    sender, recipients, msg = inbox.messages[0]
    assert sender == "drkit@example.com"
    assert recipients == ["oncall@example.com", "dba@example.com"]
    assert msg["Subject"] == "drkit: daily snapshot of orders MISSED"
    assert "no snapshot since 2026-11-28 03:00" in msg.get_payload()


def test_the_login_in_the_url_is_used_with_its_escapes_decoded(
    smtp_with_login: tuple[Inbox, int, list[tuple[str, str]]],
) -> None:
    inbox, port, tried = smtp_with_login
    env = {"SMTP": f"smtp://alerts:p%40ss%3Aw%2Frd@127.0.0.1:{port}"}
    EmailChannel(("oncall@example.com",), "SMTP", env).send(ALERT)
    assert tried == [("alerts", "p@ss:w/rd")]
    assert len(inbox.messages) == 1


def test_a_dead_smtp_server_is_logged_and_slack_style_channels_still_get_the_alert(
    smtp: tuple[Inbox, int], caplog: pytest.LogCaptureFixture
) -> None:
    inbox, port = smtp
    sched = Schedule.model_validate(
        {
            "environment": "production",
            "targets": {"rto": "1h", "rpo": "15m"},
            "notify": [
                {"email": {"to": ["oncall@example.com"], "smtp_url_env": "DEAD_SMTP"}},
                {"email": {"to": ["dba@example.com"], "smtp_url_env": "LIVE_SMTP"}},
            ],
        }
    )
    env = {"DEAD_SMTP": f"smtp://127.0.0.1:{_free_port()}", "LIVE_SMTP": f"smtp://127.0.0.1:{port}"}
    with caplog.at_level(logging.ERROR, logger="drkit.notify"):
        sent = Notifier.from_schedule(sched, env=env).send(ALERT)
    assert sent == 1
    assert [m[1] for m in inbox.messages] == [["dba@example.com"]]
    assert "could not notify email" in caplog.text
