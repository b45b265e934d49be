"""docker/docker-compose.yml: everything it references exists, and the app's environment, ports and
services fit the app's settings (read from gpu_app/config.py, not a list).

There is no `docker compose` here, so the file is read with PyYAML and interpolated like compose
does for `${VAR:-default}` with an empty environment: what a plain `docker compose up` gets.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from gpu_app.config import Settings
from tests.docker.dockerfiles import APP_ENV_NAMES, COMPOSE_FILE, REQUIREMENTS, parse_dockerfile, pins

# boto3's own variables (not app settings): the endpoint of moto and dummy credentials.
AWS_SDK_ENV = {"AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"}
_VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?::?-([^}]*))?\}|\$(\w+)")


def interpolate(value: Any, environment: dict[str, str]) -> Any:
    """Compose's interpolation of `$$`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `$VAR`."""
    if isinstance(value, dict):
        return {key: interpolate(item, environment) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, environment) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(3)
        if name in environment:
            return environment[name]
        if match.group(2) is None:
            raise AssertionError(f"${{{name}}} has no default: `docker compose up` alone would not work")
        return match.group(2)

    return _VARIABLE.sub(replace, value)


def load(environment: dict[str, str] | None = None) -> dict[str, Any]:
    return interpolate(yaml.safe_load(COMPOSE_FILE.read_text()), environment or {})


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load()


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def published(service: dict[str, Any]) -> dict[int, tuple[str, int]]:
    """container port -> (host address, host port) of `ports` in the short syntax."""
    result = {}
    for entry in service.get("ports", []):
        host_ip, host_port, container = str(entry).rsplit(":", 2)
        result[int(container)] = (host_ip, int(host_port))
    return result


def app_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: s
        for name, s in compose["services"].items()
        if "build" in s and "Dockerfile.cpu" in str(s["build"])
    }


def test_every_referenced_dockerfile_context_and_env_file_exists(compose: dict) -> None:
    base = COMPOSE_FILE.parent
    built = 0
    for name, service in compose["services"].items():
        assert "image" in service or "build" in service, name
        build = service.get("build")
        if build is not None:
            build = {"context": build} if isinstance(build, str) else build
            context = (base / build["context"]).resolve()
            assert context.is_dir(), f"{name}: build context {context} is missing"
            dockerfile = context / build.get("dockerfile", "Dockerfile")
            assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"
            built += 1
        env_files = service.get("env_file", [])
        for env_file in [env_files] if isinstance(env_files, str) else env_files:
            path = env_file["path"] if isinstance(env_file, dict) else env_file
            required = not isinstance(env_file, dict) or env_file.get("required", True)
            assert not required or (base / path).is_file(), f"{name}: env_file {path} is missing"
    assert built and app_services(compose), "the app must be built from docker/Dockerfile.cpu"


def test_named_volumes_are_declared(compose: dict) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if not source.startswith((".", "/", "~")):
                assert source in declared, f"{name}: volume {source} is not declared"


