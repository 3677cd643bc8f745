"""Checks config/kubernetes offline (no cluster here): every core manifest against the Kubernetes
schemas of a pinned version (PyPI kubernetes-validate, strict: unknown fields are errors); the
KEDA ScaledObjects and prometheus-adapter rules against JSON schemas of the fields their
documentation gives (their own CRD and Go types are not available offline); the deployment files
in the ConfigMap through `actorserve check-config`; and the references between the files: names,
selectors, ports, the metrics the autoscalers read (each one actorserve exports), grace periods
that cover the drain times.

Usage: check_manifests.py ACTORSERVE_BINARY. Prints "kubernetes manifests: ok" when all hold.
"""
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

import jsonschema
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
K8S = os.path.join(ROOT, "config", "kubernetes")
KUBERNETES_VERSION = "1.30.0"
BINARY = sys.argv[1]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


files = sorted(glob.glob(os.path.join(K8S, "**", "*.yaml"), recursive=True))
everything = {os.path.relpath(p, K8S): docs(p) for p in files}
core = [p for p in files if not p.endswith("keda.yaml")]

# 1. The core resources against Kubernetes' own schemas.
validator = os.path.join(os.path.dirname(sys.executable), "kubernetes-validate")
r = subprocess.run([validator, "--strict", "--quiet", "-k", KUBERNETES_VERSION] + core,
                   capture_output=True, text=True)
check(r.returncode == 0, "kubernetes-validate: " + r.stdout + r.stderr)

# 2. KEDA's ScaledObject, as its documentation specifies it.
trigger_metadata = {
    "prometheus": {"required": ["serverAddress", "query", "threshold"]},
    "redis-streams": {"required": ["stream"],
                      "anyOf": [{"required": ["address"]}, {"required": ["host"]},
                                {"required": ["addressFromEnv"]}]},
}
scaled_object = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object", "additionalProperties": False,
            "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {"type": "object", "required": ["name"],
                                   "properties": {"name": {"type": "string"},
                                                  "kind": {"type": "string"},
                                                  "apiVersion": {"type": "string"}},
                                   "additionalProperties": False},
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "idleReplicaCount": {"type": "integer", "minimum": 0},
                "advanced": {"type": "object"},
                "fallback": {"type": "object"},
                "triggers": {
                    "type": "array", "minItems": 1,
                    "items": {
                        "type": "object", "required": ["type", "metadata"],
                        "properties": {
                            "type": {"enum": sorted(trigger_metadata)},
                            "metadata": {"type": "object",
                                         "additionalProperties": {"type": "string"}},
                            "authenticationRef": {"type": "object"},
                            "name": {"type": "string"},
                        },
                        "additionalProperties": False,
                    },
                },
            },
        },
    },
}
for d in everything["keda.yaml"]:
    try:
        jsonschema.validate(d, scaled_object)
        for t in d["spec"]["triggers"]:
            spec = dict(trigger_metadata[t["type"]], type="object")
            jsonschema.validate(t["metadata"], spec)
        check(d["spec"]["minReplicaCount"] <= d["spec"]["maxReplicaCount"],
              "keda.yaml: minReplicaCount > maxReplicaCount")
    except jsonschema.ValidationError as e:
        failures.append(f"keda.yaml ({d['metadata']['name']}): {e.message} at "
                        f"{'/'.join(map(str, e.absolute_path))}")

# 3. prometheus-adapter's rules (its config file, inside the ConfigMap).
adapter_rules = {
    "type": "object", "required": ["rules"], "additionalProperties": False,
    "properties": {"rules": {"type": "array", "minItems": 1, "items": {
        "type": "object", "additionalProperties": False,
        "required": ["seriesQuery", "resources", "name", "metricsQuery"],
        "properties": {
            "seriesQuery": {"type": "string"},
            "seriesFilters": {"type": "array"},
            "resources": {"type": "object", "properties": {
                "overrides": {"type": "object", "additionalProperties": {
                    "type": "object", "required": ["resource"],
                    "properties": {"resource": {"type": "string"}, "group": {"type": "string"}},
                    "additionalProperties": False}},
                "template": {"type": "string"}}, "additionalProperties": False},
            "name": {"type": "object", "required": ["matches"], "additionalProperties": False,
                     "properties": {"matches": {"type": "string"}, "as": {"type": "string"}}},
            "metricsQuery": {"type": "string", "pattern": "<<\\.Series>>"},
        }}}},
}
adapter = yaml.safe_load(everything["prometheus-adapter.yaml"][0]["data"]["config.yaml"])
try:
    jsonschema.validate(adapter, adapter_rules)
except jsonschema.ValidationError as e:
    failures.append(f"prometheus-adapter.yaml: {e.message} at {list(e.absolute_path)}")
served = {}
for rule in adapter.get("rules", []):
    served[rule["name"].get("as", rule["name"]["matches"])] = rule["seriesQuery"]

# 4. The deployment files, as the binary reads them (paths pointed at stand-ins).
with open(os.path.join(ROOT, "runtime", "metrics.cpp")) as f:
    exported = set(re.findall(r'"(actorserve_[a-z_]+)"', f.read()))
