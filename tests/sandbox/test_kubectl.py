"""kubectl, unmodified, against the sandbox over HTTPS with the kubeconfig the sandbox writes.

What an operator types at a real cluster must work here too: the server's columns for
``get`` (the Table form), ``describe``, client-side and server-side ``apply``, ``cordon``,
``drain`` through the Eviction API, ``label``, ``taint``, ``auth can-i``, ``get -w`` and
``delete``. Every call has a timeout; kubectl's discovery cache lives in the test's own
directory.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.support.waits import wait_for

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (the kubectl tests need it on PATH)")

MANIFEST = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
  namespace: default
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: hello}}
  template:
    metadata:
      labels: {{app: hello}}
    spec:
      containers:
      - name: hello
        image: nginx:1.27
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: hello
  namespace: default
spec:
  maxUnavailable: 1
  selector:
    matchLabels: {{app: hello}}
"""


def newest_kubectl() -> tuple[str, tuple[int, int]]:
    """The newest kubectl at hand and its version: a ``kubectl.1.NN`` beside the one on PATH (gcloud's kubectl is a
    dispatcher that runs the one matching the server, 1.30 for the sandbox, unless a flag such as ``--user`` stops it
    asking), or that one."""
    found = [(tuple(int(n) for n in m.groups()), str(path)) for path in Path(os.path.realpath(KUBECTL or "")).parent.glob("kubectl.1.*")
             if (m := re.fullmatch(r"kubectl\.(1)\.(\d+)", path.name))]
    if found:
        version, path = max(found)
        return path, (version[0], version[1])
    text = subprocess.run([KUBECTL or "kubectl", "version", "--client", "-o", "json"], capture_output=True, text=True, timeout=30).stdout
    client_version = yaml.safe_load(text or "{}").get("clientVersion") or {}
    return KUBECTL or "kubectl", (int(client_version.get("major") or 0), int(re.sub(r"\D", "", client_version.get("minor") or "0") or 0))


