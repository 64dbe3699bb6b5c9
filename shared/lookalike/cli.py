"""`lookalike`: serve, ingest, reindex, diagnose, eval, models, migrate."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from lookalike.config import get_settings
from lookalike.errors import LookalikeError

app = typer.Typer(help="Face-lookalike diagnosis: which gallery members does each face resemble?", no_args_is_help=True)
models_app = typer.Typer(help="Model packs.", no_args_is_help=True)
app.add_typer(models_app, name="models")
err = Console(stderr=True)


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
) -> None:
    """Run the gateway (embedded mode: in-process worker pool, SQLite, local index)."""
    import uvicorn

    settings = get_settings()
    if demo:
        load_demo()
    uvicorn.run(
        "services.gateway.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        log_level="info",
    )


def load_demo() -> None:
    """Ingest the demo gallery shipped in the repository unless a group exists already."""
    from lookalike.db import repository as repo
    from lookalike.db.engine import session_scope
    from lookalike.db.migrate import ROOT, upgrade

    settings = get_settings()
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

    settings = get_settings()
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

    settings = get_settings()
    pack = resolve_pack(settings.model_pack, model_root=settings.model_root, download=False).name
    with session_scope(settings.sqlalchemy_url) as session:
        groups = [group] if group else [g.slug for g in repo.list_groups(session)]
    try:
        for slug in groups:
            built = reindex_group(settings, slug, model_pack=pack)
            err.print(
                f"group {slug}: version {built.version_id} active, {built.n_faces} faces of {built.n_members} "
                f"members, threshold {built.threshold:.3f}"
            )
    except LookalikeError as exc:
        fail(exc)


@app.command()
def diagnose(
    image: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    group: Annotated[str | None, typer.Option("--group")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result JSON")] = False,
) -> None:
    """Diagnose one photo against the served galleries."""
    from lookalike.db.migrate import upgrade
    from lookalike.runtime import build_context

    settings = get_settings()
    upgrade(settings.sqlalchemy_url)
    ctx = build_context(settings)
    try:
        result = ctx.pipeline.diagnose(image.read_bytes(), galleries=ctx.registry.galleries(group))
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
        verdict = "resembles" if face.verdict == "match" else "resembles nobody closely; nearest is"
        line = f"face {n} at {[round(v) for v in face.box]}: {verdict}"
        if best:
            line += f" {best.name} ({best.group}) {best.resemblance:.0f}% (cos {best.similarity:.3f})"
        print(line)
        for other in face.matches[1:]:
            print(f"    then {other.name} {other.resemblance:.0f}% (cos {other.similarity:.3f})")


@app.command("eval")
def evaluate(
    directory: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="DIR/<identity>/<photos>")],
    impostors: Annotated[int, typer.Option(help="Leave the last N identities out of the gallery")] = 0,
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
                report = identification(settings, pipeline, directory, impostors=impostors, progress_total=start)
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
    for name in ("buffalo_s", "buffalo_l"):
        try:
            pack = resolve_pack(name, model_root=settings.model_root, download=False)
            present = all(p.is_file() for p in pack.files)
            where = f"{pack.detector.parent} ({'present' if present else 'not downloaded'})"
        except LookalikeError as exc:
            where = exc.message
        mark = "*" if name == settings.model_pack else " "
        print(f"{mark} {name:10} {where}")
    if settings.model_pack not in ("buffalo_s", "buffalo_l"):
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


def main() -> None:  # pragma: no cover - console entry for `python -m lookalike.cli`
    sys.exit(app())


if __name__ == "__main__":  # pragma: no cover
    main()
