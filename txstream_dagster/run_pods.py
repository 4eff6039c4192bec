"""What a run's pod gets on Kubernetes: only the login it signs in as, and Spark's service account
only when it launches Spark.

dagster-k8s's run launcher reads the `dagster-k8s/config` run tag and adds it to what the Helm
values give every run (deploy/k8s/dagster-values.yaml: the writer's Secret, the Stripe key, no
service-account token). Every other run launcher ignores the tag. The Secret and service-account
names are the ones deploy/README.md creates.
"""

from __future__ import annotations

import json

from txstream_dagster.db.logins import Login

K8S_CONFIG_TAG = "dagster-k8s/config"
SPARK_SERVICE_ACCOUNT = "txstream-spark"
LOGIN_SECRETS = {
    Login.WRITER: "txstream-writer",
    Login.TRANSFORMER: "txstream-transformer",
    Login.READER: "txstream-reader",
}
# A Spark driver in client mode tells its executors its pod's address and name (spark-defaults.conf).
SPARK_DRIVER_ENV = [
    {"name": "POD_NAME", "value_from": {"field_ref": {"field_path": "metadata.name"}}},
    {"name": "SPARK_LOCAL_IP", "value_from": {"field_ref": {"field_path": "status.podIP"}}},
]


def run_pod_tags(*, login: Login | None = None, launches_spark: bool = False) -> dict[str, str]:
    """Run tags adding `login`'s Secret to the pod (every run has the writer's) and, when the run
    launches Spark, the Spark service account."""
    config: dict = {"container_config": {}}
    if login is not None and login is not Login.WRITER:
        config["container_config"]["env_from"] = [{"secret_ref": {"name": LOGIN_SECRETS[login]}}]
    if launches_spark:
        config["container_config"]["env"] = SPARK_DRIVER_ENV
        config["pod_spec_config"] = {
            "service_account_name": SPARK_SERVICE_ACCOUNT,
            "automount_service_account_token": True,
        }
    return {K8S_CONFIG_TAG: json.dumps(config)}
