from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.receivers import HttpReceiver, SmtpServer, http_receiver, smtp_server


@pytest.fixture
async def receiver() -> AsyncIterator[HttpReceiver]:
    async with http_receiver() as running:
        yield running


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    async with smtp_server() as running:
        yield running
