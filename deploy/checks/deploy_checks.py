#!/usr/bin/env python3
"""Consistency checks of deploy/ that no off-the-shelf linter makes, run by deploy/validate.

Each subcommand checks one concern and exits non-zero with a message naming the file and the
mismatch. The linters (hadolint, kubernetes-validate, promtool, docker compose) check each file
against its own format; these check the files against each other and against the service:

  dockerfiles REPO          build context and toolchain: .dockerignore files identical and listing
                            every workspace member, Rust version = Cargo.toml's, the serve images
                            built by deploy/build-serve.sh, CUDA base = onnxruntime-gpu's CUDA major
  rules RULES PROMRULE      deploy/prometheus rules == the Kubernetes PrometheusRule's groups
  dashboard JSON OUT        the Grafana dashboard's structure; writes its queries as a rules file
                            (Grafana variables substituted) for `promtool check rules` to parse
  k8s RENDERED.yaml...      rendered kustomize output: probes, selectors, ports, HPA metrics vs the
                            prometheus-adapter rules, GPU requests in the cuda overlay
  metrics METRICS FILES...  every melfuse metric the dashboard, rules and HPA use is in a live
                            /metrics text, and DESIGN.md's metrics are all on the dashboard
"""

import json
import re
import sys
import tomllib
from pathlib import Path

import yaml

# DESIGN.md, "Metrics": what the dashboard must show (histograms by their base name).
DESIGN_METRICS = [
    "melfuse_requests_total",
    "melfuse_request_duration_seconds",
    "melfuse_stage_duration_seconds",
    "melfuse_batch_size",
    "melfuse_queue_depth",
    "melfuse_inflight_requests",
    "melfuse_generated_audio_seconds_total",
    "melfuse_blend_weight_total",
    "melfuse_model_info",
]
PROCESS_METRICS = ["process_cpu_seconds_total", "process_resident_memory_bytes"]
METRIC_NAME = re.compile(r"\b((?:melfuse|process)_[a-z_]+)\b")


class CheckError(Exception):
    """A mismatch, with the file it is in."""


def fail(where, message):
    raise CheckError(f"{where}: {message}")


def load_yaml_documents(path):
    with open(path) as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


# --- dockerfiles ----------------------------------------------------------------------------------


def check_dockerfiles(repo):
    repo = Path(repo)
    deploy = repo / "deploy"
    cargo = tomllib.loads((repo / "Cargo.toml").read_text())
    rust_version = cargo["workspace"]["package"]["rust-version"]
    members = {m.split("/")[0] for m in cargo["workspace"]["members"]}
    ignores = sorted(deploy.glob("Dockerfile.*.dockerignore"))
    dockerfiles = sorted(p for p in deploy.glob("Dockerfile.*") if not p.name.endswith(".dockerignore"))
    if {p.name + ".dockerignore" for p in dockerfiles} != {p.name for p in ignores}:
        fail(deploy, "every Dockerfile.* needs its Dockerfile.*.dockerignore (BuildKit reads it)")
    texts = {p: p.read_text() for p in ignores}
    if len(set(texts.values())) != 1:
        fail(deploy, "the Dockerfile.*.dockerignore files differ; keep them identical")
    allowed = {line[1:].strip() for line in next(iter(texts.values())).splitlines() if line.startswith("!")}
    for member in sorted(members):
        if member not in allowed:
            fail(ignores[0], f"workspace member directory `{member}` is not in the build context (add `!{member}`)")
    for needed in ["Cargo.toml", "Cargo.lock", "deploy/build-serve.sh"]:
        if needed not in allowed:
            fail(ignores[0], f"`{needed}` is not in the build context")

    for dockerfile in dockerfiles:
        text = dockerfile.read_text()
        found = re.search(r"^ARG RUST_VERSION=(\S+)$", text, re.M)
        if not found:
            fail(dockerfile, "no `ARG RUST_VERSION=` (the pinned toolchain)")
        if not (found.group(1) + ".").startswith(rust_version + "."):
            fail(dockerfile, f"RUST_VERSION {found.group(1)} is not Cargo.toml's rust-version {rust_version}")
        if "USER 10001:10001" not in text:
            fail(dockerfile, "the runtime stage must run as the non-root user 10001")
    for name, flag in [("Dockerfile.serve", ""), ("Dockerfile.serve-cuda", " --gpu")]:
        text = (deploy / name).read_text()
        if f"deploy/build-serve.sh{flag} /stage" not in text:
            fail(deploy / name, f"must build with `deploy/build-serve.sh{flag} /stage`, the script CI runs")
        for needed in ["HEALTHCHECK", "/healthz", "MELFUSE_MODEL=/models/demo", "ORT_DYLIB_PATH="]:
            if needed not in text:
                fail(deploy / name, f"missing `{needed}`")
    print(f"dockerfiles: {len(dockerfiles)} Dockerfiles, rust {rust_version}, build context covers {sorted(members)}")


