"""cluster.yaml is a valid Ray cluster-launcher config, by the autoscaler's own schema and checks."""

import copy
import json
import os
from pathlib import Path

import jsonschema
import pytest
import yaml

CLUSTER_YAML = Path(__file__).resolve().parents[2] / "cluster.yaml"


@pytest.fixture(scope="module")
def cluster():
    return yaml.safe_load(CLUSTER_YAML.read_text())


@pytest.fixture(scope="module")
def schema():
    import ray.autoscaler

    return json.loads((Path(os.path.dirname(ray.autoscaler.__file__)) / "ray-schema.json").read_text())


def test_cluster_yaml_matches_the_autoscaler_schema(cluster, schema):
    jsonschema.validate(cluster, schema)


def test_cluster_yaml_survives_ray_up_preparation(cluster):
    # What `ray up` does before launching anything: merge the provider's defaults, then validate.
    from ray.autoscaler._private.util import prepare_config, validate_config

    full = prepare_config(copy.deepcopy(cluster))
    validate_config(full)
    assert full["head_node_type"] == "ray.head.cpu"
    workers = full["available_node_types"]["ray.worker.gpu"]
    assert (workers["min_workers"], workers["max_workers"]) == (0, 8)  # autoscaling GPU workers
    assert full["available_node_types"]["ray.head.cpu"]["resources"] == {"CPU": 0}  # no trials on the head


def test_cluster_yaml_installs_salttune_and_keeps_token_auth(cluster):
    assert any("pip install -e /home/ubuntu/salttune" in c for c in cluster["setup_commands"])
    starts = cluster["head_start_ray_commands"] + cluster["worker_start_ray_commands"]
    assert sum("RAY_AUTH_MODE=token ray start" in c for c in starts) == 2
    assert "--dashboard-host=127.0.0.1" in " ".join(cluster["head_start_ray_commands"])
    assert "/home/ubuntu/.ray/auth_token" in cluster["file_mounts"]


def test_schema_rejects_a_misspelt_key(cluster, schema):
    bad = copy.deepcopy(cluster)
    bad["available_node_types"]["ray.worker.gpu"]["min_workerz"] = 1
    with pytest.raises(jsonschema.ValidationError, match="min_workerz"):
        jsonschema.validate(bad, schema)
