"""Which index version each group serves, per process. Checks the database for a newer active version at most
once a second and swaps it in with one assignment, so requests in flight keep the version they started with.
The local files are only a cache: checked against the sha256 published in the database, and rebuilt from the
database when missing or different (a worker on another host has never seen them)."""

from __future__ import annotations

import logging
import threading
import time

from lookalike.config import Settings
from lookalike.db import repository as repo
from lookalike.db.engine import session_scope
from lookalike.errors import NoIndex, NotFound
from lookalike.index import store
from lookalike.index.builder import rebuild_version
from lookalike.index.gallery import GalleryIndex

log = logging.getLogger(__name__)
REFRESH_S = 1.0


class IndexRegistry:
    def __init__(self, settings: Settings, model_pack: str) -> None:
        self.settings = settings
        self.model_pack = model_pack
        self._loaded: dict[str, GalleryIndex] = {}
        self._checked = 0.0
        self._lock = threading.Lock()

    def refresh(self, *, force: bool = False) -> dict[str, GalleryIndex]:
        if not force and time.monotonic() - self._checked < REFRESH_S:
            return self._loaded
        with self._lock:
            with session_scope(self.settings.sqlalchemy_url) as session:
                active = repo.active_versions(session, self.model_pack)
            loaded = dict(self._loaded)
            for group, version in active.items():
                current = loaded.get(group)
                if current is None or current.version_id != version.id:
                    loaded[group] = self._load(version)
                    log.info("serving index version %s of group %s", version.id, group)
            for group in set(loaded) - set(active):
                del loaded[group]
            self._loaded = loaded
            self._checked = time.monotonic()
        return self._loaded

    def _load(self, version: repo.ActiveVersion) -> GalleryIndex:
        try:
            return store.load(self.settings.index_dir / version.path, expected_sha256=version.sha256)
        except store.CorruptIndex as exc:
            log.info("index version %s not in the local cache (%s); rebuilding it from the database", version.id, exc)
            return rebuild_version(self.settings, version.id)

    def galleries(self, group: str | None = None) -> list[GalleryIndex]:
        loaded = self.refresh()
        if group is not None:
            if group not in loaded:
                loaded = self.refresh(force=True)
            if group not in loaded:
                with session_scope(self.settings.sqlalchemy_url) as session:
                    exists = repo.get_group(session, group) is not None
                if not exists:
                    raise NotFound(f"no group {group!r}", code="unknown_group")
                raise NoIndex(f"group {group!r} has no index yet: ingest photos and reindex")
            return [loaded[group]]
        if not loaded:
            raise NoIndex("no gallery is indexed yet: run `lookalike ingest` or load the demo gallery")
        return list(loaded.values())
