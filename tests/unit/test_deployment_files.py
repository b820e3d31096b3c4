"""No Docker engine runs here, so the production compose file is checked by parsing it."""

from __future__ import annotations

from typing import Any

import yaml

from tests.conftest import REPO


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / "docker-compose.yml").read_text()))


def test_compose_has_the_production_services_with_healthchecks() -> None:
    services = compose()["services"]
    assert {"postgres", "redis", "minio", "web", "worker-cpu", "worker-gpu"} <= set(services)
    for name, service in services.items():
        if service.get("restart") != "no":  # a one-shot job (the bucket's creation) ends
            assert "healthcheck" in service, f"{name} has no healthcheck"
        assert service.get("image") or service.get("build"), name
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    assert services["minio"]["image"].startswith("minio/minio:")


def test_compose_wires_web_and_workers_to_postgres_redis_and_the_bucket() -> None:
    doc = compose()
    services = doc["services"]
    init = " ".join(services["minio-init"]["entrypoint"])
    assert "mc mb --ignore-existing syllabary/syllabary" in init
    caches = set()
    for name in ("web", "worker-cpu", "worker-gpu"):
        service = services[name]
        env = service["environment"]
        assert env["SYLLABARY_DATABASE_URL"].startswith("postgresql://")
        assert env["SYLLABARY_BROKER_URL"].startswith("redis://")
        assert env["SYLLABARY_ENVIRONMENT"] == "production"
        assert "SYLLABARY_SECRET_KEY" in env
        assert env["SYLLABARY_STORAGE"] == "s3"
        assert env["SYLLABARY_S3_ENDPOINT_URL"] == "http://minio:9000"
        assert env["SYLLABARY_S3_BUCKET"] == "syllabary"
        assert env["SYLLABARY_S3_SECRET_KEY"].startswith("${MINIO_ROOT_PASSWORD:?")
        # Each keeps its own cache, as on separate hosts: only the bucket is shared.
        (volume,) = [v.split(":")[0] for v in service["volumes"]]
        assert volume in doc["volumes"], name
        caches.add(volume)
    assert len(caches) == 3
    assert services["web"]["depends_on"]["minio-init"]["condition"] == (
        "service_completed_successfully"
    )
    assert "migrate" in " ".join(services["web"]["command"])


def test_gpu_worker_reserves_an_nvidia_device_and_serves_the_gpu_queue() -> None:
    gpu = compose()["services"]["worker-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert gpu["command"][-1] == "gpu"
    assert compose()["services"]["worker-cpu"]["command"][-1] == "cpu"


def test_dockerfile_installs_the_project_and_never_a_default_cuda_torch() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert "pip install ." in text
    assert "whl/cpu" in text  # the default torch index is the CPU one