def test_app_environment_is_the_app_settings(compose: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    ((name, app),) = app_services(compose).items()
    env = environment_of(app)
    unknown = set(env) - APP_ENV_NAMES - AWS_SDK_ENV
    assert not unknown, f"{name}: variables the app does not read: {sorted(unknown)}"
    # The values must be valid settings: load them the way the app does.
    for key in APP_ENV_NAMES | AWS_SDK_ENV:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()  # the Elasticsearch settings are a section of it
    assert settings.host == "0.0.0.0", "inside a container the app must listen on every interface"
    assert settings.storage_backend == "s3" and settings.vector_index == "elasticsearch"
    assert settings.es_username and settings.es_password and settings.es_ca_certs and settings.es_verify_certs


def test_app_port_is_published_on_loopback_and_matches_the_image(compose: dict) -> None:
    ((_, app),) = app_services(compose).items()
    port = int(environment_of(app)["PORT"])
    ports = published(app)
    assert port in ports, f"PORT={port} is not the published container port {sorted(ports)}"
    assert ports[port] == ("127.0.0.1", 8000), "the README's curl commands use 127.0.0.1:8000"
    dockerfile = Path(COMPOSE_FILE.parent, app["build"]["context"], app["build"]["dockerfile"])
    (expose,) = parse_dockerfile(dockerfile.resolve()).of("EXPOSE")
    assert int(expose.value) == port
    # Everything else is local-only too.
    for name, service in compose["services"].items():
        for host_ip, _ in published(service).values():
            assert host_ip == "127.0.0.1", f"{name} is published beyond this machine"


def test_app_reaches_elasticsearch_over_tls_with_the_generated_ca(compose: dict) -> None:
    services = compose["services"]
    ((_, app),) = app_services(compose).items()
    env = environment_of(app)
    url = urlparse(env["ES_HOSTS"])
    assert url.scheme == "https", "security is on: TLS"
    es = services[url.hostname]
    es_env = environment_of(es)
    assert url.port in {9200} and published(es).get(9200) == ("127.0.0.1", 9200)
    assert es_env["discovery.type"] == "single-node"
    assert es_env["xpack.security.enabled"] == "true" and es_env["xpack.security.http.ssl.enabled"] == "true"
    assert env["ES_USERNAME"] == "elastic" and env["ES_PASSWORD"] == es_env["ELASTIC_PASSWORD"]
    # The CA file the app trusts is in the certificate volume the setup service writes.
    ca_path = env["ES_CA_CERTS"]
    mounts = dict(str(v).split(":", 1)[::-1] for v in app["volumes"])  # target[:ro] -> source
    (certs_target,) = [t for t in mounts if ca_path.startswith(t.split(":")[0] + "/")]
    volume = mounts[certs_target]
    setup = services["elasticsearch-certs"]
    setup_mount = {str(v).split(":")[0]: str(v).split(":")[1] for v in setup["volumes"]}[volume]
    relative = ca_path.removeprefix(certs_target.split(":")[0])
    assert f"config/certs{relative}" in " ".join(setup["command"]), (
        "the setup never writes the CA the app reads"
    )
    assert setup_mount == "/usr/share/elasticsearch/config/certs"
    assert es_env["xpack.security.http.ssl.certificate_authorities"] == f"certs{relative}"
    # The index README's host-side command copies http_ca.crt: the setup provides it.
    assert "config/certs/http_ca.crt" in " ".join(setup["command"])
    assert "dns: [elasticsearch, localhost]" in " ".join(setup["command"])


def test_app_uses_moto_and_the_bucket_moto_init_creates(compose: dict) -> None:
    services = compose["services"]
    ((_, app),) = app_services(compose).items()
    env = environment_of(app)
    endpoint = urlparse(env["AWS_ENDPOINT_URL"])
    moto = services[endpoint.hostname]
    assert endpoint.port == 5000 and 5000 in published(moto)
    init = services["moto-init"]
    init_env = environment_of(init)
    assert urlparse(init_env["AWS_ENDPOINT_URL"]).hostname == endpoint.hostname
    assert init_env["S3_BUCKET_NAME"] == env["S3_BUCKET_NAME"]
    assert "create_bucket" in " ".join(init["entrypoint"])


def test_image_versions_match_the_pins(compose: dict) -> None:
    services = compose["services"]
    constraints = pins(REQUIREMENTS / "constraints.txt")
    moto_images = {s["image"] for s in services.values() if s.get("image", "").startswith("motoserver/moto:")}
    assert moto_images == {f"motoserver/moto:{constraints['moto']}"}, "moto server = the moto the tests run"
    es_images = {
        s["image"] for s in services.values() if "elasticsearch/elasticsearch:" in s.get("image", "")
    }
    (es_image,) = es_images
    major, minor, _ = (int(part) for part in es_image.rsplit(":", 1)[1].split("."))
    client_major = int(pins(REQUIREMENTS / "app.txt")["elasticsearch"].split(".")[0])
    # gpu_app/index/elasticsearch.py: an 8.x client, clusters from 8.12 on.
    assert major == client_major == 8 and minor >= 12
    for name, service in services.items():
        image = service.get("image", "")
        if "build" not in service:
            assert re.search(r":\d+\.\d+\.\d+$", image), f"{name}: pin {image} to an exact version"


def test_start_order_and_one_shot_services(compose: dict) -> None:
    services = compose["services"]
    ((_, app),) = app_services(compose).items()
    assert app["depends_on"]["elasticsearch"]["condition"] == "service_healthy"
    assert "healthcheck" in services["elasticsearch"] and "healthcheck" in services["moto"]
    # `up --wait` treats an exited container as a failure unless a running service waits for its
    # successful completion: every one-shot service must be adopted that way.
    one_shots = {n for n, s in services.items() if s.get("restart") == "no"}
    assert one_shots == {"elasticsearch-certs", "moto-init"}
    adopted = {
        dependency
        for s in services.values()
        if s.get("restart") != "no"
        for dependency, spec in (s.get("depends_on") or {}).items()
        if spec.get("condition") == "service_completed_successfully"
    }
    assert one_shots <= adopted, sorted(one_shots - adopted)


def test_interpolation_is_overridable_and_complete() -> None:
    custom = load({"ELASTIC_PASSWORD": "s3cret-pw", "APP_PORT": "9000", "MODEL_DIR": "../models-here"})
    app = custom["services"]["app"]
    assert environment_of(app)["ES_PASSWORD"] == "s3cret-pw"
    assert environment_of(custom["services"]["elasticsearch"])["ELASTIC_PASSWORD"] == "s3cret-pw"
    assert published(app)[8000] == ("127.0.0.1", 9000)
    assert "../models-here:/models" in app["volumes"]
    with pytest.raises(AssertionError, match="no default"):
        interpolate("${REQUIRED}", {})
    assert interpolate("$${ELASTIC_PASSWORD}", {}) == "${ELASTIC_PASSWORD}"
