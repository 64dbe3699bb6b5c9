"""`lookalike`: serve, ingest, reindex, diagnose, eval, models, migrate."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from lookalike.config import Settings, get_settings
from lookalike.errors import InvalidParameter, LookalikeError

app = typer.Typer(help="Face-lookalike diagnosis: which gallery members does each face resemble?", no_args_is_help=True)
models_app = typer.Typer(help="Model packs.", no_args_is_help=True)
app.add_typer(models_app, name="models")
err = Console(stderr=True)
SLUG_PATTERN = r"[a-z0-9][a-z0-9_-]{0,63}"


@contextmanager
def progress_bar(label: str) -> Iterator[Progress]:
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=not err.is_terminal,
    ) as progress:
        yield progress


def fail(exc: LookalikeError) -> None:
    err.print(f"[red]error[/red] {exc.code}: {exc.message}")
    raise typer.Exit(2)


def serial_settings(settings: Settings) -> Settings:
    """Settings for a command that analyses one photo at a time in this process (ingest, reindex, diagnose): its
    ONNX Runtime sessions get the threads a lone photo gets in the service (lone_threads, 0: the CPU count), not
    the one thread each of the service's concurrent workers keeps. ort_threads=0 (ORT decides) stays. eval and
    scrape analyse `workers` photos at once already, one thread each."""
    if settings.ort_threads == 0:
        return settings
    return settings.model_copy(update={"ort_threads": max(settings.ort_threads, settings.lone_thread_count)})


def _celery_worker(tasks_module: str, queue: str, concurrency: int, extra: list[str]) -> None:
    """Hand over to `celery worker` (exec: signals reach Celery directly, as in a container)."""
    import os

    settings = get_settings()
    if not settings.broker_url:
        err.print("[red]error[/red] LOOKALIKE_BROKER_URL is not set: workers need the distributed mode")
        raise typer.Exit(2)
    argv = [
        sys.executable, "-m", "celery", "-A", tasks_module, "worker",
        "--queues", queue, "--concurrency", str(concurrency), "--prefetch-multiplier", "1",
        "--hostname", f"{queue}@%h", "--loglevel", "INFO", *extra,
    ]  # fmt: skip
    os.execv(sys.executable, argv)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def worker(
    ctx: typer.Context,
    concurrency: Annotated[
        int | None, typer.Option(help="Processes (default: LOOKALIKE_WORKER_CONCURRENCY or cores)")
    ] = None,
) -> None:
    """Diagnose worker (queue "diagnose"); extra arguments go to `celery worker`."""
    import os

    n = concurrency or get_settings().worker_concurrency or os.cpu_count() or 1
    _celery_worker("services.worker.tasks", "diagnose", n, list(ctx.args))


@app.command("ingest-worker", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def ingest_worker(ctx: typer.Context) -> None:
    """Ingestion worker (queue "ingest": re-index); extra arguments go to `celery worker`."""
    _celery_worker("services.ingest.tasks", "ingest", 1, list(ctx.args))


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema (Alembic head)."""
    from lookalike.db.migrate import upgrade

    settings = get_settings()
    upgrade(settings.sqlalchemy_url)
    err.print(f"database at head: {settings.sqlalchemy_url.split('@')[-1]}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
    demo: Annotated[bool, typer.Option(help="Load the demo gallery first if the database has no group")] = False,
    processes: Annotated[
        int | None, typer.Option(help="Gateway processes on one port (default LOOKALIKE_PROCESSES)", min=1)
    ] = None,
) -> None:
    """Run the gateway (embedded mode: in-process worker pool, SQLite, local index)."""
    import uvicorn

    settings = get_settings()
    if processes:
        os.environ["LOOKALIKE_PROCESSES"] = str(processes)  # each process's runner must know it is not alone
    if demo:
        load_demo()
    uvicorn.run(
        "services.gateway.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        log_level="info",
        # Each process loads its own models and worker pool: one per core beats threads sharing one process.
        workers=processes or settings.processes,
        # The client address of the abuse limits: X-Forwarded-For only from the proxies named (uvicorn's own
        # default would trust it from 127.0.0.1, where any local process can forge it).
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or None,
    )