def check_cuda_base(repo, report_path):
    """The CUDA serve image's base matches the CUDA major of the pinned onnxruntime-gpu wheel.

    REPORT is `pip install --dry-run --report` JSON for that wheel (metadata only, no download).
    """
    report = json.loads(Path(report_path).read_text())
    metadata = report["install"][0]["metadata"]
    requires = metadata.get("requires_dist", [])
    cuda = None
    cudnn = None
    for requirement in requires:
        match = re.match(r"nvidia-cuda-runtime(?:-cu(\d+))?\s*~=\s*(\d+)", requirement)
        if match:
            cuda = match.group(1) or match.group(2)
        match = re.match(r"nvidia-cudnn-cu\d+\s*~=\s*(\d+)", requirement)
        if match:
            cudnn = match.group(1)
    if cuda is None:
        fail(report_path, f"onnxruntime-gpu {metadata['version']} names no nvidia-cuda-runtime requirement: {requires}")
    dockerfile = Path(repo) / "deploy" / "Dockerfile.serve-cuda"
    found = re.search(r"^ARG CUDA_VERSION=(\d+)\.", dockerfile.read_text(), re.M)
    if not found or found.group(1) != cuda:
        fail(dockerfile, f"CUDA_VERSION major must be {cuda}, the CUDA of onnxruntime-gpu {metadata['version']}")
    if "-cudnn-runtime-" not in dockerfile.read_text():
        fail(dockerfile, "the runtime base must be a -cudnn-runtime- image (onnxruntime-gpu needs cuDNN)")
    print(f"cuda base: onnxruntime-gpu {metadata['version']} wants CUDA {cuda}.x, cuDNN {cudnn}.x; image CUDA {found.group(1)}")


# --- prometheus rules -----------------------------------------------------------------------------


def check_rules(rules_path, prometheusrule_path):
    rules = yaml.safe_load(Path(rules_path).read_text())["groups"]
    (operator_rule,) = load_yaml_documents(prometheusrule_path)
    if operator_rule["spec"]["groups"] != rules:
        fail(prometheusrule_path, f"spec.groups differ from {rules_path}; copy the groups over")
    print(f"rules: {sum(len(g['rules']) for g in rules)} rules, PrometheusRule in step")


# --- grafana dashboard ----------------------------------------------------------------------------


def substitute_grafana_variables(expr):
    return (
        expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("$job", "melfuse-serve")
        .replace("$instance", ".*")
    )


