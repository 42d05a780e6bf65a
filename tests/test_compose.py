"""docker/: static checks of the path that would run (no Docker engine on the CI machines).

PyYAML parses docker/compose.yaml: every variable of the settings table reaches the Dagster
services, secrets come only from variables, only the webserver and the metrics exporter publish
ports (on PUBLISH_ADDR), MongoDB runs as the replica set the services' URI names, the `demo`
profile's replays are what docker/demo.env points at, the landing areas are bind mounts at the
configured paths, and the image's build inputs exist and leave out only what no container imports.
`docker compose config` runs too where a Compose v2 CLI is installed.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from marketdata_assets.apps import demo
from marketdata_assets.core import settings
from marketdata_assets.core.settings import SETTINGS
from marketdata_assets.replay.alpha_api import default_password, default_user
from marketdata_assets.sources.alpha_api import credential_vars, parse_account_names

REPO = settings.PROJECT_ROOT
DOCKER = REPO / "docker"
COMPOSE_TEXT = (DOCKER / "compose.yaml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, dict] = COMPOSE["services"]

# The containers running the project with the settings table's environment.
DAGSTER_SERVICES = ("code-location", "webserver", "daemon", "metrics")
# Live capture (--profile live): the collector and the consumer run the project with the same environment.
LIVE_SERVICES = ("collector", "live-consumer")
# Services outside the default stack, by profile.
OPTIONAL = {
    "replays": ["demo"],
    "nats": ["live"],
    "collector": ["live"],
    "live-consumer": ["live"],
    "redis": ["cache"],
}
DATABASES = ("mongodb", "clickhouse", "timescaledb", "dagster-postgres")
PUBLISHED = ("webserver", "metrics")
LANDING_SETTINGS = ("MINUTE_BARS_LANDING_DIR", "BINANCE_DUMPS_LANDING_DIR", "ALPHA_LANDING_DIR")
KNOWN = {s.name for s in SETTINGS}
SECRETS = {s.name for s in SETTINGS if s.secret}
ACCOUNT_VAR = re.compile(r"ALPHA_API_(USER|PASSWORD)_[A-Z0-9_]+$")
# The database images' own password variables, secrets too.
DATABASE_SECRETS = {"POSTGRES_PASSWORD", "MONGO_INITDB_ROOT_PASSWORD", "CLICKHOUSE_PASSWORD"}
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}
REFERENCE = re.compile(r"^\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}$")
# Packages docker/requirements.py leaves out, and the modules they would bring.
LEFT_OUT_MODULES = {
    "chdb": ("chdb", "chdb_core"),
    "dagster-dg-cli": ("dagster_dg_cli", "dagster_dg_core", "dagster_cloud_cli"),
}


def environment(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {name: ("" if value is None else str(value)) for name, value in env.items()}


def command(service: str) -> list[str]:
    cmd = SERVICES[service].get("command") or []
    return cmd.split() if isinstance(cmd, str) else [str(part) for part in cmd]


def flag(cmd: list[str], name: str) -> str | None:
    return cmd[cmd.index(name) + 1] if name in cmd and cmd.index(name) + 1 < len(cmd) else None


def bind_mounts(service: str) -> list[tuple[str, str]]:
    """(source, target) of the service's bind mounts, long or short syntax."""
    mounts = []
    for volume in SERVICES[service].get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                mounts.append((str(volume["source"]), str(volume["target"])))
        else:
            source, target = str(volume).split(":")[:2]
            if source.startswith((".", "/", "~", "$")):
                mounts.append((source, target))
    return mounts


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"{path.name}: not NAME=value: {line!r}"
            values[name.strip()] = value.strip()
    return values