def load_demo() -> None:
    """Ingest the demo gallery shipped in the repository unless a group exists already."""
    from lookalike.db import repository as repo
    from lookalike.db.engine import session_scope
    from lookalike.db.migrate import ROOT, upgrade

    settings = serial_settings(get_settings())
    upgrade(settings.sqlalchemy_url)
    with session_scope(settings.sqlalchemy_url) as session:
        if repo.list_groups(session):
            return
    demo_dir = ROOT / "demo" / "gallery"
    slug = json.loads((ROOT / "demo" / "group.json").read_text())["slug"]
    ingest(demo_dir, group=slug)


@app.command()
def ingest(
    directory: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="DIR/<member>/<photos>")],
    group: Annotated[str, typer.Option("--group", help="Group slug")],
    reindex_after: Annotated[bool, typer.Option("--reindex/--no-reindex")] = True,
) -> None:
    """Add member photos from a folder, then publish a new index version of the group."""
    from lookalike.db.migrate import upgrade
    from lookalike.ingest.local import ingest_folder, member_folders, photo_files
    from lookalike.pipeline.pipeline import Pipeline

    settings = serial_settings(get_settings())
    upgrade(settings.sqlalchemy_url)
    pipeline = Pipeline(settings)
    total = sum(len(photo_files(f)) for f in member_folders(directory))
    try:
        with progress_bar(f"ingest {group}") as bar:
            task = bar.add_task("photos", total=total)
            report = ingest_folder(
                settings, pipeline, directory, group_slug=group, on_photo=lambda _: bar.advance(task)
            )
    except LookalikeError as exc:
        fail(exc)
    err.print(
        f"{report.members} members, {report.photos_added} photos added, {report.duplicates} duplicates, "
        f"{len(report.no_face)} without a face, {len(report.unreadable)} unreadable"
    )
    for path in report.no_face:
        err.print(f"  no face: {path}")
    if reindex_after:
        reindex(group=group)


@app.command()
def reindex(group: Annotated[str | None, typer.Option("--group", help="Only this group")] = None) -> None:
    """Build, calibrate and activate a new index version of each group (or one)."""
    from lookalike.db import repository as repo
    from lookalike.db.engine import session_scope
    from lookalike.index.builder import reindex_group
    from lookalike.models.packs import resolve_pack
    from lookalike.pipeline.pipeline import Pipeline

    settings = serial_settings(get_settings())
    pack = resolve_pack(settings.model_pack, model_root=settings.model_root, download=False).name
    # Models load only if the pack's reference crowd has not been embedded yet.
    embed = Pipeline(settings).embed_crops
    with session_scope(settings.sqlalchemy_url) as session:
        groups = [group] if group else [g.slug for g in repo.list_groups(session)]
    try:
        for slug in groups:
            _reembed(settings, slug, pack)
            built = reindex_group(settings, slug, model_pack=pack, embed=embed)
            cal = built.calibration
            err.print(
                f"group {slug}: version {built.version_id} active, {built.n_faces} faces of {built.n_members} "
                f"members, same_person threshold {built.threshold:.3f} (90% interval {cal.get('threshold_interval')}), "
                f"lookalike threshold {cal.get('lookalike_threshold')}"
            )
            for pair in built.suspect_pairs:
                err.print(
                    f"  suspect: photo {pair['photo_id']} of {pair['member']} looks like {pair['other_member']}'s "
                    f"photo {pair['other_photo_id']} ({pair['similarity']:.2f}): {pair['status']}"
                )
    except LookalikeError as exc:
        fail(exc)


def _reembed(settings: Settings, slug: str, pack: str) -> None:
    """Faces of the pack in use for the group's photos that have none (the pack changed): never mixed."""
    from lookalike.ingest.reembed import photos_to_reembed, reembed_group
    from lookalike.pipeline.pipeline import Pipeline

    todo = photos_to_reembed(settings, slug, pack)
    if todo:
        err.print(f"group {slug}: {todo} photos have no face of {pack} (the model pack changed): re-embedding them")
        done = reembed_group(settings, Pipeline(settings), slug)
        lost = f", {len(done.no_face)} without a face for {pack}" if done.no_face else ""
        err.print(f"group {slug}: {done.photos} photos re-embedded with {pack}{lost}")


VERDICT_WORDS = {
    "same_person": "could be the member themself:",
    "lookalike": "looks like",
    "no_match": "resembles nobody closely; nearest is",
}


