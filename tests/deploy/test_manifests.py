"""Static checks of the deploy files: they parse, what they reference exists, and they agree with
the scorer's configuration (port, topics, group) and with each other.

No Docker engine or cluster is needed: these read the files only.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from consumer.config import Config, load_config
from tests.deploy.contract import DEPLOY, ROOT, SCRAPE_JOB, load_yaml

COMPOSE = ROOT / "docker-compose.yml"
K8S = DEPLOY / "k8s"
K8S_FILES = sorted(K8S.glob("*.yaml"))


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = load_yaml(COMPOSE)
    return compose


def _k8s(kind: str) -> dict[str, Any]:
    found = [doc for path in K8S_FILES for doc in [load_yaml(path)] if doc.get("kind") == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    manifest: dict[str, Any] = found[0]
    return manifest


def _configmap_toml() -> str:
    text: str = _k8s("ConfigMap")["data"]["scorer.toml"]
    return text


def _image_config() -> Config:
    return load_config({}, (DEPLOY / "scorer.toml").read_text(encoding="utf-8"))


def _scorer_container() -> dict[str, Any]:
    containers = _k8s("Deployment")["spec"]["template"]["spec"]["containers"]
    (scorer,) = [c for c in containers if c["name"] == "scorer"]
    assert isinstance(scorer, dict)
    return scorer


@pytest.mark.parametrize("path", [COMPOSE, *K8S_FILES], ids=lambda p: p.name)
def test_yaml_parses_to_a_mapping(path: Path) -> None:
    assert isinstance(load_yaml(path), dict)


def test_k8s_has_every_resource_and_kustomize_lists_them() -> None:
    kinds = {load_yaml(p)["kind"] for p in K8S_FILES}
    assert kinds == {
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "ScaledObject",
        "TriggerAuthentication",
        "NetworkPolicy",
        "Kustomization",
    }
    listed = set(_k8s("Kustomization")["resources"])
    assert listed == {p.name for p in K8S_FILES if p.name != "kustomization.yaml"}


def test_compose_references_existing_files() -> None:
    services = _compose()["services"]
    checked = 0
    for name, service in services.items():
        build = service.get("build")
        if build is not None:
            assert (ROOT / build["context"]).is_dir(), name
            assert (ROOT / build["context"] / build["dockerfile"]).is_file(), name
            checked += 1
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source}"
                checked += 1
    assert checked >= 8


def test_compose_runs_the_whole_pipeline() -> None:
    services = _compose()["services"]
    assert {"kafka", "topics", "demo-data", "redis", "feast", "loadgen"} <= set(services)
    assert {"prometheus", "grafana", "scorer-1", "scorer-2"} <= set(services)
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["demo-data"]["entrypoint"] == ["python", "-m", "consumer.demo_data", "/srv"]
    assert services["loadgen"]["command"][0] == "produce"
    for scorer in ("scorer-1", "scorer-2"):
        assert services[scorer]["build"]["dockerfile"] == "deploy/Dockerfile"
        assert services[scorer]["stop_grace_period"] == "30s"


def test_dockerfile_copies_what_exists_and_ignores_nothing_it_needs() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    sources = re.findall(r"^COPY (?!--from)(\S+)", dockerfile, flags=re.MULTILINE)
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    allowed = {line[1:].rstrip("/") for line in ignore.splitlines() if line.startswith("!")}
    assert {s.rstrip("/").removeprefix("./") for s in sources} <= allowed


def test_dockerfile_is_glibc_multistage_non_root_with_healthcheck() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    bases = re.findall(r"^ARG PYTHON_IMAGE=(\S+)", dockerfile, flags=re.MULTILINE)
    assert bases == ["python:3.11-slim-bookworm"]
    assert "alpine" not in bases[0]
    assert len(re.findall(r"^FROM ", dockerfile, flags=re.MULTILINE)) == 2
    final = dockerfile.split("AS runtime", 1)[1]
    assert re.search(r"^USER 10001", final, flags=re.MULTILINE)
    assert "/healthz" in final.split("HEALTHCHECK", 1)[1]
    assert not re.search(r"apt-get|gcc|build-essential", final)


def test_scorer_port_matches_everywhere() -> None:
    port = _image_config().server.port
    assert load_config({}, _configmap_toml()).server.port == port
    scorer = _scorer_container()
    (container_port,) = scorer["ports"]
    assert container_port["containerPort"] == port
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert scorer[probe]["httpGet"]["port"] == container_port["name"]
    service = _k8s("Service")
    (service_port,) = service["spec"]["ports"]
    assert service_port["port"] == port
    assert service_port["targetPort"] in (port, container_port["name"])
    assert service["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    prometheus = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == SCRAPE_JOB]
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert targets
    assert all(t.endswith(f":{port}") for t in targets)
    services = _compose()["services"]
    hosts = sorted(t.rsplit(":", 1)[0] for t in targets)
    assert hosts == sorted(s for s in services if s.startswith("scorer-"))
    for host in hosts:
        assert [p.split(":")[-1] for p in services[host]["ports"]] == [str(port)]
    assert f"'{port}'" in (DEPLOY / "Dockerfile").read_text(encoding="utf-8")


def test_configmap_scorer_toml_loads() -> None:
    config = load_config(environ={}, text=_configmap_toml())
    assert config.server.host == "0.0.0.0"
    assert config.models.directory == "/srv/models"


# The cluster connection: its address and its security (compose's local broker is plaintext).
_CONNECTION = ("bootstrap_servers", "common", "secret_files")


def test_configmap_differs_from_image_config_only_in_the_kafka_connection() -> None:
    mine = tomllib.loads(_configmap_toml())
    image = tomllib.loads((DEPLOY / "scorer.toml").read_text(encoding="utf-8"))
    assert mine["kafka"].pop("bootstrap_servers") != image["kafka"].pop("bootstrap_servers")
    for key in _CONNECTION[1:]:
        assert key in mine["kafka"]
        mine["kafka"].pop(key)
        image["kafka"].pop(key, None)
    assert mine == image


def test_configmap_loads_with_the_deployment_environment() -> None:
    environ = {e["name"]: e.get("value", "pod-name") for e in _scorer_container()["env"]}
    config = load_config(environ=environ, text=_configmap_toml())
    assert config.kafka.consumer["client.id"] == "pod-name"


def test_deployment_mounts_the_configmap_where_the_command_reads_it() -> None:
    pod = _k8s("Deployment")["spec"]["template"]["spec"]
    scorer = _scorer_container()
    config_path = Path(scorer["args"][scorer["args"].index("--config") + 1])
    (volume,) = [v for v in pod["volumes"] if "configMap" in v]
    assert volume["configMap"]["name"] == _k8s("ConfigMap")["metadata"]["name"]
    (mount,) = [m for m in scorer["volumeMounts"] if m["name"] == volume["name"]]
    assert Path(mount["mountPath"]) / "scorer.toml" == config_path
    assert "scorer.toml" in _k8s("ConfigMap")["data"]


def test_deployment_is_non_root_and_has_the_shutdown_bound() -> None:
    pod = _k8s("Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    # The scorer's producer flush is bounded at 10 s; the pod must be given more than that.
    assert pod["terminationGracePeriodSeconds"] == 30
    assert "replicas" not in _k8s("Deployment")["spec"]


def test_selectors_match_the_pod_labels() -> None:
    labels = _k8s("Deployment")["spec"]["template"]["metadata"]["labels"]
    selectors = [
        _k8s("Deployment")["spec"]["selector"]["matchLabels"],
        _k8s("Service")["spec"]["selector"],
        _k8s("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
    ]
    for selector in selectors:
        assert selector.items() <= labels.items()


def test_keda_scales_the_deployment_on_the_configured_group_and_topic() -> None:
    scaled = _k8s("ScaledObject")
    config = load_config({}, _configmap_toml())
    assert scaled["spec"]["scaleTargetRef"]["name"] == _k8s("Deployment")["metadata"]["name"]
    (trigger,) = scaled["spec"]["triggers"]
    meta = trigger["metadata"]
    assert trigger["type"] == "kafka"
    assert meta["bootstrapServers"] == config.kafka.bootstrap_servers
    assert meta["consumerGroup"] == config.kafka.group_id
    assert meta["topic"] == config.kafka.input_topic
    # lagThreshold = measured per-pod throughput x lag-drain target (see the file's comments).
    assert int(meta["lagThreshold"]) == 20_000 * 2
    assert meta["allowIdleConsumers"] == "false"
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]


def test_keda_max_replicas_do_not_exceed_the_compose_partitions() -> None:
    topics = " ".join(_compose()["services"]["topics"]["command"])
    partitions = re.findall(r"--topic scoring-jobs --partitions (\d+)", topics)
    assert partitions
    assert _k8s("ScaledObject")["spec"]["maxReplicaCount"] <= int(partitions[0])


def test_lag_alert_uses_the_keda_threshold() -> None:
    (trigger,) = _k8s("ScaledObject")["spec"]["triggers"]
    alerts = (DEPLOY / "prometheus" / "rules" / "stream-scorer-alerts.yml").read_text()
    assert f"stream_scorer:consumer_lag:sum > {trigger['metadata']['lagThreshold']}" in alerts


def _mount_target(service: str, source: str) -> str:
    for volume in _compose()["services"][service]["volumes"]:
        parts = str(volume).split(":")
        if parts[0] == source:
            return parts[1]
    raise AssertionError(f"{service} does not mount {source}")


def test_compose_mounts_are_where_prometheus_and_grafana_look() -> None:
    prometheus = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    (rule_glob,) = prometheus["rule_files"]
    assert Path(rule_glob).parent == Path(_mount_target("prometheus", "./deploy/prometheus/rules"))
    command = _compose()["services"]["prometheus"]["command"]
    config_target = _mount_target("prometheus", "./deploy/prometheus/prometheus.yml")
    assert f"--config.file={config_target}" in command
    provider = load_yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "stream-scorer.yml")
    (dashboards,) = provider["providers"]
    assert dashboards["options"]["path"] == _mount_target("grafana", "./deploy/grafana/dashboards")
    assert _mount_target("grafana", "./deploy/grafana/provisioning") == "/etc/grafana/provisioning"
    datasources = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    (datasource,) = datasources["datasources"]
    assert datasource["url"] == "http://prometheus:9090"
    assert _compose()["services"]["prometheus"]["ports"] == ["127.0.0.1:9090:9090"]


def test_feast_repo_is_complete_and_reads_the_demo_features() -> None:
    repo = DEPLOY / "feast"
    assert _mount_target("feast", "./deploy/feast") == "/opt/feast-repo"
    store = load_yaml(repo / "feature_store.yaml")
    assert store["online_store"]["type"] == "redis"
    env = _compose()["services"]["feast"]["environment"]
    assert env["REDIS_CONNECTION_STRING"].split(":")[0] in _compose()["services"]
    definitions = (repo / "features.py").read_text(encoding="utf-8")
    for name in ("users", "items"):
        assert f'path="data/{name}.parquet"' in definitions
    script = " ".join(_compose()["services"]["feast"]["command"])
    assert "python bootstrap.py /srv/features" in script
    assert "feast serve" in script


# -- security -------------------------------------------------------------------------------


def test_compose_publishes_every_port_on_loopback_only() -> None:
    published = [
        (name, port)
        for name, service in _compose()["services"].items()
        for port in service.get("ports", [])
    ]
    assert len(published) >= 6
    assert [p for p in published if not str(p[1]).startswith("127.0.0.1:")] == []


def test_compose_grafana_password_comes_from_a_file_the_user_creates() -> None:
    grafana = _compose()["services"]["grafana"]
    assert not any("PASSWORD" in key for key in grafana.get("environment", {}))
    (env_file,) = grafana["env_file"]
    assert env_file in _gitignored()  # the password stays out of the repository
    example = (ROOT / f"{env_file}.example").read_text(encoding="utf-8")
    assert re.search(r"^GF_SECURITY_ADMIN_PASSWORD=\S+", example, flags=re.MULTILINE)


def _gitignored() -> set[str]:
    return set((ROOT / ".gitignore").read_text(encoding="utf-8").split())


def test_compose_prometheus_has_no_lifecycle_api() -> None:
    command = _compose()["services"]["prometheus"]["command"]
    assert not any("enable-lifecycle" in arg or "enable-admin-api" in arg for arg in command)


def test_compose_runs_the_image_read_only_without_capabilities() -> None:
    services = _compose()["services"]
    for name in ("scorer-1", "scorer-2", "loadgen", "demo-data"):
        service = services[name]
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name


@pytest.mark.parametrize("source", ["image", "configmap"])
def test_shipped_config_never_serves_an_unauthenticated_api_beyond_loopback(source: str) -> None:
    from consumer.api.auth import check_exposure

    config = _image_config() if source == "image" else load_config({}, _configmap_toml())
    assert config.api.allow_unauthenticated is False
    check_exposure(config.api.host, bool(config.api.tokens_file), False)
    assert config.server.host == "0.0.0.0"  # metrics and probes: documented, no secrets served


def _secret_mounts() -> dict[str, str]:
    """mountPath -> Secret name, for the scorer container."""
    pod = _k8s("Deployment")["spec"]["template"]["spec"]
    secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    return {
        m["mountPath"]: secrets[m["name"]]
        for m in _scorer_container()["volumeMounts"]
        if m["name"] in secrets
    }


def test_configmap_uses_sasl_ssl_with_hostname_verification() -> None:
    common = load_config({}, _configmap_toml()).kafka.common
    assert common["security.protocol"] == "SASL_SSL"
    assert common["sasl.mechanism"] == "SCRAM-SHA-512"
    assert common["ssl.endpoint.identification.algorithm"] == "https"
    assert "sasl.password" not in common  # a secret never sits in the ConfigMap


def test_every_secret_the_config_reads_is_a_mounted_secret_file() -> None:
    config = load_config({}, _configmap_toml())
    files = [
        *config.kafka.secret_files.values(),
        config.kafka.common["ssl.ca.location"],
        config.api.tokens_file,
        "/var/run/secrets/stream-scorer/schema-registry/user-info",  # the commented example
    ]
    assert "/var/run/secrets/stream-scorer/schema-registry/user-info" in _configmap_toml()
    mounts = _secret_mounts()
    for path in files:
        assert any(Path(path).parent == Path(mount) for mount in mounts), path
    for env in _scorer_container().get("env", []):
        assert "secretKeyRef" not in env.get("valueFrom", {}), "secrets come as files"


def test_deployment_is_read_only_and_unprivileged() -> None:
    for container in _k8s("Deployment")["spec"]["template"]["spec"]["containers"]:
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]


def test_keda_authenticates_with_sasl_over_tls() -> None:
    (trigger,) = _k8s("ScaledObject")["spec"]["triggers"]
    auth = _k8s("TriggerAuthentication")
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    mechanism = load_config({}, _configmap_toml()).kafka.common["sasl.mechanism"]
    assert trigger["metadata"]["sasl"] == mechanism.lower().replace("scram-sha-", "scram_sha")
    assert trigger["metadata"]["tls"] == "enable"
    params = {ref["parameter"]: ref for ref in auth["spec"]["secretTargetRef"]}
    assert set(params) == {"username", "password", "ca"}
    assert params["ca"]["name"] in _secret_mounts().values()  # the scorers' CA
    assert params["password"]["name"] not in _secret_mounts().values()  # not the scorer's user


def test_network_policy_admits_only_the_scrape_and_the_api_callers() -> None:
    policy = _k8s("NetworkPolicy")["spec"]
    labels = _k8s("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["policyTypes"] == ["Ingress"]
    ports = [p["port"] for rule in policy["ingress"] for p in rule["ports"]]
    (metrics_port,) = _scorer_container()["ports"]
    assert sorted(map(str, ports)) == sorted(
        [metrics_port["name"], str(load_config({}, _configmap_toml()).api.port)]
    )
    assert all(rule.get("from") for rule in policy["ingress"])  # no rule open to everyone


@pytest.mark.parametrize(
    ("manifest", "role"), [("kafka-user.yaml", "scorer"), ("keda-kafka-user.yaml", "autoscaler")]
)
def test_strimzi_users_carry_exactly_the_acls_derived_from_the_config(
    manifest: str, role: str
) -> None:
    from consumer.security.acls import acls_for, strimzi_acls

    user = load_yaml(K8S / "strimzi" / manifest)
    config = load_config({}, _configmap_toml())
    assert user["kind"] == "KafkaUser"
    assert user["spec"]["authentication"]["type"] == "scram-sha-512"
    assert user["spec"]["authorization"]["acls"] == strimzi_acls(acls_for(config, role))
    if role == "scorer":
        assert user["metadata"]["name"] == config.kafka.common["sasl.username"]
        assert user["metadata"]["name"] in _secret_mounts().values()
    else:
        secret = {r["parameter"]: r["name"] for r in _k8s("TriggerAuthentication")["spec"][
            "secretTargetRef"]}["password"]  # fmt: skip
        assert secret == user["metadata"]["name"]
