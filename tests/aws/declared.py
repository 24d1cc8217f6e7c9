"""Declared-permission checking for the AWS tests: a SessionFactory whose clients refuse undeclared calls.

Opt in by asking for the `guarded` fixture (tests/aws/conftest.py makes it available to every test
in tests/aws), then hand the factory to the code under test as you would any SessionFactory:

    def test_snapshot(guarded) -> None:
        factory = guarded("scheduler")          # or guarded() for "anything in OPERATIONS"
        run_backup(factory, ...)                # an undeclared call raises UndeclaredCall
        assert ("rds", "CreateDBSnapshot") in factory.calls

The fixture also fails the test at teardown if any undeclared call was attempted, so code that
catches broad exceptions cannot hide one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.loaders import Loader, create_loader

from drkit.aws.permissions import Operation, install_guard
from drkit.aws.session import SessionFactory

# botocore parses its JSON service models afresh for every new session (about a second for
# rds, s3, kms, sts and sns together); the models never change, so the guarded factories share
# one loader, as every client of boto3's default session does. Tests only: drkit itself keeps
# no process-wide caches.
_LOADER: Loader = create_loader()


class GuardedSessionFactory(SessionFactory):
    """A SessionFactory whose every client has drkit's permission guard installed.

    `calls` lists every operation its clients made, in order (declared ones only: an
    undeclared call is refused before it is recorded); `undeclared` holds the guard's
    messages for the calls it refused.
    """

    def __init__(self, *, role: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.role = role
        self.calls: list[Operation] = []
        self.undeclared: list[str] = []
        self._calls_lock = threading.Lock()

    def session(self) -> boto3.Session:
        session = super().session()
        # Before any client exists (clients load models lazily, from this component).
        session._session.register_component("data_loader", _LOADER)
        return session

    def client(self, service: str, region: str | None = None) -> Any:
        client = super().client(service, region)
        install_guard(client, self.role, record=self.undeclared)
        # Registered after the guard, so only calls the guard let through are recorded.
        client.meta.events.register("before-call", self._note)
        return client

    def _note(self, model: Any, **_: Any) -> None:
        with self._calls_lock:
            self.calls.append((model.service_model.service_name, model.name))


GuardedFactoryMaker = Callable[..., GuardedSessionFactory]


@pytest.fixture
def guarded(moto_aws: None) -> Iterator[GuardedFactoryMaker]:
    """`guarded(role=None, **SessionFactory kwargs)` -> a GuardedSessionFactory talking to moto.

    Fails the test at teardown if any of the factories it made saw an undeclared call.
    """
    made: list[GuardedSessionFactory] = []

    def make(role: str | None = None, **kwargs: Any) -> GuardedSessionFactory:
        factory = GuardedSessionFactory(role=role, **kwargs)
        made.append(factory)
        return factory

    yield make
    undeclared = [message for factory in made for message in factory.undeclared]
    if undeclared:
        pytest.fail("undeclared AWS calls:\n" + "\n".join(undeclared), pytrace=False)