@app.command()
def diagnose(
    images: Annotated[
        list[Path],
        typer.Argument(exists=True, dir_okay=False, help="A photo, or several photos of one person (one answer)"),
    ],
    group: Annotated[str | None, typer.Option("--group")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result JSON")] = False,
) -> None:
    """Diagnose a photo (every face in it), or several photos of one person, against the served galleries."""
    from lookalike.db.migrate import upgrade
    from lookalike.runtime import build_context

    settings = serial_settings(get_settings())
    upgrade(settings.sqlalchemy_url)
    ctx = build_context(settings)
    try:
        if len(images) > settings.max_photos:
            raise InvalidParameter(
                f"{len(images)} photos: at most {settings.max_photos} of one person", code="too_many_photos"
            )
        galleries = ctx.registry.galleries(group)
        photos = [p.read_bytes() for p in images]
        if len(photos) == 1:
            result = ctx.pipeline.diagnose(photos[0], galleries=galleries)
        else:
            result = ctx.pipeline.diagnose_person(photos, galleries=galleries)
    except LookalikeError as exc:
        if as_json:
            print(json.dumps({"error": exc.to_dict()}))
            raise typer.Exit(2) from None
        fail(exc)
    if as_json:
        print(result.model_dump_json(indent=2))
        return
    for n, face in enumerate(result.faces, 1):
        best = face.matches[0] if face.matches else None
        where = "the person" if face.boxes else f"face {n} at {[round(v) for v in face.box]}"
        line = f"{where}: {face.verdict}, {VERDICT_WORDS[face.verdict]}"
        if best:
            line += f" {best.name} ({best.group}) {best.resemblance:.0f}% (cos {best.similarity:.3f})"
        print(line)
        for other in face.matches[1:]:
            print(f"    then {other.name} {other.resemblance:.0f}% (cos {other.similarity:.3f})")


@app.command("eval")
def evaluate(
    directory: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="DIR/<identity>/<photos>")],
    impostors: Annotated[int, typer.Option(help="Leave the last N identities out of the gallery")] = 0,
    strangers: Annotated[
        list[Path] | None,
        typer.Option(
            exists=True, file_okay=False, help="DIR2/<identity>/<photos>: every photo a stranger probe (repeatable)"
        ),
    ] = None,
    pairs: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="LFW pairs file")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Measure accuracy in a temporary index (never touches the served gallery)."""
    from lookalike.evaluation import identification, verification
    from lookalike.pipeline.pipeline import Pipeline

    settings = get_settings()
    pipeline = Pipeline(settings)
    with progress_bar("eval") as bar:

        def start(total: int):  # type: ignore[no-untyped-def]
            task = bar.add_task("photos", total=total)
            return lambda n: bar.advance(task, n)

        try:
            if pairs is not None:
                report = verification(settings, pipeline, directory, pairs, progress_total=start)
            else:
                report = identification(
                    settings, pipeline, directory, impostors=impostors, strangers=strangers or [], progress_total=start
                )
        except LookalikeError as exc:
            fail(exc)
    if as_json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key:>20}: {value}")


@models_app.command("list")
def models_list() -> None:
    """Show the known packs, where their files are, and the providers ONNX Runtime offers."""
    import onnxruntime as ort

    from lookalike.models.packs import resolve_pack
    from lookalike.models.sessions import choose_providers

    settings = get_settings()
    known = ("buffalo_s", "buffalo_l", "buffalo_s-int8")
    for name in known:
        try:
            pack = resolve_pack(name, model_root=settings.model_root, download=False)
            present = all(p.is_file() for p in pack.files)
            missing = "not made yet: `lookalike models verify buffalo_s-int8`" if "int8" in name else "not downloaded"
            where = f"{pack.detector.parent} ({'present' if present else missing})"
        except LookalikeError as exc:
            where = exc.message
        mark = "*" if name == settings.model_pack else " "
        print(f"{mark} {name:14} {where}")
    if settings.model_pack not in known:
        print(f"* {settings.model_pack} (custom directory)")
    print(f"providers available: {ort.get_available_providers()}; chosen: {choose_providers(settings.providers)}")


@models_app.command("verify")
def models_verify(
    pack: Annotated[str | None, typer.Argument(help="Pack name or directory; default: the configured one")] = None,
) -> None:
    """Check every file of a pack against its sha256 and load it in ONNX Runtime."""
    from lookalike.models.packs import resolve_pack, verify_pack
    from lookalike.models.sessions import choose_providers, create_session

    settings = get_settings()
    try:
        resolved = resolve_pack(pack or settings.model_pack, model_root=settings.model_root)
        digests = verify_pack(resolved)
        providers = choose_providers(settings.providers)
        for path in resolved.files:
            create_session(path, providers=providers, threads=1)
    except LookalikeError as exc:
        fail(exc)
    for name, digest in digests.items():
        print(f"ok {name} sha256={digest}")
    print(f"pack {resolved.name} verified ({resolved.source})")


# --------------------------------------------------------------------------- administration without a token
#
# The admin API's work, for a deployment that runs without LOOKALIKE_ADMIN_TOKEN (or from the ingest host).

group_app = typer.Typer(help="Groups (galleries).", no_args_is_help=True)
member_app = typer.Typer(help="Members of a group.", no_args_is_help=True)
source_app = typer.Typer(help="Where a member's photos come from.", no_args_is_help=True)
review_app = typer.Typer(help="Photos curation flagged for a human.", no_args_is_help=True)
app.add_typer(group_app, name="group")
app.add_typer(member_app, name="member")
app.add_typer(source_app, name="source")
app.add_typer(review_app, name="review")


def _admin_settings() -> Settings:
    from lookalike.db.migrate import upgrade

    settings = get_settings()
    upgrade(settings.sqlalchemy_url)
    return settings


def _pack_name(settings: Settings) -> str:
    from lookalike.models.packs import resolve_pack

    return resolve_pack(settings.model_pack, model_root=settings.model_root, download=False).name


def _pairs(values: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            err.print(f"[red]error[/red] {what} {item!r} is not KEY=VALUE")
            raise typer.Exit(2)
        out[key] = value
    return out


def _print_deleted(deleted: dict[str, int]) -> None:
    print("deleted: " + ", ".join(f"{n} {what}" for what, n in deleted.items()))


@group_app.command("create")
def group_create(
    slug: Annotated[str, typer.Argument(help="Group slug (a-z, 0-9, _ and -)")],
    name: Annotated[str, typer.Argument(help="Display name")],
) -> None:
    """Create an empty group."""
    from lookalike import admin

    if not re.fullmatch(SLUG_PATTERN, slug):
        fail(LookalikeError(f"{slug!r} is not a slug (a-z, 0-9, _ and -, at most 64)", code="invalid_parameter"))
    try:
        admin.create_group(_admin_settings(), slug, name)
    except LookalikeError as exc:
        fail(exc)
    print(f"group {slug} created")


@group_app.command("list")
def group_list() -> None:
    """Groups with their members, photos per status and active index version."""
    from lookalike.db import repository as repo
    from lookalike.db.engine import session_scope

    settings = _admin_settings()
    with session_scope(settings.sqlalchemy_url) as session:
        active = repo.active_version_rows(session, _pack_name(settings))
        photos = repo.photo_counts(session)
        for g in repo.list_groups(session):
            version = active[g.id].id if g.id in active else None
            counts = ", ".join(f"{n} {s}" for s, n in sorted(photos.get(g.id, {}).items())) or "no photos"
            print(f"{g.slug}\t{g.name}\t{len(g.members)} members\t{counts}\tindex version {version}")


@group_app.command("delete")
def group_delete(
    slug: str,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask")] = False,
) -> None:
    """Delete a group with its members, photos, faces, sources and index versions."""
    from lookalike import admin

    if not yes:
        typer.confirm(f"delete group {slug} and everything in it?", abort=True)
    try:
        deleted = admin.delete_group(_admin_settings(), slug)
    except LookalikeError as exc:
        fail(exc)
    _print_deleted(deleted.as_dict())


@member_app.command("add")
def member_add(
    group: Annotated[str, typer.Argument(help="Group slug")],
    slug: Annotated[str, typer.Argument(help="Member slug")],
    name: Annotated[str, typer.Argument(help="Display name")],
    meta: Annotated[list[str] | None, typer.Option("--meta", help="KEY=VALUE, repeatable")] = None,
) -> None:
    """Add a member (no photos yet: add sources and scrape, or upload through the API)."""
    from lookalike import admin

    if not re.fullmatch(SLUG_PATTERN, slug):
        fail(LookalikeError(f"{slug!r} is not a slug (a-z, 0-9, _ and -, at most 64)", code="invalid_parameter"))
    try:
        member_id = admin.create_member(_admin_settings(), group, slug, name, dict(_pairs(meta or [], "meta")))
    except LookalikeError as exc:
        fail(exc)
    print(f"member {member_id} {group}/{slug} added")


@member_app.command("delete")
def member_delete(member_id: int) -> None:
    """Delete a member, its photos, faces and sources, and publish its group without it."""
    from lookalike import admin

    settings = _admin_settings()
    try:
        done = admin.delete_member(settings, member_id, model_pack=_pack_name(settings))
    except LookalikeError as exc:
        fail(exc)
    _print_deleted(done.deleted.as_dict())
    if done.index_version is not None:
        print(f"group {done.group}: index version {done.index_version} active")
    else:
        print(f"group {done.group}: no index version active (nothing usable left, or see the error)")
    if done.reindex_error:
        err.print(f"[red]error[/red] re-index: {done.reindex_error['code']}: {done.reindex_error['message']}")
        raise typer.Exit(2)


@source_app.command("add")
def source_add(
    member_id: int,
    kind: Annotated[str, typer.Argument(help="image_url, web_page, folder, zip or search")],
    value: Annotated[str, typer.Argument(help="URL, path or query")],
    option: Annotated[list[str] | None, typer.Option("--option", help="KEY=VALUE, repeatable (e.g. depth=0)")] = None,
) -> None:
    """Add a photo source to a member (validated, nothing fetched until `lookalike scrape`)."""
    from lookalike.admin import add_sources

    options: dict[str, object] = dict(_pairs(option or [], "option"))
    try:
        [source_id] = add_sources(_admin_settings(), member_id, [(kind, value, options)])
    except LookalikeError as exc:
        fail(exc)
    print(f"source {source_id} added to member {member_id}")


@source_app.command("list")
def source_list(member_id: int) -> None:
    """A member's sources, with when each was last scraped and its last error."""
    from lookalike.db import repository as repo
    from lookalike.db.engine import session_scope

    settings = _admin_settings()
    with session_scope(settings.sqlalchemy_url) as session:
        for s in repo.member_sources(session, member_id):
            print(f"{s.id}\t{s.kind}\t{s.value}\t{s.options or {}}\tlast {s.last_scraped_at}\t{s.last_error or ''}")


