"""Settings, read from ``SYLLABARY_*`` environment variables.

The defaults give the embedded mode (SQLite and a filesystem broker under ``var/``); production
sets PostgreSQL and Redis URLs through the environment (see docker-compose.yml).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET_KEY = "dev-insecure-change-me"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SYLLABARY_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    var_dir: Path = Path("var")
    database_url: str = ""  # empty: SQLite file under var_dir
    broker_url: str = ""  # empty: kombu filesystem transport under var_dir
    storage_dir: Path | None = None  # empty: var_dir / "storage"; with S3, this host's cache
    # Where stored files live: "filesystem" (storage_dir, or a volume shared by every host) or
    # "s3" (an S3-compatible bucket shared by hosts; storage_dir is then a local cache).
    storage: Literal["filesystem", "s3"] = "filesystem"
    s3_bucket: str = ""
    s3_endpoint_url: str = ""  # empty: AWS itself; MinIO and others: e.g. http://minio:9000
    s3_region: str = "us-east-1"
    # Empty: boto3's usual sources (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, an instance role).
    s3_access_key: str = ""
    s3_secret_key: str = ""
    # Files larger than this go to the bucket as a multipart upload in parts of this size
    # (S3 refuses parts under 5 MiB; 10,000 parts of 16 MiB cover the upload limit's 20 GiB).
    s3_part_size: int = Field(default=16 * 1024**2, ge=5 * 1024**2, le=5 * 1024**3)
    secret_key: str = DEFAULT_SECRET_KEY
    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_bytes: int = Field(default=20 * 1024**3, gt=0)
    # Queue names: "cpu" for ingest work, "gpu" for fitting when a GPU worker exists.
    cpu_queue: str = "cpu"
    gpu_queue: str = "gpu"
    # Send fit jobs to the "gpu" queue (set where a GPU worker runs, as in docker-compose.yml).
    fit_on_gpu_queue: bool = False
    # Workers run at a lower CPU priority so pages stay quick while a fit runs beside them.
    worker_nice: int = Field(default=10, ge=0, le=19)
    # CPU threads of one worker's numerical work (torch, OpenCV, OpenMP/BLAS). 0: the cores this
    # process may run on, divided among ``workers_per_host`` workers. More threads than cores
    # (two workers, or a worker beside another busy process) make every small op spin-wait.
    worker_threads: int = Field(default=0, ge=0)
    workers_per_host: int = Field(default=1, ge=1)
    crop_size: int = Field(default=32, ge=8, le=128)
    clips_per_syllable: int = Field(default=6, ge=0, le=24)
    job_lease_seconds: float = Field(default=60.0, gt=0)
    job_max_attempts: int = Field(default=3, ge=1)
    reaper_interval_seconds: float = Field(default=10.0, gt=0)
    # A queued job whose wake-up message may have been lost (a broker restart without
    # persistence) is sent again after this long; duplicates are harmless (claims are guarded).
    job_resend_after_seconds: float = Field(default=300.0, gt=0)
    # Limits the probe job enforces before decoding a whole video (hostile or mistaken files).
    video_max_width: int = Field(default=4096, gt=0)
    video_max_height: int = Field(default=4096, gt=0)
    video_max_duration_s: float = Field(default=24 * 3600.0, gt=0)
    video_max_frames: int = Field(default=10_000_000, gt=0)
    video_min_frames: int = Field(default=2, ge=1)
    # Browser logins end after this long without a request, and after the absolute limit anyway.
    session_idle_hours: float = Field(default=12.0, gt=0)
    session_max_days: float = Field(default=7.0, gt=0)

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> Settings:
        if self.environment == "production" and self.secret_key == DEFAULT_SECRET_KEY:
            raise ValueError(
                "SYLLABARY_SECRET_KEY is the development default; set a long random value "
                "(for example: python -c 'import secrets; print(secrets.token_urlsafe(48))') "
                "before running in production."
            )
        return self

    @model_validator(mode="after")
    def _s3_needs_a_bucket(self) -> Settings:
        if self.storage == "s3" and not self.s3_bucket:
            raise ValueError("SYLLABARY_STORAGE=s3 needs SYLLABARY_S3_BUCKET (the bucket's name).")
        return self

    @property
    def resolved_var_dir(self) -> Path:
        return self.var_dir.resolve()

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            url = self.database_url
            # Accept plain postgres URLs and use psycopg 3.
            for prefix in ("postgresql://", "postgres://"):
                if url.startswith(prefix):
                    return "postgresql+psycopg://" + url[len(prefix) :]
            return url
        return f"sqlite:///{self.resolved_var_dir / 'syllabary.db'}"

    @property
    def celery_broker_url(self) -> str:
        return self.broker_url or "filesystem://"

    @property
    def broker_dir(self) -> Path:
        return self.resolved_var_dir / "broker"

    @property
    def files_dir(self) -> Path:
        return (self.storage_dir or self.var_dir / "storage").resolve()

    @property
    def is_embedded_broker(self) -> bool:
        return self.celery_broker_url.startswith("filesystem")


@lru_cache
def get_settings() -> Settings:
    return Settings()
