"""Which index version each group serves, per process. Every lookup asks the database which versions are active
(one indexed query) and swaps a newer one in with one assignment, so requests in flight keep the version they
started with, and a version activated or deactivated elsewhere (a re-index, a member deleted) is served from the
very next request on, in every process. The local files are only a cache: checked against the sha256 published in
the database, and rebuilt from the database when missing or different (a worker on another host has never seen
them)."""

from __future__ import annotations

import logging
import threading
import time

from lookalike.config import Settings
from lookalike.db import repository as repo
from lookalike.db.engine import get_engine, session_scope
from lookalike.errors import NoIndex, NotFound
from lookalike.index import store
from lookalike.index.builder import rebuild_version
from lookalike.index.gallery import GalleryIndex

log = logging.getLogger(__name__)
# How stale the served versions may be, in seconds. 0: checked on every lookup. A diagnosis already reads and
# writes its job row, so one more small query costs little, while any staleness would let a deleted member be
# named by the next diagnosis after the DELETE answered (on another host, where no one can force a refresh).
REFRESH_S = 0.0


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
        active = self._active()
        served = self._loaded
        if {g: v.id for g, v in active.items()} == {g: i.version_id for g, i in served.items()}:
            self._checked = time.monotonic()
            return served  # the common case: nothing changed, no lock taken
        with self._lock:
            # Asked again under the lock: a thread that read the database earlier must not swap an older
            # version back in after another one swapped the newer in.
            active = self._active()
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

    def _active(self) -> dict[str, repo.ActiveVersion]:
        with get_engine(self.settings.sqlalchemy_url).connect() as conn:
            return repo.active_versions(conn, self.model_pack)

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