def check_dashboard(path, rules_out):
    dashboard = json.loads(Path(path).read_text())
    for key in ["uid", "title", "panels", "templating", "schemaVersion"]:
        if key not in dashboard:
            fail(path, f"missing `{key}`")
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    if not {"datasource", "job", "instance"} <= variables:
        fail(path, f"variables datasource, job and instance are needed, found {sorted(variables)}")
    ids = set()
    occupied = set()
    expressions = []
    for panel in dashboard["panels"]:
        where = f"{path} panel {panel.get('id')} ({panel.get('title')!r})"
        if panel.get("id") in ids:
            fail(where, "duplicate id")
        ids.add(panel.get("id"))
        grid = panel.get("gridPos", {})
        if not all(isinstance(grid.get(k), int) for k in "xywh") or grid["x"] + grid["w"] > 24:
            fail(where, f"bad gridPos {grid}")
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])}
        if cells & occupied:
            fail(where, "overlaps another panel")
        occupied |= cells
        if panel["type"] == "row":
            continue
        if not panel.get("title") or not panel.get("description"):
            fail(where, "needs a title and a description (what the metric means)")
        if panel.get("datasource", {}).get("uid") != "${datasource}":
            fail(where, "must use the ${datasource} variable")
        if not panel.get("targets"):
            fail(where, "has no queries")
        for target in panel["targets"]:
            if not target.get("expr"):
                fail(where, f"target {target.get('refId')} has no expr")
            if 'job="$job"' not in target["expr"]:
                fail(where, f"target {target['refId']} ignores the $job variable")
            expressions.append((panel["id"], target["refId"], target["expr"]))
    used = set()
    for _, _, expr in expressions:
        used |= set(METRIC_NAME.findall(expr))
    bases = {re.sub(r"_(bucket|sum|count)$", "", name) for name in used}
    missing = [m for m in DESIGN_METRICS + PROCESS_METRICS if m not in bases]
    if missing:
        fail(path, f"no panel shows {missing}")
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:panel{pid}:{ref.lower()}", "expr": substitute_grafana_variables(expr)}
                    for pid, ref, expr in expressions
                ],
            }
        ]
    }
    Path(rules_out).write_text(yaml.safe_dump(rules, sort_keys=False))
    print(f"dashboard: {len(dashboard['panels'])} panels, {len(expressions)} queries over {len(bases)} metrics")


# --- kubernetes -----------------------------------------------------------------------------------