def load_requirements_module():
    spec = importlib.util.spec_from_file_location("docker_requirements", DOCKER / "requirements.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compose_file_has_the_services():
    assert set(DAGSTER_SERVICES) | set(DATABASES) | {"replays"} <= set(SERVICES), sorted(SERVICES)


@pytest.mark.parametrize("service", DAGSTER_SERVICES + LIVE_SERVICES)
def test_every_setting_is_wired_into_the_dagster_services(service):
    env = environment(service)
    missing = [s.name for s in SETTINGS if not s.stack_only and s.name not in env]
    assert not missing, f"service {service}: settings not in its environment: {missing}"
    assert env["DAGSTER_HOME"] == "/opt/dagster/dagster_home", f"service {service}: DAGSTER_HOME"


def test_secrets_come_from_variables_never_literal_values():
    for service in SERVICES:
        for name, value in environment(service).items():
            if name not in SECRETS | DATABASE_SECRETS and not name.startswith("ALPHA_API_PASSWORD_"):
                continue
            match = REFERENCE.match(value)
            assert match, f"service {service}: secret {name} is the literal {value!r}, not a ${{VARIABLE}}"
            assert match["op"] not in ("-", ":-") or match["arg"] == "", (
                f"service {service}: secret {name} has the non-empty default {match['arg']!r}"
            )
            if name in SECRETS or name.startswith("ALPHA_API_PASSWORD_"):
                assert match["name"] == name, (
                    f"service {service}: secret {name} is read from ${{{match['name']}}}"
                )


@pytest.mark.parametrize(
    ("database", "variable", "setting"),
    [
        ("dagster-postgres", "POSTGRES_USER", "DAGSTER_PG_USER"),
        ("dagster-postgres", "POSTGRES_PASSWORD", "DAGSTER_PG_PASSWORD"),
        ("dagster-postgres", "POSTGRES_DB", "DAGSTER_PG_DB"),
        ("timescaledb", "POSTGRES_USER", "TIMESCALE_USER"),
        ("timescaledb", "POSTGRES_PASSWORD", "TIMESCALE_PASSWORD"),
        ("timescaledb", "POSTGRES_DB", "TIMESCALE_DB"),
        ("mongodb", "MONGO_INITDB_ROOT_USERNAME", "MONGODB_USERNAME"),
        ("mongodb", "MONGO_INITDB_ROOT_PASSWORD", "MONGODB_PASSWORD"),
        ("clickhouse", "CLICKHOUSE_USER", "CLICKHOUSE_USER"),
        ("clickhouse", "CLICKHOUSE_PASSWORD", "CLICKHOUSE_PASSWORD"),
        ("clickhouse", "CLICKHOUSE_DB", "CLICKHOUSE_DATABASE"),
    ],
)
def test_databases_are_set_up_with_the_credentials_the_dagster_services_use(database, variable, setting):
    server = environment(database).get(variable)
    for service in DAGSTER_SERVICES:
        assert environment(service)[setting] == server, (
            f"service {database}: {variable}={server!r} but service {service} gets "
            f"{setting}={environment(service)[setting]!r}"
        )


def test_only_the_webserver_and_the_metrics_exporter_publish_ports_on_publish_addr():
    for service, config in SERVICES.items():
        ports = config.get("ports") or []
        assert config.get("network_mode") != "host", f"service {service} uses the host network"
        if service in PUBLISHED:
            assert ports, f"service {service} publishes no port"
        else:
            assert not ports, f"service {service} publishes {ports}; only {PUBLISHED} may"
        for binding in ports:
            assert isinstance(binding, str) and binding.startswith("${PUBLISH_ADDR"), (
                f"service {service}: port binding {binding!r} does not start with ${{PUBLISH_ADDR"
            )
    override = yaml.safe_load((DOCKER / "compose.publish-dbs.yaml").read_text())["services"]
    for service, config in override.items():
        for binding in config.get("ports") or []:
            assert binding.startswith("${PUBLISH_ADDR"), (
                f"compose.publish-dbs.yaml: service {service}: {binding!r} not bound to ${{PUBLISH_ADDR"
            )


def test_mongodb_is_a_replica_set_that_the_dagster_services_name():
    cmd = command("mongodb")
    replica_set = flag(cmd, "--replSet")
    assert replica_set, f"service mongodb: no --replSet in {cmd}"
    # Access control is on (a root user), and a replica set with access control needs a keyfile.
    assert environment("mongodb").get("MONGO_INITDB_ROOT_PASSWORD"), "service mongodb: no root password"
    assert flag(cmd, "--keyFile"), f"service mongodb: --replSet with auth but no --keyFile in {cmd}"
    check = " ".join(SERVICES["mongodb"]["healthcheck"]["test"])
    assert "rs.initiate" in check and f"'{replica_set}'" in check, (
        f"service mongodb: the healthcheck does not initiate replica set {replica_set}"
    )
    assert "isWritablePrimary" in check, "service mongodb: healthy before it is PRIMARY"
    for service in DAGSTER_SERVICES:
        uri = environment(service)["MONGODB_URI"]
        query = parse_qs(urlsplit(uri).query)
        assert query.get("replicaSet") == [replica_set] or query.get("directConnection") == ["true"], (
            f"service {service}: MONGODB_URI={uri} names neither replicaSet={replica_set} "
            "nor directConnection=true"
        )


def test_dagster_services_start_after_healthy_databases():
    depends = SERVICES["code-location"]["depends_on"]
    for database in DATABASES:
        assert depends.get(database, {}).get("condition") == "service_healthy", (
            f"service code-location does not wait for a healthy {database}"
        )
        assert "healthcheck" in SERVICES[database], f"service {database} has no healthcheck"
    for service in ("webserver", "daemon"):
        condition = SERVICES[service]["depends_on"].get("code-location", {}).get("condition")
        assert condition == "service_healthy", f"service {service} does not wait for a healthy code-location"
    assert SERVICES["metrics"]["depends_on"]["dagster-postgres"]["condition"] == "service_healthy", (
        "service metrics does not wait for the instance's storage"
    )


def test_demo_profile_serves_the_replays_that_demo_env_points_at():
    replays = SERVICES["replays"]
    assert replays.get("profiles") == ["demo"], f"service replays: profiles {replays.get('profiles')}"
    profiles = {s: config["profiles"] for s, config in SERVICES.items() if config.get("profiles")}
    assert profiles == OPTIONAL, f"services in profiles {profiles}: the default stack would lack them"
    assert "env_file" not in replays, "service replays: env_file would change the credentials it accepts"
    cmd = command("replays")
    assert cmd[:4] == ["python", "-m", "marketdata_assets.apps.demo", "replays"], (
        f"service replays: command {cmd}"
    )
    assert flag(cmd, "--host") == "0.0.0.0", "service replays: listens on loopback only"
    ports = {
        server: int(flag(cmd, f"--{server}-port")) for server in ("alpha", "crypto", "stocks", "archive")
    }
    accounts_ref = REFERENCE.match(environment("replays").get("ALPHA_API_ACCOUNTS", ""))
    assert accounts_ref and accounts_ref["name"] == "ALPHA_API_ACCOUNTS", (
        "service replays: ALPHA_API_ACCOUNTS is not interpolated (demo.env's accounts would not reach it)"
    )

    env = read_env_file(DOCKER / "demo.env")
    for name in env:
        assert name in KNOWN or ACCOUNT_VAR.match(name), f"demo.env: {name} is not a setting"
        for service in DAGSTER_SERVICES:
            reference = REFERENCE.match(environment(service).get(name, ""))
            assert reference and reference["name"] == name, (
                f"demo.env: {name} does not reach service {service} (not ${{{name}...}} in its environment)"
            )
    assert env.get("MARKETDATA_DEMO") == "on", "demo.env: MARKETDATA_DEMO"
    for source in demo.SOURCES:
        url = env.get(source.base_url_var)
        assert url, f"demo.env: {source.base_url_var} missing ({source.name} would reach the vendor)"
        parts = urlsplit(url)
        assert (parts.hostname, parts.port) == ("replays", ports[source.server]), (
            f"demo.env: {source.base_url_var}={url}, but the {source.server} replay is "
            f"replays:{ports[source.server]}"
        )
    assert env.get("TUSHARE_TOKEN") == demo.REPLAY_TUSHARE_TOKEN, "demo.env: TUSHARE_TOKEN"
    names = parse_account_names(env.get("ALPHA_API_ACCOUNTS", ""))
    assert names, "demo.env: ALPHA_API_ACCOUNTS"
    for name in names:
        user_var, password_var = credential_vars(name)
        assert env.get(user_var) == default_user(name), f"demo.env: {user_var}"
        assert env.get(password_var) == default_password(name), f"demo.env: {password_var}"


def _host_port(url: str) -> tuple[str | None, int | None]:
    parts = urlsplit(url)
    return parts.hostname, parts.port


def test_the_live_profile_collects_into_its_nats_and_the_state_the_dagster_services_read():
    nats = command("nats")
    assert "-js" in nats and "-p" not in nats, f"service nats: JetStream off or not on 4222: {nats}"
    store = flag(nats, "-sd")
    assert store and any(str(v).endswith(f":{store}") for v in SERVICES["nats"]["volumes"]), (
        f"service nats: its JetStream store {store} is not on a volume: a restart would lose the stream"
    )
    assert "js-enabled-only" in " ".join(SERVICES["nats"]["healthcheck"]["test"])
    state = environment("code-location")["MARKETDATA_STATE_DIR"]
    for service in (*DAGSTER_SERVICES, *LIVE_SERVICES):
        assert _host_port(environment(service)["NATS_URL"]) == ("nats", 4222), f"service {service}: NATS_URL"
    for service in LIVE_SERVICES:
        env, config = environment(service), SERVICES[service]
        assert env["MARKETDATA_STATE_DIR"] == state and f"marketdata-state:{state}" in config["volumes"], (
            f"service {service}: its landing/state is not the volume the Dagster services read"
        )
        assert config["depends_on"]["nats"]["condition"] == "service_healthy", (
            f"service {service}: waits for nats"
        )
    assert command("collector")[:2] == ["marketdata", "collect"] and flag(
        command("collector"), "--metrics-host"
    ) == ("0.0.0.0"), f"service collector: command {command('collector')}"
    assert command("live-consumer") == ["marketdata", "consume"]
    assert SERVICES["live-consumer"]["depends_on"]["clickhouse"]["condition"] == "service_healthy"
    port = environment("collector")["COLLECTOR_METRICS_PORT"]
    assert f"127.0.0.1:{port}/health" in " ".join(SERVICES["collector"]["healthcheck"]["test"])
    for service in DAGSTER_SERVICES:  # the live_collector_status sensor asks the collector service
        env = environment(service)
        assert (env["COLLECTOR_METRICS_HOST"], env["COLLECTOR_METRICS_PORT"]) == ("collector", port), service
    assert _host_port(environment("collector")["REDIS_URL"]) == ("redis", 6379)
    redis = command("redis")
    assert flag(redis, "--save") == "" and flag(redis, "--appendonly") == "no", (
        f"service redis: persists: {redis}"
    )
    # both let in only the clients holding the token/password the services get
    assert (
        REFERENCE.match(flag(nats, "--auth"))["name"]
        == "NATS_TOKEN"
        == REFERENCE.match(environment("collector")["NATS_TOKEN"])["name"]
    ), f"service nats: no token: {nats}"
    assert (
        REFERENCE.match(flag(redis, "--requirepass"))["name"]
        == "REDIS_PASSWORD"
        == REFERENCE.match(environment("collector")["REDIS_PASSWORD"])["name"]
    ), f"service redis: no password: {redis}"


@pytest.mark.parametrize("service", ("code-location", "webserver", "daemon"))
def test_landing_areas_are_bind_mounts_at_the_configured_paths(service):
    env = environment(service)
    mounts = {target: source for source, target in bind_mounts(service)}
    landing = {env[name] for name in LANDING_SETTINGS}
    for name in LANDING_SETTINGS:
        path = env[name]
        assert path.startswith("/") and "$" not in path, (
            f"service {service}: {name}={path!r} is not a fixed path"
        )
        assert path in mounts, f"service {service}: {name}={path} is not a bind mount"
        assert mounts[path].startswith("${LANDING_HOST_DIR"), (
            f"service {service}: {name} is mounted from {mounts[path]}, not under ${{LANDING_HOST_DIR}}"
        )
    for target, source in mounts.items():
        if "landing" in target or "LANDING" in source:
            assert target in landing, (
                f"service {service}: bind mount {source}:{target} is no landing setting's path"
            )


def test_dockerfile_copies_files_that_exist():
    copies = []
    for line in (DOCKER / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            parts = [p for p in line.split()[1:] if not p.startswith("--")]
            copies.append((parts[:-1], parts[-1]))
    for sources, _ in copies:
        for source in sources:
            assert (REPO / source).exists(), f"Dockerfile: COPY {source}: no such file in the build context"
    instance = [sources for sources, dest in copies if dest == "${DAGSTER_HOME}/dagster.yaml"]
    assert instance == [[settings.INSTANCE_YAML.relative_to(REPO).as_posix()]], (
        f"Dockerfile: the instance's dagster.yaml is copied from {instance}, not instance/dagster.yaml"
    )


def _dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule, closely enough: a pattern excludes a path when it matches it or a parent."""
    parts = path.split("/")
    ignored = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw.lstrip("!").strip("/")
        candidates = [pattern] + ([pattern[3:]] if pattern.startswith("**/") else [])
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        if any(fnmatch.fnmatchcase(prefix, candidate) for prefix in prefixes for candidate in candidates):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_local_state_out_and_the_image_inputs_in():
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for path in (
        ".env",
        "docker/.env",
        ".venv/bin/python",
        ".stack/run/x.pid",
        ".git/HEAD",
        "docker/landing/minute_bars/a.csv",
        "tests/test_compose.py",
        "marketdata_assets/__pycache__/x.pyc",
        "scripts/pglite/node_modules/x",
        ".pytest_cache/v",
        "docs/_build/index.html",
    ):
        assert _dockerignored(path, patterns), f".dockerignore: {path} would be sent into the build context"
    for path in (
        "pyproject.toml",
        "README.md",
        "instance/dagster.yaml",
        "marketdata_assets/definitions.py",
        "marketdata_assets/sources/data_providers.yaml",
        "docker/workspace.docker.yaml",
        "docker/requirements.py",
    ):
        assert not _dockerignored(path, patterns), f".dockerignore: {path} is excluded but the image needs it"


def test_image_leaves_out_only_packages_no_container_imports(tmp_path):
    requirements = load_requirements_module()
    assert set(requirements.NOT_IN_IMAGE) == set(LEFT_OUT_MODULES), "name the modules of each left-out one"
    runtime = requirements.runtime_requirements(REPO / "pyproject.toml")
    installed = {requirements.requirement_name(requirement) for requirement in runtime}
    for name in requirements.NOT_IN_IMAGE:
        assert requirements.canonical(name) not in installed, (
            f"docker/requirements.py: {name} still installed"
        )
    for needed in ("dagster", "dagster-webserver", "dagster-postgres", "pymongo", "clickhouse-connect"):
        assert needed in installed, f"docker/requirements.py: {needed} left out"
    blocked = sorted(module for modules in LEFT_OUT_MODULES.values() for module in modules)
    # What the containers run: the code server loading the definitions, the dagster, dagster-webserver and
    # dagster-daemon CLIs, the pools, the metrics exporter, the demo replays and `marketdata collect` /
    # `marketdata consume` (--profile live).
    script = textwrap.dedent(f"""
        import importlib, importlib.abc, sys
        BLOCKED = {blocked!r}
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"{{name}} is not in the image (docker/requirements.py)")
        sys.meta_path.insert(0, Block())
        from marketdata_assets.definitions import defs
        assert defs().resolve_all_asset_keys()
        for module in ("dagster._cli", "dagster._cli.code_server", "dagster._cli.api",
                       "dagster_webserver.cli", "dagster._daemon.cli",
                       "marketdata_assets.orchestration.pools", "marketdata_assets.apps.exporter",
                       "marketdata_assets.apps.demo", "marketdata_assets.replay.alpha_api",
                       "marketdata_assets.replay.crypto", "marketdata_assets.replay.stocks",
                       "marketdata_assets.apps.cli.live", "marketdata_assets.apps.live",
                       "marketdata_assets.apps.collector", "marketdata_assets.ingest.live.consume.consumer"):
            importlib.import_module(module)
        print("ok")
    """)
    env = {
        **os.environ,
        "CLICKHOUSE_DSN": "http://clickhouse:8123",
        "MARKETDATA_STATE_DIR": str(tmp_path / "state"),
        "DAGSTER_HOME": str(tmp_path),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and "ok" in done.stdout, (
        f"without {sorted(LEFT_OUT_MODULES)} the containers fail:\n{done.stderr[-3000:]}"
    )


def _compose_variables(text: str) -> set[str]:
    return set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", text))


def test_env_example_names_the_variables_compose_reads():
    example = DOCKER / ".env.example"
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", example.read_text(), re.MULTILINE))
    read = _compose_variables(COMPOSE_TEXT)
    read |= _compose_variables((DOCKER / "compose.publish-dbs.yaml").read_text())
    undocumented = sorted(
        name for name in read - documented if name not in KNOWN and not ACCOUNT_VAR.match(name)
    )
    assert not undocumented, f".env.example: compose reads {undocumented}, which it does not mention"
    unknown = sorted(
        name
        for name in documented - read - KNOWN
        if not ACCOUNT_VAR.match(name) and not name.startswith("COMPOSE_")
    )
    assert not unknown, f".env.example: {unknown} are read by nothing"
    values = read_env_file(example)
    for name in ("DAGSTER_PG_PASSWORD", "TIMESCALE_PASSWORD", "MONGODB_PASSWORD", "CLICKHOUSE_PASSWORD"):
        assert values.get(name) == "", f".env.example: {name} must be empty (no shared default password)"


def _compose_cli() -> list[str] | None:
    for cli in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(cli[0]) is None:
            continue
        try:
            version = subprocess.run(
                [*cli, "version"], check=False, capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if version.returncode == 0 and re.search(r"v?2\.\d+", version.stdout):
            return cli
    return None


def test_docker_compose_config_accepts_the_files(tmp_path):
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no Docker Compose v2 CLI on this machine")
    env_file = tmp_path / "test.env"
    env_file.write_text(
        re.sub(r"(?m)^(\w+_PASSWORD)=$", r"\1=not-a-real-password", (DOCKER / ".env.example").read_text())
    )
    for args in (
        ["config", "--quiet"],
        ["--env-file", str(DOCKER / "demo.env"), "--profile", "demo", "config", "--quiet"],
        ["-f", "compose.yaml", "-f", "compose.publish-dbs.yaml", "config", "--quiet"],
        ["-f", "compose.yaml", "-f", "compose.mongodb-rs.yaml", "config", "--quiet"],
    ):
        done = subprocess.run(
            [*cli, "--env-file", str(env_file), *args],
            check=False,
            cwd=DOCKER,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"docker compose {' '.join(args)}: {done.stderr}"