@app.command()
def scrape(
    member: Annotated[int | None, typer.Option("--member", help="Only this member id")] = None,
    group: Annotated[str | None, typer.Option("--group", help="Only this group")] = None,
    all_members: Annotated[bool, typer.Option("--all", help="Every active member")] = False,
) -> None:
    """Fetch, curate and publish member photos from their sources, here (the job the admin API queues)."""
    from lookalike.jobs.functions import ProgressWriter, finish, record_job, reporting, run_job
    from lookalike.jobs.runner import new_job_id
    from lookalike.runtime import build_context

    if (member is not None) + (group is not None) + all_members != 1:
        fail(LookalikeError("give exactly one of --member, --group or --all", code="invalid_parameter"))
    params: dict[str, object]
    if member is not None:
        params, scope = {"member_id": member}, f"member:{member}"
    elif group is not None:
        params, scope = {"group": group}, f"group:{group}"
    else:
        params, scope = {"all": True}, "all"
    settings = _admin_settings()
    ctx = build_context(settings)
    job_id = new_job_id()
    try:
        # A job row like the API's: the same scope cannot be scraped twice at once, and /admin/jobs shows it.
        record_job(settings, job_id=job_id, kind="scrape", params=params, lock_key=f"scrape:{scope}")
    except LookalikeError as exc:
        fail(exc)
    from lookalike.ingest.scrape import scrape_job

    store = ProgressWriter(settings, job_id)
    with progress_bar(f"scrape {scope}") as bar:
        task = bar.add_task("members", total=None)

        def progress(counts: dict[str, object]) -> None:
            store(counts)
            totals = counts.get("totals")
            stored = totals.get("stored", 0) if isinstance(totals, dict) else 0
            bar.update(
                task,
                total=counts.get("members_total"),  # type: ignore[arg-type]
                completed=counts.get("members_done", 0),  # type: ignore[arg-type]
                description=f"{counts.get('stage')} ({stored} stored)",
            )

        try:
            state = run_job(settings, job_id, reporting(lambda p: scrape_job(ctx, p, progress=progress), store))
        except BaseException:
            # Ctrl-C: end the job, or its scope would stay locked with no process to finish it.
            error = {"code": "interrupted", "message": "the scrape was interrupted", "status": 500}
            finish(settings, job_id, error=error)
            raise
    if state.status != "done" or state.result is None:
        error = state.error or {}
        fail(LookalikeError(str(error.get("message", "the scrape failed")), code=str(error.get("code", "error"))))
        return
    result = state.result
    print(_scrape_summary(result))


