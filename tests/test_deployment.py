"""The deployment: docker-compose.yml, the Dagster instance files, the images, Kubernetes, Grafana provisioning.

There is no Docker engine or cluster here, so most of this reads the files the
way Compose, Dagster, Helm and Grafana would and checks what an operator relies
on: every service waits for healthy dependencies, only UIs are published, no
secret is written down, `.env.example` documents every variable. Where a real
tool can check a file offline (`docker compose config`, `kubectl kustomize`,
Dagster's own instance loader, PostgreSQL running our init script) it does.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import psycopg
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from txstream_dagster.db.logins import PIPELINE_LOGINS, Login
from txstream_dagster.db.migrate import migrate, set_login_password
from txstream_dagster.dev.embedded_postgres import EmbeddedPostgres
from txstream_dagster.dev.processes import free_port
from txstream_dagster.jvm import SPARK_KAFKA_CONNECTOR, module_jars
from txstream_dagster.run_pods import LOGIN_SECRETS, SPARK_SERVICE_ACCOUNT
from txstream_dagster.settings import Settings

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
DEPLOY = REPO / "deploy"
PRODUCTION_INSTANCE = DEPLOY / "dagster" / "dagster.yaml"
LOCAL_INSTANCE = REPO / "dagster.yaml"
HELM_VALUES = DEPLOY / "k8s" / "dagster-values.yaml"
CODE_DOCKERFILE = DEPLOY / "docker" / "dagster.Dockerfile"
SPARK_DOCKERFILE = DEPLOY / "docker" / "spark.Dockerfile"
SPARK_REQUIREMENTS = DEPLOY / "docker" / "spark-requirements.txt"
INIT_SCRIPT = DEPLOY / "postgres" / "initdb" / "10-txstream.sh"
GRAFANA = REPO / "grafana"

UI_SERVICES = {"dagster-webserver", "grafana", "spark-master"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY")
REQUIRED_REFERENCE = re.compile(r"^\$\{(?P<name>[A-Z0-9_]+):\?[^}]+\}$")
COMPOSE_REFERENCE = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)")
ENV_FILE_ENTRY = re.compile(r"^(?P<commented>#\s*)?(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")
DOCKERFILE_ARG = re.compile(r"^ARG (?P<name>[A-Z_]+)=(?P<value>\S+)$", re.MULTILINE)


# --- reading the files -------------------------------------------------------


@functools.cache
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def services() -> dict[str, dict]:
    return compose()["services"]


def is_one_shot(service: dict) -> bool:
    return service.get("restart") == "no"


def environment(name: str) -> dict:
    return services()[name].get("environment") or {}


def env_example() -> dict[str, tuple[str, bool]]:
    """NAME → (value, commented out) for every `NAME=value` or `# NAME=value` line."""
    entries = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = ENV_FILE_ENTRY.match(line.strip())
        if match:
            entries[match["name"]] = (match["value"], bool(match["commented"]))
    return entries


def settings_env_names() -> dict[str, list[str]]:
    """Settings field → the env names it is read from (any one of them documents it)."""
    prefix = Settings.model_config["env_prefix"]
    names = {}
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names[field_name] = list(alias.choices) if alias is not None else [f"{prefix}{field_name.upper()}"]
    return names


def split_url(value: str):
    """urlsplit for a URL holding ${VAR:?message} references (whose `?` and `/` would mislead it).

    Returns the parts and a function that turns a part back into the text written in the file.
    """
    references = {}

    def hide(match: re.Match) -> str:
        token = f"ref{len(references)}"
        references[token] = match.group(0)
        return token

    parts = urlsplit(re.sub(r"\$\{[^}]*\}", hide, value))
    return parts, lambda part: references.get(part, part)


def dockerfile_args(path: Path) -> dict[str, str]:
    return {match["name"]: match["value"] for match in DOCKERFILE_ARG.finditer(path.read_text())}


def dockerfile_env(path: Path, name: str) -> str:
    match = re.search(rf"\b{name}=(\S+)", path.read_text())
    assert match, f"{path.name} sets no {name}"
    return match.group(1)


def pyproject_requirements() -> dict[str, Requirement]:
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return {canonicalize_name(req.name): req for req in map(Requirement, dependencies)}


def spark_image_requirements() -> dict[str, Requirement]:
    lines = [line.split("#", 1)[0].strip() for line in SPARK_REQUIREMENTS.read_text().splitlines()]
    return {canonicalize_name(req.name): req for req in map(Requirement, filter(None, lines))}


def compose_client() -> list[str] | None:
    """`docker compose` (the plugin) or a standalone `docker-compose`, whichever answers."""
    for command in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(command[0]) is None:
            continue
        probe = subprocess.run([*command, "version"], capture_output=True, text=True, timeout=60)
        if probe.returncode == 0:
            return command
    return None


def run_compose_config(env_file: Path) -> subprocess.CompletedProcess:
    client = compose_client()
    if client is None:
        pytest.fail(
            "no Docker Compose client here (neither `docker compose` nor `docker-compose`): "
            "install one (`apt-get install docker-compose`, as .ci/run does)"
        )
    # The shell's environment would override the env file: leave out everything compose interpolates.
    referenced = set(COMPOSE_REFERENCE.findall(COMPOSE_FILE.read_text()))
    clean_env = {key: value for key, value in os.environ.items() if key not in referenced}
    return subprocess.run(
        [*client, "--env-file", str(env_file), "--file", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env,
    )


def example_env_file(tmp_path: Path, leave_out: str | None = None) -> Path:
    lines = [
        f"{name}={value}" for name, (value, commented) in env_example().items() if not commented and name != leave_out
    ]
    path = tmp_path / "compose.env"
    path.write_text("\n".join(lines) + "\n")
    return path


# --- docker-compose.yml --------------------------------------------------------


def test_compose_runs_the_whole_pipeline():
    assert {
        "postgres",
        "kafka",
        "frankfurter",
        "spark-master",
        "spark-worker",
        "txstream-init",
        "dagster-code",
        "dagster-webserver",
        "dagster-daemon",
        "grafana",
    } <= set(services())


def test_every_long_running_service_has_a_healthcheck():
    for name, service in services().items():
        if is_one_shot(service):
            continue
        healthcheck = service.get("healthcheck")
        assert healthcheck and healthcheck.get("test") and not healthcheck.get("disable"), f"{name} has no healthcheck"


def test_services_start_only_once_their_dependencies_are_healthy():
    for name, service in services().items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on must name a condition per dependency"
        for dependency, rule in depends_on.items():
            expected = "service_completed_successfully" if is_one_shot(services()[dependency]) else "service_healthy"
            assert rule.get("condition") == expected, f"{name} → {dependency} must wait for {expected}"


def test_migrations_run_before_anything_uses_the_warehouse():
    for name in ("dagster-code", "grafana"):
        assert services()[name]["depends_on"]["txstream-init"]["condition"] == "service_completed_successfully"
    assert services()["txstream-init"]["command"] == ["txstream", "up"]


def test_only_user_interfaces_are_published_and_only_on_localhost_by_default():
    published = {name for name, service in services().items() if service.get("ports")}
    assert published == UI_SERVICES
    for name in published:
        for port in services()[name]["ports"]:
            assert isinstance(port, str) and port.startswith("${UI_BIND_ADDRESS:-127.0.0.1}:"), (name, port)
    for name, service in services().items():
        assert "network_mode" not in service, f"{name} must not share the host's network"


def test_no_secret_is_written_in_the_compose_file():
    for name, service in services().items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                assert value is None or REQUIRED_REFERENCE.match(str(value)), (
                    f"{name}.{key} must be ${{{key}:?message}} (fails when unset) or passed through, not a value"
                )
            if isinstance(value, str) and "://" in value:
                url, written = split_url(value)
                assert url.password is None or REQUIRED_REFERENCE.match(written(url.password)), (
                    f"{name}.{key} holds a password"
                )


def test_kafka_runs_in_kraft_mode_without_zookeeper():
    kafka = services()["kafka"]
    image, _, tag = kafka["image"].split("@")[0].partition(":")
    assert image == "apache/kafka" and Version(tag).major >= 4
    roles = set(kafka["environment"]["KAFKA_PROCESS_ROLES"].split(","))
    assert roles == {"broker", "controller"}
    assert kafka["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"].endswith("@kafka:9093")
    assert kafka["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert not [name for name in services() if "zookeeper" in name.lower()]
    assert "zookeeper" not in yaml.safe_dump(kafka).lower()


def test_app_containers_reach_the_compose_services():
    env = environment("dagster-code")
    warehouse = urlsplit(env["TXSTREAM_POSTGRES_URL"])
    assert (warehouse.hostname, warehouse.port, warehouse.path) == ("postgres", 5432, "/txstream")
    assert env["TXSTREAM_KAFKA_BOOTSTRAP"].split(":")[0] == "kafka"
    assert env["TXSTREAM_SPARK_MASTER"] == "spark://spark-master:7077"
    assert env["TXSTREAM_FOREX_SOURCE"] == "frankfurter"
    assert urlsplit(env["TXSTREAM_FOREX_URL"]).hostname == "frankfurter"


LOGIN_PASSWORDS = {login.password_variable for login in PIPELINE_LOGINS}


def test_only_the_init_service_knows_the_owner_and_each_service_gets_only_the_logins_it_uses():
    init, code = environment("txstream-init"), environment("dagster-code")
    owner, written = split_url(init["TXSTREAM_POSTGRES_URL"])
    assert (owner.username, owner.hostname, owner.path) == ("txstream", "postgres", "/txstream")
    assert REQUIRED_REFERENCE.match(written(owner.password))["name"] == "TXSTREAM_DB_PASSWORD"
    for name, service in services().items():
        if name not in ("txstream-init", "postgres"):  # postgres creates the owner on its first start
            assert "TXSTREAM_DB_PASSWORD" not in yaml.safe_dump(service), f"{name} must not get the owner's password"
    address = urlsplit(code["TXSTREAM_POSTGRES_URL"])
    assert address.username is None and address.password is None
    # The init service sets every login's password; the code location's runs sign in as each of them.
    for env in (init, code):
        assert {key for key in env if key in LOGIN_PASSWORDS} == LOGIN_PASSWORDS
        for variable in LOGIN_PASSWORDS:
            assert REQUIRED_REFERENCE.match(env[variable])["name"] == variable
    grafana = environment("grafana")
    assert {key for key in grafana if "PASSWORD" in key and key.startswith("TXSTREAM_")} == {"TXSTREAM_READER_PASSWORD"}
    assert "STRIPE_API_KEY" in code and "STRIPE_API_KEY" not in init  # only what pulls from Stripe has the key
    # Only where the run-failure sensor is evaluated: the webhook URL carries its token.
    assert "TXSTREAM_ALERT_WEBHOOK_URL" in code and "TXSTREAM_ALERT_WEBHOOK_URL" not in init
    common = {k: v for k, v in code.items() if not k.startswith("DAGSTER_PG_") and k not in LOGIN_PASSWORDS}
    assert {k: v for k, v in init.items() if k not in LOGIN_PASSWORDS} == {
        **{k: v for k, v in common.items() if k not in ("STRIPE_API_KEY", "TXSTREAM_ALERT_WEBHOOK_URL")},
        "TXSTREAM_POSTGRES_URL": init["TXSTREAM_POSTGRES_URL"],
    }


def test_every_txstream_variable_compose_sets_is_a_setting():
    # A typo here would be ignored silently by settings.py (extra="ignore").
    known = {name for names in settings_env_names().values() for name in names}
    for name in ("dagster-code", "txstream-init"):
        unknown = {key for key in environment(name) if key.startswith(("TXSTREAM_", "STRIPE_"))} - known
        assert not unknown, f"{name} sets {unknown}, which settings.py does not read"


def test_compose_environment_passes_settings_validation(monkeypatch):
    examples = {name: value for name, (value, commented) in env_example().items() if not commented}

    def interpolate(match: re.Match) -> str:
        name, operator, fallback = match.group(1), match.group(2), match.group(3)
        return examples.get(name) or (fallback if operator == ":-" else "")

    for key in list(os.environ):
        if key.startswith(("TXSTREAM_", "STRIPE_")):
            monkeypatch.delenv(key)
    for key, value in environment("dagster-code").items():
        if key.startswith(("TXSTREAM_", "STRIPE_")) and value is not None:
            monkeypatch.setenv(key, re.sub(r"\$\{([A-Z0-9_]+)(:[?-])?([^}]*)\}", interpolate, str(value)))

    settings = Settings(_env_file=None)
    assert settings.postgres_url.get_secret_value() == "postgresql://postgres:5432/txstream"
    for login in PIPELINE_LOGINS:
        password = getattr(settings, login.password_field)
        assert password.get_secret_value() == examples[login.password_variable]
    assert (settings.kafka_bootstrap, settings.topic_replication) == ("kafka:9092", 1)
    assert settings.forex_source == "frankfurter"
    assert settings.data_dir == Path("/var/lib/txstream")
    assert settings.stripe_api_key is None  # not in .env: synthetic charges


def test_dagster_services_use_postgres_storage_from_the_same_variables():
    storage = yaml.safe_load(PRODUCTION_INSTANCE.read_text())["storage"]["postgres"]["postgres_db"]
    variables = {field: spec["env"] for field, spec in storage.items()}
    assert set(variables) == {"username", "password", "hostname", "port", "db_name"}
    for name in ("dagster-code", "dagster-webserver", "dagster-daemon"):
        env = environment(name)
        assert set(variables.values()) <= set(env), f"{name} lacks Dagster's storage variables"
        assert env["DAGSTER_PG_HOST"] == "postgres"
    workspace = yaml.safe_load((DEPLOY / "dagster" / "workspace.yaml").read_text())["load_from"]
    assert workspace == [{"grpc_server": {"host": "dagster-code", "port": 4000, "location_name": "txstream"}}]
    assert "dagster-code" in services() and services()["dagster-code"].get("hostname") == "dagster-code"


def test_grafana_provisioning_is_mounted_and_fed_by_compose():
    grafana = services()["grafana"]
    mounts = {volume.split(":")[0]: volume.split(":")[1] for volume in grafana["volumes"]}
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    assert mounts["grafana-data"] == "/var/lib/grafana"
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "txstream.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == mounts["./grafana/dashboards"]
    assert (GRAFANA / "dashboards").is_dir()

    datasource_file = GRAFANA / "provisioning" / "datasources" / "txstream.yaml"
    (datasource,) = yaml.safe_load(datasource_file.read_text())["datasources"]
    assert datasource["uid"] == "txstream-postgres"
    assert datasource["type"] == "grafana-postgresql-datasource"
    assert datasource["user"] == "txstream_reader"
    assert datasource["secureJsonData"]["password"] == "${TXSTREAM_READER_PASSWORD}"
    for variable in re.findall(r"\$\{([A-Z0-9_]+)\}", datasource_file.read_text()):
        assert variable in grafana["environment"], f"the datasource reads {variable}, which compose does not set"
    host, _, port = grafana["environment"]["GRAFANA_WAREHOUSE_HOST"].partition(":")
    assert (host, port) == ("postgres", "5432")
    for credential in ("GF_SECURITY_ADMIN_USER", "GF_SECURITY_ADMIN_PASSWORD"):
        assert REQUIRED_REFERENCE.match(grafana["environment"][credential])


def test_env_example_documents_every_variable_compose_reads():
    documented = set(env_example())
    referenced = set(COMPOSE_REFERENCE.findall(COMPOSE_FILE.read_text()))
    passed_through = {
        key
        for service in services().values()
        for key, value in (service.get("environment") or {}).items()
        if value is None
    }
    assert referenced | passed_through <= documented, f"missing: {(referenced | passed_through) - documented}"


def test_env_example_documents_every_setting_with_its_default():
    documented = env_example()
    for field_name, names in settings_env_names().items():
        present = [name for name in names if name in documented]
        assert present, f"setting {field_name} ({' or '.join(names)}) is not in .env.example"
        default = Settings.model_fields[field_name].default
        value, commented = documented[present[0]]
        if default is not None and commented:
            shown = str(default).lower() if isinstance(default, bool) else str(default)
            assert value == shown, f"{present[0]}: .env.example shows {value}, settings.py defaults to {default}"


def test_env_example_holds_only_example_secrets():
    for name, (value, commented) in env_example().items():
        if SECRET_NAME.search(name) and not commented:
            assert "EXAMPLE" in value, f"{name} in .env.example must be an obvious example"
            assert re.fullmatch(r"[A-Za-z0-9_-]+", value), f"{name}: URL-safe characters only (it goes into URLs)"


def test_compose_file_is_valid_for_the_docker_compose_client(tmp_path):
    result = run_compose_config(example_env_file(tmp_path))
    assert result.returncode == 0, result.stderr


def test_a_missing_secret_stops_compose_with_a_message(tmp_path):
    result = run_compose_config(example_env_file(tmp_path, leave_out="POSTGRES_PASSWORD"))
    assert result.returncode != 0
    assert "set POSTGRES_PASSWORD in .env (see .env.example)" in result.stderr


# --- the images ------------------------------------------------------------------

DIGEST_PINNED = re.compile(r"^[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}$")


def test_every_image_compose_pulls_and_every_base_image_is_pinned_by_digest():
    # A moved tag must not change what a deployment runs: tag@sha256 everywhere, never latest.
    pulled = [service["image"] for service in services().values() if "build" not in service]
    assert pulled and all(DIGEST_PINNED.match(image) for image in pulled), pulled
    for dockerfile in (CODE_DOCKERFILE, SPARK_DOCKERFILE):
        args = dockerfile_args(dockerfile)
        bases = [args[name] for name in args if name.endswith("_IMAGE")]
        assert bases and all(DIGEST_PINNED.match(image) for image in bases), (dockerfile.name, bases)
        for line in re.findall(r"^FROM (\S+)", dockerfile.read_text(), re.MULTILINE):
            assert re.fullmatch(r"\$\{[A-Z_]+_IMAGE\}", line), f"{dockerfile.name}: FROM {line} is not a pinned *_IMAGE"
    assert ":latest" not in COMPOSE_FILE.read_text() + HELM_VALUES.read_text()


def test_images_run_as_non_root():
    for dockerfile in (CODE_DOCKERFILE, SPARK_DOCKERFILE):
        users = re.findall(r"^USER (\S+)$", dockerfile.read_text(), re.MULTILINE)
        assert users and users[-1] not in {"root", "0"}, f"{dockerfile.name} ends as {users[-1:]}"


def test_code_image_installs_the_project_from_the_repository():
    text = CODE_DOCKERFILE.read_text()
    assert re.search(r'pip install -e \. "pyspark\[sql\]==\$\{SPARK_VERSION\}"', text)
    assert dockerfile_args(CODE_DOCKERFILE)["PYTHON_IMAGE"].startswith(
        f"python:{dockerfile_args(CODE_DOCKERFILE)['PYTHON_VERSION']}-slim"
    )


def dbt_prepare_command() -> list[str]:
    match = re.search(r"^RUN (dagster-dbt project prepare-and-package .+)$", CODE_DOCKERFILE.read_text(), re.MULTILINE)
    assert match, f"{CODE_DOCKERFILE.name} never builds the dbt manifest the code location loads"
    return shlex.split(match.group(1))


def test_code_image_builds_the_dbt_manifest_once_the_code_and_project_are_in_place():
    # Guards the image loading without a manifest (then every code-server start runs dbt parse).
    text = CODE_DOCKERFILE.read_text()
    command = dbt_prepare_command()
    assert command[command.index("--file") + 1] == "txstream_dagster/defs/dbt/project.py"
    prepare = text.index("dagster-dbt project prepare-and-package")
    for copied in ("COPY txstream_dagster ", "COPY spark ", "COPY dbt_project "):
        assert text.index(copied) < prepare, f"the manifest is built before `{copied.strip()}`"
    # Built as root before the build output is handed to the app user, who rewrites it on every dbt run.
    assert prepare < text.index("chown -R dagster:dagster") < text.index("USER dagster")


def test_the_images_dbt_manifest_builds_without_a_database(tmp_path):
    # The command the image runs, on a copy of what the image copies, with no connection settings.
    for folder in ("txstream_dagster", "spark", "dbt_project"):
        shutil.copytree(
            REPO / folder,
            tmp_path / folder,
            ignore=shutil.ignore_patterns("__pycache__", "target", "logs", "dbt_packages"),
        )
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DBT_", "TXSTREAM_", "DAGSTER_IS_DEV"))
    }
    env["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{tmp_path / 'spark'}"  # the copy, not the editable install
    [executable, *args] = dbt_prepare_command()
    result = subprocess.run(
        [str(Path(sys.executable).parent / executable), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    manifest = tmp_path / "dbt_project" / "target" / "manifest.json"
    assert manifest.exists(), result.stdout[-3000:]


def test_driver_and_executors_share_spark_python_and_interpreter_path():
    code, spark = dockerfile_args(CODE_DOCKERFILE), dockerfile_args(SPARK_DOCKERFILE)
    assert code["SPARK_VERSION"] == spark["SPARK_VERSION"]
    assert code["PYTHON_VERSION"] == spark["PYTHON_VERSION"]
    assert Version(spark["SPARK_VERSION"]) in pyproject_requirements()["pyspark"].specifier
    for service in ("dagster-code", "spark-master"):
        assert services()[service]["build"]["args"]["SPARK_VERSION"] == f"${{SPARK_VERSION:-{code['SPARK_VERSION']}}}"
    assert dockerfile_args(SPARK_DOCKERFILE)["SPARK_IMAGE"].startswith(
        f"spark:{spark['SPARK_VERSION']}-scala2.13-java17-"
    )
    venv = dockerfile_env(CODE_DOCKERFILE, "VIRTUAL_ENV")
    assert dockerfile_env(SPARK_DOCKERFILE, "VIRTUAL_ENV") == venv
    assert dockerfile_env(SPARK_DOCKERFILE, "PYSPARK_PYTHON") == f"{venv}/bin/python"
    spark_defaults = (DEPLOY / "k8s" / "spark-defaults.conf").read_text()
    assert re.search(rf"^spark\.pyspark\.python\s+{re.escape(venv)}/bin/python$", spark_defaults, re.MULTILINE)


def test_spark_image_installs_everything_the_stream_job_imports():
    distributions = importlib.metadata.packages_distributions()
    imported = set()
    for source in (REPO / "spark" / "txstream_spark").glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"txstream_spark", "__future__", "pyspark"}
    needed = {canonicalize_name(distributions[module][0]) for module in third_party}
    installed = spark_image_requirements()
    assert needed <= set(installed), f"add to {SPARK_REQUIREMENTS.name}: {needed - set(installed)}"

    project = pyproject_requirements()
    for name, requirement in installed.items():
        if name in project:
            assert (requirement.specifier, requirement.extras) == (project[name].specifier, project[name].extras), (
                f"{name}: the Spark image and pyproject.toml must agree"
            )
    assert installed["dagster-pipes"].specifier == project["dagster"].specifier


# --- Dagster instances -------------------------------------------------------------


def test_production_instance_queues_runs_and_allows_one_stream_at_a_time():
    instance = yaml.safe_load(PRODUCTION_INSTANCE.read_text())
    assert instance["run_coordinator"]["class"] == "QueuedRunCoordinator"
    limits = instance["run_coordinator"]["config"]["tag_concurrency_limits"]
    assert {"key": "txstream/stream", "limit": 1} in limits
    assert instance["run_monitoring"]["enabled"] is True
    assert set(instance["storage"]) == {"postgres"}


def test_local_instance_loads_in_dagster_with_run_monitoring_and_queue_limits(tmp_path, monkeypatch):
    shutil.copy(LOCAL_INSTANCE, tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        queue = instance.get_concurrency_config().run_queue_config
        assert {"key": "txstream/stream", "limit": 1} in queue.tag_concurrency_limits
        assert instance.run_monitoring_enabled
        assert instance.get_runs() == []
    assert (tmp_path / "history" / "runs.db").exists()  # SQLite under DAGSTER_HOME: no services needed


@pytest.fixture
def bare_postgres(tmp_path):
    """A throwaway PostgreSQL server with nothing but its superuser, like the compose one on first start."""
    server = EmbeddedPostgres(tmp_path / "pg", free_port())
    server.start()
    try:
        superuser_url = server.url("postgres", database="postgres")
        with psycopg.connect(superuser_url, autocommit=True) as conn:
            conn.execute("DROP DATABASE txstream")  # the embedded stack's own app database and role
            conn.execute("DROP ROLE txstream")
        yield superuser_url
    finally:
        server.stop()


def test_compose_database_bootstrap_lets_txstream_migrate_grafana_read_and_dagster_store(
    bare_postgres, tmp_path, monkeypatch
):
    superuser = urlsplit(bare_postgres)
    passwords = {
        "TXSTREAM_DB_PASSWORD": "example-txstream-pw",
        "DAGSTER_PG_PASSWORD": "example-dagster-pw",
    }
    init = subprocess.run(
        ["bash", str(INIT_SCRIPT)],
        env={
            **os.environ,
            **passwords,
            "POSTGRES_USER": "postgres",
            "PGHOST": superuser.hostname,
            "PGPORT": str(superuser.port),
            "PGPASSWORD": superuser.password,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert init.returncode == 0, init.stderr

    def url(role: str, password: str, database: str) -> str:
        return f"postgresql://{role}:{password}@{superuser.hostname}:{superuser.port}/{database}"

    # `txstream up` in compose: migrations as the non-superuser owner, then the reader's password.
    with psycopg.connect(url("txstream", passwords["TXSTREAM_DB_PASSWORD"], "txstream")) as conn:
        assert migrate(conn)
        for login in PIPELINE_LOGINS:
            set_login_password(conn, login, f"example-{login}-pw")
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)
    reader = url("txstream_reader", "example-txstream_reader-pw", "txstream")
    with psycopg.connect(reader) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT count(*) FROM raw.transactions")
    with psycopg.connect(url("txstream_transformer", "example-txstream_transformer-pw", "txstream")) as conn:
        conn.execute("CREATE TABLE marts.built_by_dbt AS SELECT count(*) FROM raw.transactions")
    writer = url("txstream_writer", "example-txstream_writer-pw", "txstream")
    with psycopg.connect(writer) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT count(*) FROM marts.built_by_dbt")
    with pytest.raises(psycopg.OperationalError):  # each role reaches only its own database
        psycopg.connect(url("dagster", passwords["DAGSTER_PG_PASSWORD"], "txstream")).close()

    # Dagster's storage, with deploy/dagster/dagster.yaml exactly as the containers read it
    # (only the compute-log folder moved out of /opt).
    config = PRODUCTION_INSTANCE.read_text().replace("/opt/dagster/compute_logs", str(tmp_path / "compute_logs"))
    (tmp_path / "dagster.yaml").write_text(config)
    for name, value in {
        "DAGSTER_HOME": str(tmp_path),
        "DAGSTER_PG_HOST": superuser.hostname,
        "DAGSTER_PG_PORT": str(superuser.port),
        "DAGSTER_PG_USERNAME": "dagster",
        "DAGSTER_PG_DB": "dagster",
        **passwords,
    }.items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        assert type(instance.run_launcher) is dg.DefaultRunLauncher
        assert instance.run_monitoring_enabled
        assert instance.get_runs() == []
    with psycopg.connect(url("dagster", passwords["DAGSTER_PG_PASSWORD"], "dagster")) as conn:
        assert conn.execute("SELECT to_regclass('public.runs') IS NOT NULL").fetchone() == (True,)


# --- Kubernetes --------------------------------------------------------------------


def _walk(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, (*path, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, (*path, str(index)))
    else:
        yield path, node


def k8s_documents(name: str) -> list[dict]:
    return list(yaml.safe_load_all((DEPLOY / "k8s" / name).read_text()))


def test_helm_values_launch_runs_as_kubernetes_jobs_with_secrets_from_a_secret():
    values = yaml.safe_load(HELM_VALUES.read_text())
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["envSecrets"] == [{"name": LOGIN_SECRETS[Login.WRITER]}, {"name": "txstream-stripe"}]
    assert deployment["codeServerArgs"] == ["--module-name", "txstream_dagster.definitions"]
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]
    assert values["postgresql"]["enabled"] is False
    for path, value in _walk(values):
        if isinstance(value, str) and re.search(r"password|token|api_?key", path[-1], re.IGNORECASE):
            pytest.fail(f"{'.'.join(path)} = {value!r}: secrets belong in a Kubernetes Secret")
    for env in deployment["env"]:
        assert not SECRET_NAME.search(env["name"]), f"{env['name']} must come from a Secret"
    address = urlsplit({env["name"]: env["value"] for env in deployment["env"]}["TXSTREAM_POSTGRES_URL"])
    assert address.username is None and address.password is None  # the owner's URL is the migration Job's


# The Helm chart renders runK8sConfig's keys as the instance's run_k8s_config keys.
CHART_RUN_K8S_KEYS = {
    "podSpecConfig": "pod_spec_config",
    "containerConfig": "container_config",
    "podTemplateSpecMetadata": "pod_template_spec_metadata",
    "jobSpecConfig": "job_spec_config",
    "jobMetadata": "job_metadata",
}


def run_pod(run_tags: dict[str, str]):
    """The pod spec dagster-k8s builds for a run with `run_tags` under the Helm values: the run launcher's
    config, then the code location's (includeConfigInLaunchedRuns), then the run's tags."""
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import (
        DagsterK8sJobConfig,
        UserDefinedDagsterK8sConfig,
        construct_dagster_k8s_job,
        get_user_defined_k8s_config,
    )

    values = yaml.safe_load(HELM_VALUES.read_text())
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    context = K8sContainerContext(
        env_secrets=[secret["name"] for secret in launcher["envSecrets"]],
        run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(
            {CHART_RUN_K8S_KEYS[key]: value for key, value in launcher["runK8sConfig"].items()}
        ),
    ).merge(K8sContainerContext(env_secrets=[secret["name"] for secret in deployment["envSecrets"]]))
    context = context.merge(K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(run_tags)))
    job = construct_dagster_k8s_job(
        DagsterK8sJobConfig(
            job_image=deployment["image"]["repository"],
            dagster_home="/opt/dagster/dagster_home",
            instance_config_map="dagster-instance",
        ),
        ["dagster", "api", "execute_run"],
        "dagster-run-test",
        user_defined_k8s_config=context.run_k8s_config,
    )
    return job.spec.template.spec


def pod_secrets(pod) -> set[str]:
    return {source.secret_ref.name for container in pod.containers for source in container.env_from or []}


def test_each_kind_of_run_pod_gets_only_its_logins_and_spark_rights_only_when_it_launches_spark():
    from txstream_dagster.defs.dbt.definitions import dbt_automation_sensor
    from txstream_dagster.defs.reporting.definitions import reporting_automation_sensor
    from txstream_dagster.defs.stream.jobs import stream_catch_up_job

    writer, transformer, reader = (LOGIN_SECRETS[login] for login in PIPELINE_LOGINS)
    ad_hoc = run_pod({})  # a run launched from the UI carries no tags
    assert pod_secrets(ad_hoc) == {writer, "txstream-stripe"}
    assert ad_hoc.service_account_name is None and ad_hoc.automount_service_account_token is False

    stream = run_pod(stream_catch_up_job.tags)
    assert stream.service_account_name == SPARK_SERVICE_ACCOUNT and stream.automount_service_account_token
    assert pod_secrets(stream) == {writer, "txstream-stripe"}
    env = {item.name: item.value_from.field_ref.field_path for item in stream.containers[0].env if item.value_from}
    assert env == {"POD_NAME": "metadata.name", "SPARK_LOCAL_IP": "status.podIP"}

    dbt = run_pod(dbt_automation_sensor.run_tags)
    assert pod_secrets(dbt) == {writer, "txstream-stripe", transformer} and dbt.automount_service_account_token is False
    report = run_pod(reporting_automation_sensor.run_tags)
    assert pod_secrets(report) == {writer, "txstream-stripe", reader} and report.service_account_name is None


def test_only_the_migration_job_gets_the_owner_and_it_sets_every_login():
    (job,) = k8s_documents("txstream-migrate-job.yaml")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["txstream", "up"]
    assert [source["secretRef"]["name"] for source in container["envFrom"]] == [
        "txstream-owner",
        *LOGIN_SECRETS.values(),
    ]
    assert job["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    (deployment,) = yaml.safe_load(HELM_VALUES.read_text())["dagster-user-deployments"]["deployments"]
    code_env = {env["name"]: env["value"] for env in deployment["env"]}
    for env in container["env"]:  # the topic it creates is the one the code location uses
        assert code_env[env["name"]] == env["value"]


def test_helm_values_keep_the_same_run_queue_as_the_compose_instance():
    values = yaml.safe_load(HELM_VALUES.read_text())
    daemon = values["dagsterDaemon"]
    assert daemon["runCoordinator"]["type"] == "QueuedRunCoordinator"
    production = yaml.safe_load(PRODUCTION_INSTANCE.read_text())
    helm_limits = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]["tagConcurrencyLimits"]
    assert helm_limits == production["run_coordinator"]["config"]["tag_concurrency_limits"]
    assert daemon["runMonitoring"]["enabled"] is True
    assert values["additionalInstanceConfig"]["run_retries"] == production["run_retries"]
    assert daemon["runRetries"]["enabled"] is False  # else the chart writes a second run_retries


def test_the_stream_run_pod_is_a_spark_driver_with_its_own_service_account_and_config():
    values = yaml.safe_load(HELM_VALUES.read_text())
    run_config = values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    env = {item["name"]: item for item in deployment["env"]}
    assert env["TXSTREAM_SPARK_MASTER"]["value"].startswith("k8s://https://")

    service_account, role, binding = k8s_documents("spark-rbac.yaml")
    assert "serviceAccountName" not in run_config["podSpecConfig"]  # only the stream's runs (their tags)
    assert service_account["metadata"]["name"] == SPARK_SERVICE_ACCOUNT
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": service_account["metadata"]["name"]}]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    pod_rules = [rule for rule in role["rules"] if "pods" in rule["resources"]]
    assert pod_rules and {"create", "delete", "watch", "list"} <= set(pod_rules[0]["verbs"])

    spark_defaults = (DEPLOY / "k8s" / "spark-defaults.conf").read_text()
    assert re.search(r"^spark\.kubernetes\.driver\.pod\.name\s+\$\{env:POD_NAME\}$", spark_defaults, re.MULTILINE)

    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    (config_map,) = kustomization["configMapGenerator"]
    volumes = {volume["name"]: volume for volume in deployment["volumes"]}
    assert volumes["spark-conf"]["configMap"]["name"] == config_map["name"]
    mounts = {mount["name"]: mount["mountPath"] for mount in deployment["volumeMounts"]}
    assert env["SPARK_CONF_DIR"]["value"] == mounts["spark-conf"]
    (claim,) = k8s_documents("txstream-data.yaml")
    assert volumes["txstream-data"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert env["TXSTREAM_DATA_DIR"]["value"] == mounts["txstream-data"]


def test_kustomize_builds_the_namespace_resources():
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is not installed: install it (its `kustomize` builds deploy/k8s offline)")
    result = subprocess.run(["kubectl", "kustomize", str(DEPLOY / "k8s")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    built = {(doc["kind"], doc["metadata"]["name"]) for doc in yaml.safe_load_all(result.stdout)}
    assert built == {
        ("ServiceAccount", "txstream-spark"),
        ("Role", "txstream-spark-driver"),
        ("RoleBinding", "txstream-spark-driver"),
        ("PersistentVolumeClaim", "txstream-data"),
        ("ConfigMap", "txstream-spark-defaults"),
    }
    assert all(doc["metadata"]["namespace"] == "txstream" for doc in yaml.safe_load_all(result.stdout))


# --- the JVM artifacts: one pom, for `make install` and both images ----------------------

POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}
JVM_POM = REPO / "jvm" / "pom.xml"


def pom_property(name: str) -> str:
    return ET.parse(JVM_POM).getroot().find(f"m:properties/m:{name}", POM_NS).text


def test_the_pom_runs_the_kafka_of_the_compose_image_and_the_spark_of_the_pyspark_pin():
    assert services()["kafka"]["image"].split("@")[0] == f"apache/kafka:{pom_property('kafka.version')}"
    spark_version = pom_property("spark.version")
    assert str(pyproject_requirements()["pyspark"].specifier) == f"=={spark_version}"
    for dockerfile in (CODE_DOCKERFILE, SPARK_DOCKERFILE):
        assert dockerfile_args(dockerfile)["SPARK_VERSION"] == spark_version


def test_both_images_take_the_connector_from_the_same_pom_in_a_maven_build_stage():
    for dockerfile in (CODE_DOCKERFILE, SPARK_DOCKERFILE):
        text = dockerfile.read_text()
        assert re.search(r"^FROM \$\{MAVEN_IMAGE\} AS jvm$", text, re.MULTILINE), dockerfile.name
        assert "COPY jvm/ /build/jvm/" in text
        assert "mvn --batch-mode --quiet -f /build/jvm/pom.xml package -Djvm.lib.dir=/build/lib" in text
        assert re.search(r"^COPY --from=jvm /build/lib/spark-kafka/ \S+/jars/$", text, re.MULTILINE), dockerfile.name
        ignored = (dockerfile.parent / f"{dockerfile.name}.dockerignore").read_text().splitlines()
        assert "!jvm/" in ignored, f"{dockerfile.name}'s build context leaves out jvm/"


def test_the_connector_module_brings_nothing_spark_already_ships(isolated_settings: Settings):
    # A second copy of a jar Spark has (Scala, Hadoop, slf4j, the codecs) would shadow or clash with its own.
    import pyspark

    spark_jars = {
        re.sub(r"-[0-9][^-]*\.jar$", "", jar.name) for jar in (Path(pyspark.__file__).parent / "jars").glob("*.jar")
    }
    connector = {
        re.sub(r"-[0-9][^-]*\.jar$", "", jar.name)
        for jar in module_jars(isolated_settings.jvm_lib_dir, SPARK_KAFKA_CONNECTOR)
    }
    assert connector == {
        "spark-sql-kafka-0-10_2.13",
        "spark-token-provider-kafka-0-10_2.13",
        "kafka-clients",
        "commons-pool2",
    }
    assert not connector & spark_jars