class Kubectl:
    def __init__(self, kubeconfig: Path, home: Path, binary: str | None = None) -> None:
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "KUBECONFIG": str(kubeconfig)}
        self.home = home
        self.binary = binary or KUBECTL

    def __call__(self, *args: str, ok: bool = True, timeout: float = 60, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([self.binary, "--cache-dir", str(self.home / "cache"), *args], env=self.env, capture_output=True,
                                text=True, timeout=timeout, input=stdin)
        if ok:
            assert result.returncode == 0, f"kubectl {' '.join(args)} exited {result.returncode}: {result.stderr}{result.stdout}"
        return result

    def lines(self, *args: str) -> list[list[str]]:
        return [line.split() for line in self(*args).stdout.splitlines()]

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([self.binary, "--cache-dir", str(self.home / "cache"), *args], env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.fixture
def kubectl(sandbox, sandbox_cluster, tmp_path) -> Kubectl:
    (path,) = sandbox.write_kubeconfigs(tmp_path / "kubeconfigs", names=[sandbox_cluster.name])
    return Kubectl(path, tmp_path)


def test_the_kubeconfig_is_https_with_the_ca_inline(kubectl, sandbox_cluster):
    written = yaml.safe_load(Path(kubectl.env["KUBECONFIG"]).read_text())["clusters"][0]["cluster"]
    assert written["server"].startswith("https://") and written["certificate-authority-data"]
    assert "insecure-skip-tls-verify" not in written
    assert kubectl("version", "-o", "yaml").stdout.count("gitVersion: v1.30.4") == 1  # the server's


def test_get_prints_the_servers_columns(kubectl, sandbox_cluster):
    sandbox_cluster.upgrade_node(f"{sandbox_cluster.name}-w-1", "1.30.4", delay=0)  # NodeNotReady, NodeReady: events
    nodes = kubectl.lines("get", "nodes")
    assert nodes[0] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert [f"{sandbox_cluster.name}-cp-1", "Ready", "control-plane"] == nodes[1][:3] and nodes[1][4] == "v1.30.4"
    wide = kubectl.lines("get", "nodes", "-o", "wide")[0]
    assert wide[:8] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE"]
    pods = kubectl.lines("get", "pods", "-A")
    assert pods[0] == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert len(pods) - 1 == len(sandbox_cluster.items("pods")) and all(row[2] == "1/1" and row[3] == "Running" for row in pods[1:])
    assert kubectl.lines("get", "namespaces")[0] == ["NAME", "STATUS", "AGE"]
    deployments = kubectl.lines("get", "deployments", "-A")
    assert deployments[0] == ["NAMESPACE", "NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert ["kube-system", "coredns", "2/2", "2", "2"] == next(row for row in deployments if row[1] == "coredns")[:5]
    events = kubectl("get", "events", "-A").stdout.splitlines()
    assert events[0].split() == ["NAMESPACE", "LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert any("NodeNotReady" in line and f"node/{sandbox_cluster.name}-w-1" in line for line in events[1:])
    assert kubectl("get", "configmaps", "-n", "kube-system").stderr.strip() == "No resources found in kube-system namespace."
    assert kubectl.lines("get", "serviceaccounts")[0] == ["NAME", "AGE"]


def test_describe_node(kubectl, sandbox_cluster):
    node = f"{sandbox_cluster.name}-w-1"
    sandbox_cluster.upgrade_node(node, "1.30.4", delay=0)
    text = kubectl("describe", "node", node).stdout
    assert f"Name:               {node}" in text and "Roles:              worker" in text
    assert "Kubelet Version:            v1.30.4" in text and "Non-terminated Pods:" in text
    assert "NodeNotReady" in text  # its events, found by field selector


def test_apply_client_side_then_server_side(kubectl, sandbox_cluster):
    first = kubectl("apply", "-f", "-", stdin=MANIFEST.format(replicas=2)).stdout
    assert "deployment.apps/hello created" in first and "poddisruptionbudget.policy/hello created" in first
    annotations = sandbox_cluster.get("deployments", "default", "hello")["metadata"]["annotations"]
    assert "kubectl.kubernetes.io/last-applied-configuration" in annotations
    assert "deployment.apps/hello configured" in kubectl("apply", "-f", "-", stdin=MANIFEST.format(replicas=3)).stdout
    assert sandbox_cluster.get("deployments", "default", "hello")["spec"]["replicas"] == 3
    server_side = kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=MANIFEST.format(replicas=1)).stdout
    assert "deployment.apps/hello serverside-applied" in server_side
    assert sandbox_cluster.get("deployments", "default", "hello")["spec"]["replicas"] == 1
    assert kubectl("apply", "--server-side", "-f", "-", stdin=MANIFEST.format(replicas=1).replace("hello", "other")).returncode == 0
    assert sandbox_cluster.get("poddisruptionbudgets", "default", "other")["spec"]["maxUnavailable"] == 1


def test_cordon_drain_uncordon(kubectl, kube, sandbox_cluster):
    kubectl("apply", "-f", "-", stdin=MANIFEST.format(replicas=2))
    v1 = client.CoreV1Api(kube)
    wait_for(lambda: len([p for p in v1.list_namespaced_pod("default", label_selector="app=hello").items
                          if p.status.phase == "Running"]) == 2, what="hello to run")
    node = v1.list_namespaced_pod("default", label_selector="app=hello").items[0].spec.node_name
    assert f"node/{node} cordoned" in kubectl("cordon", node).stdout
    drained = kubectl("drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=60s", timeout=90)
    assert f"node/{node} drained" in drained.stdout
    assert "evicting pod default/hello-" in drained.stderr + drained.stdout
    left = [p for p in v1.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}").items
            if not any(ref.kind == "DaemonSet" for ref in p.metadata.owner_references or [])
            and "kubernetes.io/config.mirror" not in (p.metadata.annotations or {})]
    assert left == []
    assert kubectl.lines("get", "node", node)[1][1] == "Ready,SchedulingDisabled"
    kubectl("uncordon", node)
    assert not sandbox_cluster.get("nodes", "", node)["spec"].get("unschedulable")


def test_label_and_taint(kubectl, sandbox_cluster):
    node = f"{sandbox_cluster.name}-w-2"
    kubectl("label", "node", node, "pksweb.io/tenant=acme")
    kubectl("taint", "node", node, "pksweb.io/tenant=acme:NoSchedule")
    stored = sandbox_cluster.get("nodes", "", node)
    assert stored["metadata"]["labels"]["pksweb.io/tenant"] == "acme"
    assert {"key": "pksweb.io/tenant", "value": "acme", "effect": "NoSchedule"} in stored["spec"]["taints"]
    control_plane = f"{sandbox_cluster.name}-cp-1"
    kubectl("taint", "node", control_plane, "extra=yes:NoExecute")
    kubectl("taint", "node", control_plane, "extra=yes:NoExecute-")
    assert [t["key"] for t in sandbox_cluster.get("nodes", "", control_plane)["spec"]["taints"]] == [
        "node-role.kubernetes.io/control-plane"]  # the other taint kept
    kubectl("label", "node", node, "pksweb.io/tenant-")
    assert "pksweb.io/tenant" not in sandbox_cluster.get("nodes", "", node)["metadata"]["labels"]


def test_auth_can_i(kubectl, sandbox, sandbox_cluster, tmp_path):
    assert kubectl("auth", "can-i", "create", "pods").stdout.strip() == "yes"
    assert kubectl("auth", "can-i", "*", "*").stdout.strip() == "yes"
    viewer = tmp_path / "viewer.kubeconfig"
    viewer.write_text(yaml.safe_dump(sandbox.kubeconfig(sandbox_cluster.name, readonly=True)))
    as_viewer = Kubectl(viewer, tmp_path)
    refused = as_viewer("auth", "can-i", "delete", "nodes", ok=False)
    assert refused.returncode == 1 and refused.stdout.strip() == "no"
    assert as_viewer("auth", "can-i", "list", "nodes").stdout.strip() == "yes"
    # A restricted user, by RBAC in the cluster, asked about by impersonation (kubectl --as).
    sandbox_cluster.add_user("alice")
    sandbox_cluster.create("roles", {"metadata": {"name": "pod-reader"},
                                     "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}, "default")
    sandbox_cluster.create("rolebindings", {"metadata": {"name": "alice"}, "subjects": [{"kind": "User", "name": "alice"}],
                                            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"}},
                           "default")
    assert kubectl("auth", "can-i", "list", "pods", "--as=alice").stdout.strip() == "yes"
    assert kubectl("auth", "can-i", "delete", "pods", "--as=alice", ok=False).stdout.strip() == "no"
    assert kubectl("auth", "can-i", "list", "pods", "-n", "kube-system", "--as=alice", ok=False).stdout.strip() == "no"
    rules = kubectl("auth", "can-i", "--list", "--as=alice").stdout
    assert "pods" in rules and "[get list]" in rules
    forbidden = kubectl("get", "pods", "-n", "kube-system", "--as=alice", ok=False)
    assert forbidden.returncode == 1 and 'User "alice" cannot list resource "pods"' in forbidden.stderr


def _reader(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _until(lines: queue.Queue[str], wanted: str, timeout: float = 20) -> list[str]:
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            seen.append(lines.get(timeout=0.2))
        except queue.Empty:
            continue
        if wanted in seen[-1]:
            return seen
    raise AssertionError(f"kubectl never printed {wanted!r}; it printed {seen!r}")


def test_get_watch_sees_a_change_arrive(kubectl, kube, sandbox_cluster):
    proc = kubectl.popen("get", "pods", "--watch", "--request-timeout=0")
    try:
        lines = _reader(proc)
        wait_for(lambda: any(w.resource.plural == "pods" for w in sandbox_cluster.store.watchers), timeout=20, what="kubectl to watch")
        client.CoreV1Api(kube).create_namespaced_pod("default", client.V1Pod(metadata=client.V1ObjectMeta(name="arrives"),
                                                                              spec=client.V1PodSpec(containers=[
                                                                                  client.V1Container(name="c", image="nginx:1.27")])))
        seen = _until(lines, "arrives")
        assert seen[-2].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"] and seen[-1].split()[:3] == ["arrives", "0/1", "Pending"]
        assert "Running" in _until(lines, "Running")[-1]
        assert proc.poll() is None  # still watching until told to stop
    finally:
        proc.terminate()
        proc.wait(10)


def test_delete(kubectl, sandbox_cluster):
    kubectl("apply", "-f", "-", stdin=MANIFEST.format(replicas=1))
    deleted = kubectl("delete", "-f", "-", stdin=MANIFEST.format(replicas=1), timeout=60).stdout
    assert 'deployment.apps "hello" deleted' in deleted and 'poddisruptionbudget.policy "hello" deleted' in deleted
    assert sandbox_cluster.get("deployments", "default", "hello") is None
    wait_for(lambda: not [p for p in sandbox_cluster.items("pods", "default") if p["metadata"]["name"].startswith("hello-")],
             what="the deployment's pods to go with it")
    missing = kubectl("delete", "configmap", "nope", ok=False)
    assert missing.returncode == 1 and 'configmaps "nope" not found' in missing.stderr


SAR = """
apiVersion: authorization.k8s.io/v1
kind: SubjectAccessReview
spec:
  user: system:serviceaccount:kt:bot
  resourceAttributes: {namespace: kt, verb: get, resource: pods}
"""


def test_service_accounts_in_rbac_and_impersonation(kubectl, sandbox_cluster):
    kubectl("create", "namespace", "kt")
    kubectl("create", "serviceaccount", "bot", "-n", "kt")
    kubectl("create", "role", "pod-reader", "--verb=get,list", "--resource=pods", "-n", "kt")
    kubectl("create", "rolebinding", "bot-reads", "--role=pod-reader", "--serviceaccount=kt:bot", "-n", "kt")
    bot = "--as=system:serviceaccount:kt:bot"
    assert kubectl("auth", "can-i", "get", "pods", "-n", "kt", bot).stdout.strip() == "yes"
    assert kubectl("auth", "can-i", "get", "pods", "-n", "default", bot, ok=False).stdout.strip() == "no"
    assert kubectl("auth", "can-i", "delete", "pods", "-n", "kt", bot, ok=False).stdout.strip() == "no"
    listed = kubectl("auth", "can-i", "--list", "-n", "kt", bot).stdout
    assert re.search(r"^pods\s+\[\]\s+\[\]\s+\[get list\]", listed, re.M), listed
    assert "selfsubjectaccessreviews.authorization.k8s.io" in listed and "[/api/*]" in listed  # system:basic-user, :discovery
    review = yaml.safe_load(kubectl("create", "-f", "-", "-o", "yaml", stdin=SAR).stdout)
    assert review["status"]["allowed"] is True
    # A service account gets its groups: a binding to system:serviceaccounts:kt covers every account of kt.
    kubectl("create", "rolebinding", "all-of-kt", "--role=pod-reader", "--group=system:serviceaccounts:kt", "-n", "kt")
    assert kubectl("auth", "can-i", "list", "pods", "-n", "kt", "--as=system:serviceaccount:kt:other").stdout.strip() == "yes"
    # ... unless the request names the groups (--as-group), as kube-apiserver's impersonation has it.
    named = kubectl("auth", "can-i", "list", "pods", "-n", "kt", "--as=system:serviceaccount:kt:other", "--as-group=devs", ok=False)
    assert named.stdout.strip() == "no"
    kubectl("create", "rolebinding", "devs", "--role=pod-reader", "--group=devs", "-n", "kt")
    assert kubectl("auth", "can-i", "list", "pods", "-n", "kt", "--as=alice", "--as-group=devs").stdout.strip() == "yes"
    # Every impersonated user is system:authenticated.
    kubectl("create", "clusterrolebinding", "everyone-views", "--clusterrole=view", "--group=system:authenticated")
    assert kubectl("auth", "can-i", "list", "deployments", "-n", "demo", "--as=carol").stdout.strip() == "yes"


def test_default_cluster_roles_and_their_aggregation(kubectl, sandbox_cluster):
    roles = {row[0] for row in kubectl.lines("get", "clusterroles", "-l", "kubernetes.io/bootstrapping=rbac-defaults")[1:]}
    assert {"cluster-admin", "admin", "edit", "view", "system:basic-user", "system:discovery"} <= roles
    bindings = {row[0]: row[1] for row in kubectl.lines("get", "clusterrolebindings", "-o", "wide")[1:]}
    assert bindings["system:basic-user"] == "ClusterRole/system:basic-user" and "cluster-admin" in bindings
    kubectl("create", "rolebinding", "dev-edits", "--clusterrole=edit", "--user=dev", "-n", "demo")
    kubectl("create", "rolebinding", "ops-admins", "--clusterrole=admin", "--user=ops", "-n", "demo")

    def can(*args: str) -> bool:
        return kubectl("auth", "can-i", *args, "-n", "demo", ok=False).stdout.strip() == "yes"

    assert can("create", "deployments", "--as=dev") and can("create", "pods/eviction", "--as=dev") and can("get", "secrets", "--as=dev")
    assert not can("create", "rolebindings", "--as=dev") and not can("delete", "resourcequotas", "--as=dev")
    assert can("create", "rolebindings", "--as=ops") and can("patch", "deployments/scale", "--as=ops")
    assert not can("list", "nodes", "--as=ops")  # bound in a namespace: nothing cluster-wide
    # A ClusterRole labelled to aggregate into view reaches view, edit and admin.
    assert not can("list", "plans.upgrade.cattle.io", "--as=dev")
    kubectl("apply", "-f", "-", stdin="""
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: plan-viewer
  labels: {rbac.authorization.k8s.io/aggregate-to-view: "true"}
rules:
- {apiGroups: [upgrade.cattle.io], resources: [plans], verbs: [get, list, watch]}
""")
    assert can("list", "plans.upgrade.cattle.io", "--as=dev") and can("list", "plans.upgrade.cattle.io", "--as=ops")
    view = yaml.safe_load(kubectl("get", "clusterrole", "view", "-o", "yaml").stdout)
    assert {"apiGroups": ["upgrade.cattle.io"], "resources": ["plans"], "verbs": ["get", "list", "watch"]} in view["rules"]
    kubectl("delete", "clusterrole", "plan-viewer")
    assert not can("list", "plans.upgrade.cattle.io", "--as=dev")


@pytest.fixture
def kubectl_newest(sandbox, sandbox_cluster, tmp_path) -> Kubectl:
    binary, version = newest_kubectl()
    if version < (1, 32):
        pytest.skip(f"kubectl {version[0]}.{version[1]} sends JSON; protobuf bodies come from kubectl 1.32 and later")
    (path,) = sandbox.write_kubeconfigs(tmp_path / "kubeconfigs", names=[sandbox_cluster.name])
    return Kubectl(path, tmp_path, binary)


def test_kubectl_132_protobuf_bodies_scale_and_create_of_a_review(kubectl_newest, sandbox_cluster):
    kubectl = kubectl_newest
    kubectl("create", "namespace", "kt")
    kubectl("create", "role", "r", "--verb=get", "--resource=pods", "-n", "kt")
    sent = kubectl("create", "rolebinding", "x", "--role=r", "--user=u2", "-n", "kt", "-v=8").stderr
    assert "Content-Type: application/vnd.kubernetes.protobuf" in sent  # what this test is about
    binding = sandbox_cluster.get("rolebindings", "kt", "x")
    assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "u2"}]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}
    kubectl("create", "clusterrolebinding", "u2-views", "--clusterrole=view", "--user=u2")
    kubectl("create", "configmap", "settings", "-n", "kt", "--from-literal=a=b", "--from-literal=empty=")
    assert sandbox_cluster.get("configmaps", "kt", "settings")["data"] == {"a": "b", "empty": ""}
    kubectl("create", "deployment", "idle", "--image=nginx:1.27", "--replicas=0", "--port=80", "-n", "kt")
    spec = sandbox_cluster.get("deployments", "kt", "idle")["spec"]
    assert spec["replicas"] == 0 and "minReadySeconds" not in spec and "paused" not in spec  # a pointer's 0 kept, omitempty's left out
    assert spec["template"]["spec"]["containers"][0]["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert kubectl("auth", "can-i", "get", "pods", "-n", "kt", "--as=u2").stdout.strip() == "yes"
    review = yaml.safe_load(kubectl("create", "-f", "-", "-o", "yaml", stdin=SAR.replace("system:serviceaccount:kt:bot", "u2")).stdout)
    assert review["kind"] == "SubjectAccessReview" and review["status"]["allowed"] is True
    scaled = kubectl("scale", "deployment", "web", "--replicas=3", "-n", "demo")
    assert scaled.stdout.strip() == "deployment.apps/web scaled" and not scaled.stderr
    assert sandbox_cluster.get("deployments", "demo", "web")["spec"]["replicas"] == 3
    refused = kubectl("scale", "deployment", "web", "--replicas=4", "--current-replicas=1", "-n", "demo", ok=False)
    assert "Expected replicas to be 1, was 3" in refused.stderr


def test_describe_node_shows_its_lease_and_pods_their_ips(kubectl, sandbox_cluster):
    node = f"{sandbox_cluster.name}-w-1"
    described = kubectl("describe", "node", node).stdout
    assert "Failed to get lease" not in described and re.search(rf"HolderIdentity:\s+{node}", described)
    assert re.search(r"PodCIDR:\s+10\.244\.2\.0/24", described) and re.search(r"InternalIP:\s+172\.18\.0\.3", described)
    leases = kubectl.lines("get", "leases", "-n", "kube-node-lease")
    assert leases[0] == ["NAME", "HOLDER", "AGE"] and [node, node] in [row[:2] for row in leases[1:]]
    pod = next(p for p in sandbox_cluster.items("pods", "demo") if p["spec"]["nodeName"] == node)
    text = kubectl("describe", "pod", pod["metadata"]["name"], "-n", "demo").stdout
    ip = re.search(r"^IP:\s+(\S+)", text, re.M).group(1)
    assert ip.startswith("10.244.2.") and "IPs:" in text and "<none>" not in text.split("IPs:")[1].splitlines()[1]