def _scrape_summary(result: dict[str, object]) -> str:
    lines = []
    members = result.get("members")
    if isinstance(members, dict):
        for key, c in members.items():
            refused = ", ".join(f"{r} {n}" for r, n in sorted(c["refused"].items())) or "none"
            lines.append(
                f"{key}: {c['candidates']} candidates, {c['stored']} stored, {c['duplicates']} duplicates, "
                f"{c['unreadable']} unreadable; ok {c['ok']}, flagged {c['flagged']}, rejected {c['rejected']}; "
                f"refused: {refused}"
            )
    totals = result.get("totals")
    if isinstance(totals, dict):
        lines.append(
            f"total: {totals['candidates']} candidates, {totals['stored']} stored; ok {totals['ok']}, "
            f"flagged {totals['flagged']}, rejected {totals['rejected']}; refused {sum(totals['refused'].values())}"
        )
    versions = result.get("index_versions")
    if isinstance(versions, dict):
        for group, v in versions.items():
            if "version_id" in v:
                lines.append(f"group {group}: index version {v['version_id']} active, {v['n_faces']} faces")
            else:
                lines.append(f"group {group}: no index version ({v['error']['code']})")
    return "\n".join(lines)


@review_app.command("list")
def review_list(group: Annotated[str | None, typer.Option("--group")] = None) -> None:
    """Flagged photos: id, member, reason, score, faces, where they came from."""
    from lookalike.db import repository as repo
    from lookalike.db.engine import session_scope

    settings = _admin_settings()
    with session_scope(settings.sqlalchemy_url) as session:
        rows = repo.review_queue(session, group=group, limit=10_000)
        for row in rows:
            p = row.photo
            faces = ",".join(str(f.id) for f in sorted(p.faces, key=lambda f: f.id)) or "-"
            print(
                f"{p.id}\t{row.group}/{row.member.slug}\t{p.reason}\t{p.score}\tfaces {faces}\t"
                f"{settings.photo_dir / p.path}\t{p.source_url or ''}"
            )
        err.print(f"{len(rows)} photos to review")


