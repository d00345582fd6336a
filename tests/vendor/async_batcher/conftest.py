from __future__ import annotations

import asyncio
from unittest import mock

import pytest
from batch_requests.dynamic import AsyncBatcher


class MockAsyncBatcher(AsyncBatcher):
    mock_batch_processor = mock.AsyncMock(side_effect=lambda batch: [i * 2 for i in batch])

    async def process_batch(self, *args, **kwargs):
        return await self.mock_batch_processor(*args, **kwargs)


class SlowAsyncBatcher(MockAsyncBatcher):
    def __init__(self, sleep_time: float = 1, **kwargs):
        super().__init__(**kwargs)
        self.sleep_time = sleep_time

    async def process_batch(self, *args, **kwargs):
        await asyncio.sleep(self.sleep_time)
        return await super().process_batch(*args, **kwargs)


@pytest.fixture(scope="function")
def mock_async_batcher():
    batcher = MockAsyncBatcher(
        max_batch_size=10,
        max_queue_time=0.01,
    )
    yield batcher
    asyncio.get_event_loop().run_until_complete(batcher.stop())
    batcher.mock_batch_processor.reset_mock()
