"""Upload bytes between the gateway and a worker: a Redis key with a TTL, deleted once the job ends."""

from __future__ import annotations

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from lookalike.jobs.state import JobState

PREFIX = "lookalike:upload:"
DONE_CHANNEL = "lookalike:jobs:done"


def blob_key(job_id: str) -> str:
    return PREFIX + job_id


class BlobStore:
    """The worker side (synchronous)."""

    def __init__(self, url: str) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=10, health_check_interval=30)

    def get(self, job_id: str) -> bytes | None:
        value = self._redis.get(blob_key(job_id))
        return bytes(value) if value is not None else None  # type: ignore[arg-type]

    def delete(self, job_id: str) -> None:
        self._redis.delete(blob_key(job_id))

    def announce_done(self, state: JobState) -> None:
        """Hand the finished job to the gateway waiting on it, which then need not read it back from the database
        (it also polls the database, so a lost message only delays). Results hold no image bytes or embeddings."""
        self._redis.publish(DONE_CHANNEL, state.to_json())


class AsyncBlobStore:
    """The gateway side."""

    def __init__(self, url: str) -> None:
        # After a Redis restart every pooled connection is dead: retry on a fresh one instead of failing the
        # request (from_url clients do not retry by default).
        self.redis = aioredis.Redis.from_url(
            url,
            socket_timeout=10,
            health_check_interval=30,
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), 3),
            retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        )

    async def put(self, job_id: str, data: bytes, *, ttl_s: int) -> None:
        await self.redis.set(blob_key(job_id), data, ex=ttl_s)

    async def delete(self, job_id: str) -> None:
        await self.redis.delete(blob_key(job_id))

    async def close(self) -> None:
        await self.redis.aclose()
