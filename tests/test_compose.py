"""Docker Compose files, the image's Dockerfile and .env.example: structure checks that need no Docker engine.

They parse the files and hold them against the code: commands against the CLI, LOOKALIKE_* variables against
Settings, the GPU overlay against the base file. `docker compose config` runs too where the compose CLI exists.
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
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from typer.testing import CliRunner

from lookalike import cli
from lookalike.config import Settings
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


def dockerfile_of(service: dict[str, Any]) -> tuple[Path, Path]:
    build = service["build"]
    if isinstance(build, str):
        build = {"context": build}
    context = (BASE.parent / build.get("context", ".")).resolve()
    return context, context / build.get("dockerfile", "Dockerfile")


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
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


def args_of(dockerfile: Path, instruction: str) -> list[str]:
    return [rest for word, rest in instructions(dockerfile) if word == instruction]


def exec_form(text: str) -> list[str]:
    return list(json.loads(text)) if text.startswith("[") else shlex.split(text)


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    if command is None:
        _, dockerfile = dockerfile_of(service)
        cmds = args_of(dockerfile, "CMD")
        assert cmds, f"{dockerfile} has no CMD and the service sets no command"
        return exec_form(cmds[-1])
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


def test_compose_spec_files_have_no_version_key() -> None:
    assert "version" not in BASE_DOC
    assert "version" not in GPU_DOC
    assert BUILT == ["gateway", "migrate"]


@pytest.mark.parametrize("name", BUILT)
def test_commands_resolve(name: str) -> None:
    assert_entry_point(command_of(SERVICES[name]))


def test_dockerfile_cmd_resolves() -> None:
    _, dockerfile = dockerfile_of(SERVICES["gateway"])
    assert_entry_point(exec_form(args_of(dockerfile, "CMD")[-1]))


@pytest.mark.parametrize("name", BUILT)
def test_dockerfiles_exist_and_copy_what_exists(name: str) -> None:
    context, dockerfile = dockerfile_of(merged(name))
    assert dockerfile.is_file(), dockerfile
    ignored = [p.rstrip("/") for p in DOCKERIGNORE.read_text().splitlines() if p and not p.startswith(("#", "!"))]
    for copy in args_of(dockerfile, "COPY"):
        *sources, _dest = [t for t in shlex.split(copy) if not t.startswith("--")]
        for src in sources:
            assert (context / src).exists(), f"COPY {src}: not in the build context"
            assert not any(fnmatch.fnmatch(src.rstrip("/"), p) for p in ignored), f"COPY {src}: in .dockerignore"


def test_image_runs_as_non_root_with_a_healthcheck() -> None:
    _, dockerfile = dockerfile_of(SERVICES["gateway"])
    users = args_of(dockerfile, "USER")
    assert users and users[-1] not in {"root", "0"}
    (check,) = args_of(dockerfile, "HEALTHCHECK")
    assert "/healthz" in check
    from services.gateway.routes import health

    assert "/healthz" in {route.path for route in health.router.routes}  # type: ignore[attr-defined]


def test_lookalike_variables_are_settings() -> None:
    used: dict[str, str] = {}
    for path, doc in ((BASE, BASE_DOC), (GPU, GPU_DOC)):
        for name, svc in doc["services"].items():
            used |= {v: f"{path.name}: {name}" for v in environment(svc) if v.startswith(PREFIX)}
        used |= {v: f"{path.name}: ${{{v}}}" for v in INTERPOLATION.findall(path.read_text())}
    _, dockerfile = dockerfile_of(SERVICES["gateway"])
    for env in args_of(dockerfile, "ENV"):
        used |= {
            k: "Dockerfile ENV" for k, _, _ in (t.partition("=") for t in shlex.split(env)) if k.startswith(PREFIX)
        }
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


def test_gateway_does_not_enable_the_distributed_mode_yet() -> None:
    # The runtime refuses LOOKALIKE_BROKER_URL until the Celery runner and the worker services exist.
    for path, doc in ((BASE, BASE_DOC), (GPU, GPU_DOC)):
        for name, svc in doc["services"].items():
            assert "LOOKALIKE_BROKER_URL" not in environment(svc), f"{path.name}: {name}"


def test_gpu_overlay_only_touches_what_it_must() -> None:
    assert set(GPU_DOC) == {"services"}
    assert set(GPU_SERVICES) <= set(SERVICES)
    assert set(GPU_SERVICES) == {"gateway"}
    for name, svc in GPU_SERVICES.items():
        assert set(svc) <= GPU_KEYS, f"{name}: {set(svc) - GPU_KEYS}"


def test_gpu_overlay_swaps_the_runtime_and_reserves_a_gpu() -> None:
    gateway = GPU_SERVICES["gateway"]
    _, dockerfile = dockerfile_of(merged("gateway"))
    declared = dict(a.partition("=")[::2] for a in args_of(dockerfile, "ARG"))
    assert declared.get("ORT_PACKAGE") == "onnxruntime"
    assert set(gateway["build"]) == {"args"}
    assert set(gateway["build"]["args"]) <= set(declared)
    assert gateway["build"]["args"]["ORT_PACKAGE"] == "onnxruntime-gpu"
    (device,) = gateway["deploy"]["resources"]["reservations"]["devices"]
    assert device == {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
    env = environment(gateway)
    assert env["LOOKALIKE_MODEL_PACK"] == "buffalo_l"
    providers = Settings(providers=env["LOOKALIKE_PROVIDERS"]).providers
    assert providers == list(PREFERRED)
    # The migration container keeps the CPU image.
    assert "args" not in merged("migrate")["build"]


def test_healthchecks() -> None:
    for name, probe in (("postgres", "pg_isready"), ("redis", "redis-cli")):
        test = SERVICES[name]["healthcheck"]["test"]
        assert test[0] in {"CMD", "CMD-SHELL"}
        assert probe in " ".join(test[1:]), f"{name}: {test}"


def has_healthcheck(name: str) -> bool:
    svc = SERVICES[name]
    if "healthcheck" in svc:
        return not svc["healthcheck"].get("disable", False)
    return "build" in svc and bool(args_of(dockerfile_of(svc)[1], "HEALTHCHECK"))


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
    assert SERVICES["gateway"]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}


def test_restart_policies_are_strings() -> None:
    # YAML reads an unquoted `restart: no` as False, which Compose rejects.
    for name, svc in SERVICES.items():
        if "restart" in svc:
            assert svc["restart"] in {"no", "always", "on-failure", "unless-stopped"}, f"{name}: {svc['restart']!r}"


def test_gateway_wiring() -> None:
    gateway, postgres = SERVICES["gateway"], SERVICES["postgres"]
    assert "8000:8000" in gateway["ports"]
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
    mounts = {v.split(":")[1]: v.split(":")[0] for v in gateway["volumes"]}
    assert mounts.keys() >= {env["LOOKALIKE_DATA_DIR"], env["LOOKALIKE_MODEL_ROOT"]}
    assert env["LOOKALIKE_DATA_DIR"] == "/data"
    assert env["LOOKALIKE_MODEL_ROOT"] == "/home/app/.insightface"


def test_named_volumes_are_declared() -> None:
    declared = set(BASE_DOC.get("volumes") or {})
    for name, svc in SERVICES.items():
        for volume in svc.get("volumes") or []:
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source and not source.startswith((".", "/", "~")):
                assert source in declared, f"{name}: volume {source} is not declared"


def test_docker_compose_config() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker CLI")
    version = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=60)
    if version.returncode != 0:
        pytest.skip(f"no `docker compose` plugin: {(version.stderr or version.stdout).strip()[:200]}")
    run = subprocess.run(
        [docker, "compose", "-f", BASE.name, "-f", GPU.name, "config", "-q"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if run.returncode != 0 and re.search(r"docker daemon|docker\.sock|Cannot connect", run.stderr, re.IGNORECASE):
        pytest.skip(f"docker compose config needs an engine here: {run.stderr.strip()[:200]}")
    assert run.returncode == 0, run.stderr
