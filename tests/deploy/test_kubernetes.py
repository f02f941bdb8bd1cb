"""deploy/kubernetes/: rendered with `kubectl kustomize`, every object validated offline against
the Kubernetes schemas (kubernetes-validate, strict, for the pinned version), the settings a
nightly CronJob needs, job files that load, and the Dockerfile and the docs in step."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from ometria_sync.config import load_job

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
#: the Kubernetes version the manifests are validated against (CronJob timeZone: 1.27+;
#: podFailurePolicy: 1.31+)
KUBERNETES_VERSION = "1.33.0"


def render(folder: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed to render deploy/kubernetes (kubectl kustomize)"
    out = subprocess.run([kubectl, "kustomize", str(folder)], check=True, capture_output=True,
                         text=True, timeout=60).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def _validate(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def _one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (obj,) = [o for o in objects if o["kind"] == kind]
    return obj


@pytest.mark.parametrize("folder", ["base", "overlays/two-jobs"])
def test_every_rendered_object_validates(folder: str) -> None:
    objects = render(DEPLOY / folder)
    kinds = {"ServiceAccount", "ConfigMap", "CronJob"}
    assert {o["kind"] for o in objects} == (kinds if folder == "base"
                                             else kinds | {"Deployment", "Service"})
    for obj in objects:
        _validate(obj)


def test_the_secret_template_validates() -> None:
    secret = yaml.safe_load((DEPLOY / "base" / "secret.template.yaml").read_text())
    _validate(secret)
    assert secret["metadata"]["name"] == "ometria-sync"


def test_the_validator_can_fail() -> None:
    """Strict validation refuses a misspelt field and a wrong type (offline, no cluster)."""
    cronjob = _one(render(DEPLOY / "base"), "CronJob")
    cronjob["spec"]["concurencyPolicy"] = "Forbid"
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(cronjob)
    cronjob = _one(render(DEPLOY / "base"), "CronJob")
    cronjob["spec"]["jobTemplate"]["spec"]["backoffLimit"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(cronjob)


def test_the_cronjob_has_what_a_nightly_sync_needs() -> None:
    objects = render(DEPLOY / "base")
    cronjob = _one(objects, "CronJob")
    spec = cronjob["spec"]
    assert spec["timeZone"] and spec["concurrencyPolicy"] == "Forbid"
    job = spec["jobTemplate"]["spec"]
    (fail_on_3,) = [r for r in job["podFailurePolicy"]["rules"] if r["action"] == "FailJob"]
    assert 3 in fail_on_3["onExitCodes"]["values"]
    assert fail_on_3["onExitCodes"]["operator"] == "In"
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never"  # podFailurePolicy requires it
    assert pod["serviceAccountName"] == _one(objects, "ServiceAccount")["metadata"]["name"]
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True and security["fsGroup"] == 10001
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/job/state"]] and "emptyDir" in volumes[mounts["/tmp"]]
    config = volumes[mounts["/job/job.toml"]]["configMap"]["name"]
    assert config == _one(objects, "ConfigMap")["metadata"]["name"]  # the generated name
    assert pod["terminationGracePeriodSeconds"] > 10  # run.grace_period's default


def test_two_jobs_share_state_and_budget_with_a_schema_each(tmp_path: Path) -> None:
    objects = render(DEPLOY / "overlays" / "two-jobs")
    cronjobs = [o for o in objects if o["kind"] == "CronJob"]
    maps = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ConfigMap"}
    assert len(cronjobs) == 2 and len(maps) == 2
    assert len({c["spec"]["schedule"] for c in cronjobs}) == 2
    schemas, names, secrets = set(), set(), set()
    env = {"OMETRIA_SYNC_STATE_URL": "postgresql://sync:pw@db:5432/ometria_sync",
           "OMETRIA_SYNC_REDIS_URL": "redis://:pw@redis:6379/0", "SOURCE_DSN": "postgresql://x",
           "OMETRIA_API_KEY": "k"}
    for cronjob in cronjobs:
        pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        variables = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
        assert {"OMETRIA_SYNC_STATE_URL", "OMETRIA_SYNC_REDIS_URL"} <= set(variables)
        secrets |= {ref["name"] for ref in variables.values()}
        (config,) = [v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v]
        path = tmp_path / config / "job.toml"
        path.parent.mkdir()
        path.write_text(maps[config]["data"]["job.toml"])
        job = load_job(path, env)  # the job file is a valid one
        schemas.add(job.settings.state.schema)
        names.add(job.name)
        assert job.settings.ometria.rate_limit_url_env == "OMETRIA_SYNC_REDIS_URL"
    assert len(schemas) == 2 and len(names) == 2 and secrets == {"ometria-sync"}


def test_the_base_job_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "job.toml"
    path.write_text((DEPLOY / "base" / "job.toml").read_text())
    job = load_job(path, {"OMETRIA_SYNC_STATE_URL": "postgresql://db/x", "SOURCE_DSN": "x",
                          "OMETRIA_API_KEY": "k"})
    assert job.settings.state.dead_letter == "database"


def test_the_dockerfile_runs_as_the_manifests_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    pod = _one(render(DEPLOY / "base"), "CronJob")["spec"]["jobTemplate"]["spec"]["template"]
    security = pod["spec"]["securityContext"]
    assert re.search(r"^USER (\d+):(\d+)$", dockerfile, re.M).groups() == (  # type: ignore[union-attr]
        str(security["runAsUser"]), str(security["runAsGroup"]))
    assert "WORKDIR /job" in dockerfile and "/job/state" in dockerfile
    assert "PYTHONDONTWRITEBYTECODE=1" in dockerfile  # nothing written to the read-only root


def test_the_docs_show_these_files() -> None:
    """The docs' Kubernetes examples are these files, verbatim."""
    page = (ROOT / "docs" / "kubernetes.md").read_text()
    for name in ("cronjob.yaml", "job.toml"):
        text = (DEPLOY / "base" / name).read_text()
        assert text.strip() in page, f"docs/kubernetes.md does not show base/{name} as it is"
    redis = (DEPLOY / "overlays" / "two-jobs" / "redis.yaml").read_text().strip()
    assert redis in (ROOT / "docs" / "shared-budget.md").read_text()