def by_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def check_rendered(path, adapter_values):
    docs = load_yaml_documents(path)
    name = Path(path).name
    adapter_metrics = {rule["name"]["as"] for rule in adapter_values["rules"]["custom"]}
    deployments = by_kind(docs, "Deployment")
    jobs = by_kind(docs, "Job")
    if not deployments and not jobs:
        fail(name, "renders neither a Deployment nor a Job")
    config_maps = {d["metadata"]["name"]: d.get("data", {}) for d in by_kind(docs, "ConfigMap")}
    for deployment in deployments:
        where = f"{name} Deployment/{deployment['metadata']['name']}"
        pod = deployment["spec"]["template"]
        labels = pod["metadata"]["labels"]
        if not matches(deployment["spec"]["selector"]["matchLabels"], labels):
            fail(where, "selector does not match the pod labels")
        (container,) = pod["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        if container["readinessProbe"]["httpGet"]["path"] != "/readyz":
            fail(where, "readiness probe must be /readyz")
        if container["livenessProbe"]["httpGet"]["path"] != "/healthz":
            fail(where, "liveness probe must be /healthz")
        for probe in ["readinessProbe", "livenessProbe", "startupProbe"]:
            if container[probe]["httpGet"]["port"] not in ports:
                fail(where, f"{probe} port is not a container port name")
        resources = container["resources"]
        if "cpu" not in resources.get("requests", {}):
            fail(where, "needs a CPU request (the HPA's CPU utilisation is relative to it)")
        env = {}
        for source in container.get("envFrom", []):
            config_map = source["configMapRef"]["name"]
            if config_map not in config_maps:
                fail(where, f"envFrom names ConfigMap {config_map}, which is not rendered")
            env.update(config_maps[config_map])
        device = env.get("MELFUSE_DEVICE")
        gpus = resources.get("limits", {}).get("nvidia.com/gpu")
        if (device == "cuda") != (gpus is not None):
            fail(where, f"MELFUSE_DEVICE={device} but nvidia.com/gpu limit {gpus}")
        bind_port = int(env.get("MELFUSE_BIND", "0.0.0.0:8080").rsplit(":", 1)[1])
        if bind_port not in ports.values():
            fail(where, f"MELFUSE_BIND port {bind_port} is not a container port")
        for service in by_kind(docs, "Service"):
            if matches(service["spec"]["selector"], labels):
                for port in service["spec"]["ports"]:
                    if port["targetPort"] not in ports:
                        fail(f"{name} Service/{service['metadata']['name']}", f"targetPort {port['targetPort']} unknown")
        for pdb in by_kind(docs, "PodDisruptionBudget"):
            if not matches(pdb["spec"]["selector"]["matchLabels"], labels):
                fail(f"{name} PodDisruptionBudget", "selector does not match the pods")
        for monitor in by_kind(docs, "ServiceMonitor"):
            services = [s for s in by_kind(docs, "Service") if matches(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])]
            if not services:
                fail(f"{name} ServiceMonitor", "selects no Service")
            service_ports = {p["name"] for s in services for p in s["spec"]["ports"]}
            for endpoint in monitor["spec"]["endpoints"]:
                if endpoint["port"] not in service_ports or endpoint.get("path", "/metrics") != "/metrics":
                    fail(f"{name} ServiceMonitor", f"endpoint {endpoint} does not scrape /metrics on a Service port")
        for hpa in by_kind(docs, "HorizontalPodAutoscaler"):
            where = f"{name} HorizontalPodAutoscaler/{hpa['metadata']['name']}"
            target = hpa["spec"]["scaleTargetRef"]
            if (target["kind"], target["name"]) != ("Deployment", deployment["metadata"]["name"]):
                fail(where, f"scales {target}, not the Deployment")
            kinds = {m["type"] for m in hpa["spec"]["metrics"]}
            if kinds != {"Resource", "Pods"}:
                fail(where, f"must scale on CPU and on a per-pod custom metric, has {sorted(kinds)}")
            for metric in hpa["spec"]["metrics"]:
                if metric["type"] == "Pods" and metric["pods"]["metric"]["name"] not in adapter_metrics:
                    fail(where, f"metric {metric['pods']['metric']['name']} is not served by prometheus-adapter ({sorted(adapter_metrics)})")
            if hpa["spec"]["minReplicas"] < 2 and by_kind(docs, "PodDisruptionBudget"):
                fail(where, "minReplicas < 2 with a minAvailable 1 PodDisruptionBudget blocks node drains")
    for job in jobs:
        where = f"{name} Job/{job['metadata']['name']}"
        (container,) = job["spec"]["template"]["spec"]["containers"]
        if container["resources"].get("limits", {}).get("nvidia.com/gpu") is None:
            fail(where, "the training Job must request a GPU")
        script = "\n".join(container.get("args", []))
        for step in ["prepare", "fit", "eval", "export"]:
            if f"melfuse-train {step}" not in script:
                fail(where, f"does not run `melfuse-train {step}`")
        if "--triton" not in script or "/models" not in script:
            fail(where, "must export the bundle (and Triton repository) to the models volume")
    kinds = sorted({d["kind"] for d in docs})
    print(f"k8s {name}: {len(docs)} objects ({', '.join(kinds)}) consistent")


# --- metrics --------------------------------------------------------------------------------------


def check_metrics(metrics_path, files):
    exposed = set()
    for line in Path(metrics_path).read_text().splitlines():
        if line and not line.startswith("#"):
            exposed.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    wanted = {}
    for path in files:
        text = Path(path).read_text()
        for metric in METRIC_NAME.findall(text):
            wanted.setdefault(metric, path)
    # A histogram is exposed as NAME_bucket, NAME_sum and NAME_count; texts may name it by NAME.
    missing = {m: f for m, f in wanted.items() if m not in exposed and m + "_bucket" not in exposed}
    if missing:
        fail(metrics_path, "not exposed by melfuse-serve but used by " + ", ".join(f"{f} ({m})" for m, f in sorted(missing.items())))
    print(f"metrics: all {len(wanted)} metric names used by dashboard, rules and HPA are exposed")


def main(argv):
    command, args = argv[1], argv[2:]
    try:
        if command == "dockerfiles":
            check_dockerfiles(*args)
        elif command == "cuda-base":
            check_cuda_base(*args)
        elif command == "rules":
            check_rules(*args)
        elif command == "dashboard":
            check_dashboard(*args)
        elif command == "k8s":
            adapter = yaml.safe_load(Path(args[0]).read_text())
            for rendered in args[1:]:
                check_rendered(rendered, adapter)
        elif command == "metrics":
            check_metrics(args[0], args[1:])
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except CheckError as error:
        print(f"FAILED {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
