"""The gateway container's HTTP API, as a client on the host sees it through the published port."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")
FINISHED = {"done", "failed"}
# The member's verdict word: `match` now, `same_person` or `lookalike` once the verdicts are split.
MEMBER_VERDICTS = {"same_person", "lookalike"}


class Gateway:
    def __init__(self, base_url: str, admin_token: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=60)
        self.admin = {"Authorization": f"Bearer {admin_token}"}

    def close(self) -> None:
        self.http.close()

    def ready(self) -> bool:
        try:
            return self.http.get("/readyz", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    def diagnose(self, photo: Path, *, run_async: bool = False) -> httpx.Response:
        params = {"async": "true"} if run_async else {}
        files = {"image": (photo.name, photo.read_bytes(), "image/jpeg")}
        return self.http.post("/diagnose", params=params, files=files)

    def top_member(self, photo: Path) -> tuple[str, str, dict[str, int]]:
        """(slug of the best member, verdict, index versions) of the photo's largest face."""
        answer = self.diagnose(photo)
        if answer.status_code != 200:
            raise AssertionError(f"POST /diagnose {photo.name}: {answer.status_code} {answer.text[:300]}")
        return face_verdict(answer.json())

    def groups(self) -> dict[str, dict[str, Any]]:
        answer = self.http.get("/groups")
        answer.raise_for_status()
        return {group["slug"]: group for group in answer.json()}

    def reindex(self, group: str) -> str:
        answer = self.http.post("/admin/reindex", json={"group": group}, headers=self.admin)
        if answer.status_code != 202:
            raise AssertionError(f"POST /admin/reindex: {answer.status_code} {answer.text[:300]}")
        return str(answer.json()["job_id"])

    def admin_job(self, job_id: str) -> dict[str, Any]:
        answer = self.http.get(f"/admin/jobs/{job_id}", headers=self.admin)
        answer.raise_for_status()
        return dict(answer.json())

    def job(self, job_id: str) -> dict[str, Any]:
        answer = self.http.get(f"/jobs/{job_id}")
        answer.raise_for_status()
        return dict(answer.json())


def face_verdict(result: dict[str, Any]) -> tuple[str, str, dict[str, int]]:
    faces = result["faces"]
    if not faces:
        raise AssertionError("no face in the answer")
    face = faces[0]
    best = face["matches"][0]["slug"] if face["matches"] else ""
    return best, str(face["verdict"]), dict(result["index_versions"])


def poll(what: str, probe: Callable[[], T | None], *, timeout_s: float, every_s: float = 1.0) -> T:
    """Call probe until it returns something other than None, or fail after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(every_s)