def _review(ids: list[int], *, approve: bool, face: int | None, reindex_after: bool) -> None:
    from lookalike import admin
    from lookalike.ingest.scrape import reindex_when_free

    settings = _admin_settings()
    groups: set[str] = set()
    try:
        for photo_id in ids:
            done = admin.review(settings, photo_id, approve=approve, face_id=face)
            groups.add(done.group)
            print(f"photo {done.photo_id}: {done.status}")
        if reindex_after:
            pack = _pack_name(settings)
            for slug in sorted(groups):
                built = reindex_when_free(settings, slug, model_pack=pack)
                print(f"group {slug}: index version {built.version_id} active, {built.n_faces} faces")
    except LookalikeError as exc:
        fail(exc)


@review_app.command("approve")
def review_approve(
    photo_ids: Annotated[list[int], typer.Argument(help="Photo ids")],
    face: Annotated[int | None, typer.Option("--face", help="The member's face id, when a photo shows several")] = None,
    reindex_after: Annotated[bool, typer.Option("--reindex/--no-reindex")] = True,
) -> None:
    """The photos show the member: keep them (and re-index their groups once)."""
    _review(photo_ids, approve=True, face=face, reindex_after=reindex_after)


@review_app.command("reject")
def review_reject(
    photo_ids: Annotated[list[int], typer.Argument(help="Photo ids")],
    reindex_after: Annotated[bool, typer.Option("--reindex/--no-reindex")] = True,
) -> None:
    """The photos do not belong to the gallery: exclude them for good (and re-index their groups once)."""
    _review(photo_ids, approve=False, face=None, reindex_after=reindex_after)


def main() -> None:  # pragma: no cover - console entry for `python -m lookalike.cli`
    sys.exit(app())


if __name__ == "__main__":  # pragma: no cover
    main()