cm = next(d for d in everything["configmap.yaml"] if d["kind"] == "ConfigMap")
deployment_files = {}
with tempfile.TemporaryDirectory() as tmp:
    for name in ("resnet18.pt", "tls.crt", "tls.key", "ca.crt"):
        open(os.path.join(tmp, name), "w").close()
    for key, text in cm["data"].items():
        deployment_files[key] = json.loads(text)
        path = os.path.join(tmp, key)
        with open(path, "w") as f:
            f.write(text.replace("/models/", tmp + "/").replace("/etc/actorserve/tls/", tmp + "/"))
        r = subprocess.run([BINARY, "check-config", path], capture_output=True, text=True)
        check(r.returncode == 0, f"configmap.yaml {key}: {r.stdout}{r.stderr}")

# 5. References between the files.
by_kind = {}
for rel, ds in everything.items():
    for d in ds:
        by_kind.setdefault(d["kind"], {}).setdefault(d["metadata"]["name"], []).append((rel, d))
front = by_kind["Deployment"]["actorserve-front"][0][1]
workers = [d for _, d in by_kind["Deployment"]["actorserve-worker"]]
for dep in [front] + workers:
    labels = dep["spec"]["template"]["metadata"]["labels"]
    check(all(labels.get(k) == v for k, v in dep["spec"]["selector"]["matchLabels"].items()),
          f"{dep['metadata']['name']}: its selector does not match its pods' labels")
    pod = dep["spec"]["template"]["spec"]
    for v in pod["volumes"]:
        if "configMap" in v:
            check(v["configMap"]["name"] in by_kind["ConfigMap"],
                  f"{dep['metadata']['name']}: no ConfigMap {v['configMap']['name']}")
    for c in pod["containers"]:
        cfg = c["args"][c["args"].index("--config") + 1]
        check(os.path.basename(cfg) in cm["data"],
              f"{dep['metadata']['name']}: {cfg} is not in the ConfigMap")
front_cfg = deployment_files["front.json"]["server"]
worker_cfg = deployment_files["worker.json"]["server"]
# Grace periods cover the drains (and the front's preStop pause).
pre_stop = int(front["spec"]["template"]["spec"]["containers"][0]["lifecycle"]["preStop"]["exec"]
               ["command"][1])
check(front["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
      > pre_stop + front_cfg["http"]["drain_timeout_ms"] / 1000,
      "front: terminationGracePeriodSeconds does not cover preStop + http.drain_timeout_ms")
for w in workers:
    check(w["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
          > worker_cfg["cluster"]["drain_timeout_ms"] / 1000,
          "worker: terminationGracePeriodSeconds does not cover cluster.drain_timeout_ms")
# Ports and Services: probes on the HTTP port; the cluster Service on the front's listen port;
# workers' seeds name it.
front_container = front["spec"]["template"]["spec"]["containers"][0]
ports = {p["name"]: p["containerPort"] for p in front_container["ports"]}
check(ports["http"] == front_cfg["http"]["port"], "front: containerPort http != http.port")
check(ports["cluster"] == front_cfg["cluster"]["listen"]["port"],
      "front: containerPort cluster != cluster.listen.port")
cluster_svc = by_kind["Service"]["actorserve-cluster"][0][1]
cluster_port = cluster_svc["spec"]["ports"][0]["port"]
check(worker_cfg["cluster"]["seeds"] == [f"actorserve-cluster:{cluster_port}"],
      "worker.json: seeds do not name the actorserve-cluster Service")
for svc in ("actorserve-front", "actorserve-cluster"):
    sel = by_kind["Service"][svc][0][1]["spec"]["selector"]
    check(all(front["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in sel.items()),
          f"Service {svc} does not select the front's pods")
# The autoscalers: the worker Deployment, metrics actorserve exports and the adapter serves.
hpa = by_kind["HorizontalPodAutoscaler"]["actorserve-worker"][0][1]
check(hpa["spec"]["scaleTargetRef"]["name"] == "actorserve-worker", "hpa: wrong target")
for m in hpa["spec"]["metrics"]:
    name = m["object"]["metric"]["name"]
    check(name in served, f"hpa: metric {name} is not served by the adapter")
    check(m["object"]["describedObject"]["name"] in by_kind["Service"],
          f"hpa: no Service {m['object']['describedObject']['name']}")
for name, query in served.items():
    series = re.match(r"(actorserve_[a-z_]+)", query).group(1)
    check(series in exported, f"prometheus-adapter: {series} is not a series actorserve exports")
for d in everything["keda.yaml"]:
    check(d["spec"]["scaleTargetRef"]["name"] == "actorserve-worker", "keda: wrong target")
    for t in d["spec"]["triggers"]:
        if t["type"] == "prometheus":
            for series in re.findall(r"actorserve_[a-z_]+", t["metadata"]["query"]):
                check(series in exported, f"keda: {series} is not a series actorserve exports")
# The GPU variant asks for a GPU; the CPU one does not.
for rel, d in by_kind["Deployment"]["actorserve-worker"]:
    limits = d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    check(("nvidia.com/gpu" in limits) == rel.startswith("gpu/"),
          f"{rel}: nvidia.com/gpu limits where they do not belong")

if failures:
    print("\n".join("FAILED: " + f for f in failures))
    sys.exit(1)
print(f"kubernetes manifests: ok ({len(files)} files, Kubernetes {KUBERNETES_VERSION})")
