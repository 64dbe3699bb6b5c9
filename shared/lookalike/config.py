"""Settings, read once from the environment (prefix LOOKALIKE_).

The deployment mode follows from the URLs given: no broker URL means embedded (in-process worker pool).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# 128 bits written as hex: a shorter admin token makes every process refuse to start.
MIN_ADMIN_TOKEN_CHARS = 32
# POST /diagnose parses at most this many image parts, whatever max_photos says (the parser's own limit).
MAX_PHOTOS_CAP = 10


class Settings(BaseSettings):
    # Values stay out of error messages: they may be secrets (the admin token, passwords in database URLs).
    model_config = SettingsConfigDict(
        env_prefix="LOOKALIKE_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    data_dir: Path = Path("./data")
    # Empty means SQLite at <data_dir>/lookalike.db.
    database_url: str = ""
    broker_url: str = ""

    model_pack: str = "buffalo_s"
    # Where insightface's model store keeps downloaded packs (buffalo_l); custom packs are any directory.
    model_root: Path = Path("~/.insightface").expanduser()
    # Empty: choose from what ONNX Runtime reports (CUDA first, then CPU).
    providers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Threads per ONNX Runtime session on CPU; 0 lets ORT decide. One thread per worker avoids spin contention.
    ort_threads: int = 1
    # `lookalike serve` processes sharing the port (each with its own models and `workers` threads).
    processes: int = 1
    workers: int = 2
    # ONNX Runtime threads a photo gets while it is the only work of an embedded gateway that has the machine to
    # itself (one process, nothing else queued; CPU): a lone request runs about as fast as intra-op threads allow,
    # and under load each worker keeps ort_threads. 0: the CPU count; 1: never widen (Pipeline.alone says when).
    lone_threads: int = 0

    det_size: int = 640
    # First, cheaper pass that settles photos whose faces are all large and clear (portraits, selfies); other
    # photos then get the det_size pass. 0 (or det_size and above): no quick pass.
    quick_det_size: int = 320
    # Second, larger pass used only when a photo shows small faces (crowds).
    large_det_size: int = 1280
    det_threshold: float = 0.5
    # Faces smaller than this (shorter box side, px in the original photo) are matched with a small_face warning.
    min_face_px: int = 20
    max_faces: int = 20
    # explain=true maps this many faces (largest first): each costs 170 embeddings.
    explain_max_faces: int = 4
    embed_batch: int = 32
    # Dynamic batching: the embedder waits this long for faces of other jobs before it runs (GPU: 2-5 ms). 0 is
    # off, the right choice on a CPU with one ONNX Runtime thread per worker (pipeline/batcher.py says why).
    batch_wait_ms: float = 0.0

    max_upload_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000
    # The whole request body must arrive within this long (a slow drip or an overstated Content-Length: 408).
    upload_timeout_s: float = 60.0

    top_members: int = 3
    # Per-member score: mean of the member's best k photo similarities.
    member_top_k: int = 3
    # Share of strangers allowed to be called the same person as a member (the same_person threshold).
    target_fmr: float = 0.001
    # The lookalike threshold: this quantile of the lookalike scores the gallery's members get against each other
    # (0.5: a lookalike resembles a member more than half of the members resemble their closest other member).
    # docs/matching.md has the measurements behind the default.
    lookalike_quantile: float = 0.5
    # POST /diagnose takes up to this many photos of one person (image parts), combined into one answer.
    max_photos: int = Field(default=5, ge=1, le=MAX_PHOTOS_CAP)
    # Photos of one person: each photo's main face must score at least this against the others' combined face
    # (buffalo_s on ../shared/data/faces: 0.15 refused 0.0-0.2 % of same-person photos or pairs; it lets 2 % of
    # other people through on Western faces, a quarter on East Asian faces of the same sex and age).
    person_min_similarity: float = 0.15

    host: str = "127.0.0.1"
    port: int = 8000
    # POST /diagnose waits this long for its result, then answers 202 with the job id to poll.
    diagnose_wait_s: float = 30.0
    # How long a diagnose result (boxes and member scores, no image, no embedding) is kept.
    result_ttl_s: int = 3600
    # Bearer token for /admin (128 bits or more); empty disables the admin API (the CLI does admin work).
    admin_token: str = ""

    # Abuse limits on POST /diagnose, per gateway process; 0 turns one off. A client (the peer address) may start
    # `diagnose_rate_limit` requests per window in a burst, then one per window / limit seconds (429 rate_limited),
    # and have `diagnose_client_concurrency` in flight (429 too_many_in_flight). Diagnose jobs accepted and not
    # finished (embedded) or waiting in the broker (distributed) over `diagnose_queue_max`: 503 queue_full.
    diagnose_rate_limit: int = 60
    diagnose_rate_window_s: float = 60.0
    diagnose_client_concurrency: int = 4
    diagnose_queue_max: int = 64
    # Proxies whose X-Forwarded-For names the client (IPs or CIDRs, "*" for any): empty trusts no header.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Origins allowed to call the API from a browser (CORS); empty sends no CORS headers.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Distributed mode. Upload bytes wait for a worker in Redis at most this long.
    blob_ttl_s: int = 600
    # A job whose worker died this many times (it kills them) fails for good.
    max_attempts: int = 3
    task_soft_time_limit_s: int = 60
    task_time_limit_s: int = 90
    # Scrape, upload and reindex jobs on the ingestion worker fetch politely (1 request/s/host): longer limits.
    ingest_soft_time_limit_s: int = 3300
    ingest_time_limit_s: int = 3600
    # Redis redelivers an unacknowledged message after this long; keep it well above every hard time limit.
    visibility_timeout_s: int = 7200
    # Jobs still queued after this long are sent again (the broker may have lost them); checked this often.
    reconcile_after_s: float = 20.0
    reconcile_every_s: float = 5.0
    # Processes per `lookalike worker` (0: one per core).
    worker_concurrency: int = 0

    # Scraping. Seconds between two requests to one host; whole-download deadline; hosts, host:port, IPs or CIDRs
    # allowed past the private-address guard (for a gallery site on your own network; never metadata endpoints).
    fetch_interval_s: float = 1.0
    fetch_deadline_s: float = 20.0
    fetch_allow: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("admin_token")
    @classmethod
    def _strong_token(cls, value: str) -> str:
        value = value.strip()
        if value and len(value) < MIN_ADMIN_TOKEN_CHARS:
            raise ValueError(
                f"LOOKALIKE_ADMIN_TOKEN is {len(value)} characters; it must have at least {MIN_ADMIN_TOKEN_CHARS} "
                '(128 bits as hex), e.g. python -c "import secrets; print(secrets.token_hex(16))"'
            )
        return value

    @field_validator("providers", "fetch_allow", "trusted_proxies", "cors_origins", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [p.strip() for p in value.split(",") if p.strip()]
        return value

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            url = self.database_url
            # psycopg 3 is the driver we ship; plain postgresql:// URLs name it implicitly.
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
            return url
        return _sqlite_url(self.data_dir if self.data_dir.is_absolute() else Path.cwd() / self.data_dir)

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def photo_dir(self) -> Path:
        return self.data_dir / "photos"

    @property
    def distributed(self) -> bool:
        return bool(self.broker_url)

    @property
    def lone_thread_count(self) -> int:
        """lone_threads, with 0 read as the CPU count."""
        return self.lone_threads or os.cpu_count() or 1


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


@lru_cache(maxsize=16)
def _sqlite_url(data_dir: Path) -> str:
    # Cached: resolving the path walks the file system, and every job row write asks for the URL.
    return f"sqlite:///{(data_dir / 'lookalike.db').resolve()}"
