//! The deployment artefacts: the Kubernetes manifests in `deploy/k8s` are valid against
//! the API of pinned Kubernetes versions (kubernetes-validate, strict), complete,
//! hardened, and consistent with the crate: the ConfigMap is `configs/production.yaml`,
//! every mounted path is the one the settings name, the fleet slicing matches the replica
//! and completion counts, and the Dockerfile exposes and checks what its command serves.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde::Deserialize;
use yaml_serde::Value;

/// The Kubernetes versions the manifests are validated against: the oldest supported
/// and the newest kubernetes-validate (pinned in scripts/test.sh) knows.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.30.0", "1.37.0"];
const NAMESPACE: &str = "iotblast";
/// The image's user (Dockerfile `USER`) and the pods' `runAsUser`.
const UID: u64 = 10001;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every YAML file under deploy/k8s, relative to the repository, sorted.
fn yaml_files() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) {
                let rel = path.strip_prefix(repo()).unwrap();
                out.push(rel.to_str().unwrap().replace('\\', "/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo().join("deploy/k8s"), &mut out);
    out.sort();
    assert!(!out.is_empty(), "no manifests under deploy/k8s");
    out
}

/// The documents of a (multi-document) YAML file, empty ones left out.
fn documents(rel: &str) -> Vec<Value> {
    let text = read(rel);
    yaml_serde::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{rel}: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

/// One Kubernetes object and the file it is in.
struct Object {
    file: String,
    value: Value,
}

impl Object {
    fn kind(&self) -> &str {
        str_at(&self.value, &["kind"])
    }

    fn name(&self) -> &str {
        str_at(&self.value, &["metadata", "name"])
    }

    fn id(&self) -> String {
        format!("{}: {}/{}", self.file, self.kind(), self.name())
    }

    /// The pod spec of a workload (StatefulSet, Job, Pod).
    fn pod_spec(&self) -> Option<&Value> {
        match self.kind() {
            "StatefulSet" | "Deployment" | "Job" => {
                Some(at(&self.value, &["spec", "template", "spec"]))
            }
            "Pod" => Some(at(&self.value, &["spec"])),
            _ => None,
        }
    }
}

fn is_kustomization(file: &str) -> bool {
    file.ends_with("/kustomization.yaml")
}

/// Every object in every manifest (the kustomizations are not objects).
fn objects() -> Vec<Object> {
    yaml_files()
        .into_iter()
        .filter(|f| !is_kustomization(f))
        .flat_map(|file| {
            documents(&file).into_iter().map(move |value| Object {
                file: file.clone(),
                value,
            })
        })
        .collect()
}

fn find<'a>(objects: &'a [Object], kind: &str, name: &str) -> &'a Object {
    objects
        .iter()
        .find(|o| o.kind() == kind && o.name() == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} in deploy/k8s"))
}

fn try_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, key| v.get(*key))
}

fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    try_at(v, path).unwrap_or_else(|| panic!("no {} in {v:?}", path.join(".")))
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{} is not a string", path.join(".")))
}

fn u64_at(v: &Value, path: &[&str]) -> u64 {
    at(v, path)
        .as_u64()
        .unwrap_or_else(|| panic!("{} is not a count", path.join(".")))
}

fn seq_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    try_at(v, path)
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// A workload's containers (and init containers).
fn containers(pod: &Value) -> Vec<&Value> {
    let all: Vec<&Value> = seq_at(pod, &["initContainers"])
        .iter()
        .chain(seq_at(pod, &["containers"]))
        .collect();
    assert!(!all.is_empty(), "a pod without containers");
    all
}

/// The iotblast container of a workload.
fn iotblast_container(o: &Object) -> &Value {
    let pod = o.pod_spec().unwrap();
    containers(pod)
        .into_iter()
        .find(|c| str_at(c, &["name"]) == "iotblast")
        .unwrap_or_else(|| panic!("{}: no container named iotblast", o.id()))
}

fn args(container: &Value) -> Vec<&str> {
    seq_at(container, &["args"])
        .iter()
        .map(|a| a.as_str().expect("args are strings"))
        .collect()
}

/// The value after the flag `name` in `args`, if any.
fn flag<'a>(args: &[&'a str], name: &str) -> Option<&'a str> {
    args.iter().position(|a| *a == name).map(|i| {
        *args
            .get(i + 1)
            .unwrap_or_else(|| panic!("{name} without a value"))
    })
}

fn env<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    seq_at(container, &["env"])
        .iter()
        .find(|e| str_at(e, &["name"]) == name)
}

/// configs/production.yaml, parsed.
fn production() -> Value {
    yaml_serde::from_str(&read("configs/production.yaml")).expect("configs/production.yaml")
}

/// The port of an `IP:port` setting.
fn port_of(address: &str) -> u64 {
    address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {address}"))
}

/// Resolves a probe's or Service's target port (a number or a container port's name).
fn container_port(container: &Value, port: &Value) -> u64 {
    if let Some(n) = port.as_u64() {
        return n;
    }
    let name = port.as_str().expect("a port is a number or a name");
    let p = seq_at(container, &["ports"])
        .iter()
        .find(|p| try_at(p, &["name"]).and_then(Value::as_str) == Some(name))
        .unwrap_or_else(|| panic!("no container port named {name}"));
    u64_at(p, &["containerPort"])
}

/// Where each file a container sees under its ConfigMap, Secret and projected volumes
/// comes from: absolute path -> (kind, object name, key).
fn mounted_files(pod: &Value, container: &Value) -> BTreeMap<String, (String, String, String)> {
    let mut files = BTreeMap::new();
    for mount in seq_at(container, &["volumeMounts"]) {
        let volume = seq_at(pod, &["volumes"])
            .iter()
            .find(|v| v.get("name") == mount.get("name"))
            .expect("a mount names a volume of the pod");
        let dir = str_at(mount, &["mountPath"]).trim_end_matches('/');
        let sources: Vec<&Value> = match try_at(volume, &["projected", "sources"]) {
            Some(s) => s.as_sequence().unwrap().iter().collect(),
            None => vec![volume],
        };
        for source in sources {
            for kind in ["configMap", "secret"] {
                let Some(s) = source.get(kind) else { continue };
                let (name, kind) = match kind {
                    "configMap" => (str_at(s, &["name"]), "ConfigMap"),
                    _ => (
                        try_at(s, &["name"])
                            .or_else(|| try_at(s, &["secretName"]))
                            .and_then(Value::as_str)
                            .expect("a secret source names its Secret"),
                        "Secret",
                    ),
                };
                let items = seq_at(s, &["items"]);
                assert!(
                    !items.is_empty(),
                    "{kind}/{name} is mounted without items: list them, so each path is known"
                );
                for item in items {
                    files.insert(
                        format!("{dir}/{}", str_at(item, &["path"])),
                        (
                            kind.to_owned(),
                            name.to_owned(),
                            str_at(item, &["key"]).to_owned(),
                        ),
                    );
                }
            }
        }
    }
    files
}

fn source(kind: &str, name: &str, key: &str) -> (String, String, String) {
    (kind.to_owned(), name.to_owned(), key.to_owned())
}

/// The kubernetes-validate executable: $KUBERNETES_VALIDATE (scripts/test.sh sets it to
/// the one it installs), else the one on PATH.
fn kubernetes_validate(args: &[String]) -> (bool, String) {
    let tool =
        std::env::var("KUBERNETES_VALIDATE").unwrap_or_else(|_| "kubernetes-validate".into());
    let out = Command::new(&tool).args(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run {tool}: {e}. kubernetes-validate (PyPI) checks deploy/k8s; \
             scripts/test.sh installs it and sets KUBERNETES_VALIDATE"
        )
    });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn version_args() -> Vec<String> {
    let mut a = vec!["--strict".to_owned()];
    for v in KUBERNETES_VERSIONS {
        a.extend(["-k".to_owned(), v.to_owned()]);
    }
    a
}

#[test]
fn every_manifest_is_valid_for_the_pinned_kubernetes_versions() {
    let files: Vec<String> = yaml_files()
        .into_iter()
        .filter(|f| !is_kustomization(f))
        .collect();
    let mut a = version_args();
    a.extend(files.iter().map(|f| repo().join(f).display().to_string()));
    let (ok, out) = kubernetes_validate(&a);
    assert!(ok, "kubernetes-validate failed:\n{out}");
    // It only warns, and exits 0, for an object whose kind or apiVersion it has no
    // schema for: a typo there must fail too.
    let bad: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with("INFO "))
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(bad.is_empty(), "kubernetes-validate: {bad:#?}");
    let passed = out
        .lines()
        .filter(|l| l.contains(" passed for resource "))
        .count();
    assert_eq!(
        passed,
        objects().len() * KUBERNETES_VERSIONS.len(),
        "every object, against every version:\n{out}"
    );

    // The check can fail: strict mode refuses a field the API does not have.
    let objects = objects();
    let mut broken = find(&objects, "StatefulSet", "iotblast-feed").value.clone();
    broken["spec"]
        .as_mapping_mut()
        .unwrap()
        .insert("replica".into(), 3.into());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.yaml");
    std::fs::write(&path, yaml_serde::to_string(&broken).unwrap()).unwrap();
    let mut a = version_args();
    a.push(path.display().to_string());
    let (ok, out) = kubernetes_validate(&a);
    assert!(!ok, "an unknown field passed validation:\n{out}");
    assert!(out.contains("ERROR") && out.contains("replica"), "{out}");
}

#[test]
fn the_kustomizations_list_every_manifest_once_with_this_version_of_the_image() {
    let files = yaml_files();
    let mut listed = BTreeMap::new();
    for k in files.iter().filter(|f| is_kustomization(f)) {
        let doc = &documents(k)[0];
        assert_eq!(str_at(doc, &["kind"]), "Kustomization", "{k}");
        assert_eq!(str_at(doc, &["namespace"]), NAMESPACE, "{k}");
        let dir = k.trim_end_matches("kustomization.yaml");
        for r in seq_at(doc, &["resources"]) {
            let r = format!("{dir}{}", r.as_str().expect("a resource is a path"));
            assert!(files.contains(&r), "{k} lists {r}, which is not a manifest");
            if let Some(other) = listed.insert(r.clone(), k.clone()) {
                panic!("{r} is listed by {other} and {k}");
            }
        }
        // The image the kustomization deploys is this version's.
        let images = seq_at(doc, &["images"]);
        assert_eq!(images.len(), 1, "{k}: one image");
        assert_eq!(str_at(&images[0], &["name"]), "iotblast", "{k}");
        assert_eq!(
            str_at(&images[0], &["newTag"]),
            env!("CARGO_PKG_VERSION"),
            "{k}: the image tag is the crate's version"
        );
    }
    for f in files.iter().filter(|f| !is_kustomization(f)) {
        assert!(listed.contains_key(f), "{f} is in no kustomization.yaml");
    }
    for o in objects() {
        if o.kind() != "Namespace" {
            assert_eq!(
                str_at(&o.value, &["metadata", "namespace"]),
                NAMESPACE,
                "{}",
                o.id()
            );
        }
        if let Some(pod) = o.pod_spec() {
            for c in containers(pod) {
                assert_eq!(
                    str_at(c, &["image"]),
                    format!("iotblast:{}", env!("CARGO_PKG_VERSION")),
                    "{}",
                    o.id()
                );
            }
        }
    }
}

#[test]
fn the_manifests_hold_every_kind_a_deployment_needs() {
    let objects = objects();
    let kinds: BTreeSet<&str> = objects.iter().map(Object::kind).collect();
    for kind in [
        "Namespace",
        "ConfigMap",
        "Secret",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "StatefulSet",
        "Service",
        "Job",
        "PersistentVolumeClaim",
    ] {
        assert!(kinds.contains(kind), "no {kind} in deploy/k8s: {kinds:?}");
    }
    find(&objects, "Namespace", NAMESPACE);
    let job = find(&objects, "Job", "iotblast-bench");
    assert_eq!(str_at(&job.value, &["spec", "completionMode"]), "Indexed");
}

#[test]
fn the_configmap_is_configs_production_yaml() {
    let objects = objects();
    let cm = find(&objects, "ConfigMap", "iotblast-config");
    let data = str_at(&cm.value, &["data", "production.yaml"]);
    let original = read("configs/production.yaml");
    if data != original {
        let line = data
            .lines()
            .zip(original.lines())
            .position(|(a, b)| a != b)
            .map_or("the end".to_owned(), |i| format!("line {}", i + 1));
        panic!(
            "deploy/k8s/configmap.yaml differs from configs/production.yaml at {line}; \
             regenerate it with the command in its header"
        );
    }
}

#[test]
fn the_pods_see_the_files_the_settings_name_and_no_real_secret() {
    let objects = objects();
    let production = production();
    let secret = find(&objects, "Secret", "iotblast-kafka");
    // Placeholders only: real credentials never go into git.
    let values = try_at(&secret.value, &["stringData"])
        .or_else(|| try_at(&secret.value, &["data"]))
        .and_then(Value::as_mapping)
        .expect("the Secret has data");
    for key in ["password", "ca.crt"] {
        assert_eq!(
            values.get(key).and_then(Value::as_str),
            Some("change-me"),
            "Secret iotblast-kafka: {key} is the placeholder change-me"
        );
    }
    for o in objects
        .iter()
        .filter(|o| matches!(o.kind(), "StatefulSet" | "Job"))
    {
        let c = iotblast_container(o);
        let files = mounted_files(o.pod_spec().unwrap(), c);
        let a = args(c);
        let config = flag(&a, "--config").unwrap_or_else(|| panic!("{}: no --config", o.id()));
        assert_eq!(
            files.get(config),
            Some(&source("ConfigMap", "iotblast-config", "production.yaml")),
            "{}: --config {config} is the ConfigMap's production.yaml; mounted: {files:?}",
            o.id()
        );
        assert!(
            env(c, "IOTBLAST_KAFKA_SECURITY_PASSWORD").is_none(),
            "{}: the password comes from a file",
            o.id()
        );
        let password = str_at(
            env(c, "IOTBLAST_KAFKA_SECURITY_PASSWORD_FILE")
                .unwrap_or_else(|| panic!("{}: no IOTBLAST_KAFKA_SECURITY_PASSWORD_FILE", o.id())),
            &["value"],
        );
        assert_eq!(
            files.get(password),
            Some(&source("Secret", "iotblast-kafka", "password")),
            "{}: {password}; mounted: {files:?}",
            o.id()
        );
        let ca = str_at(&production, &["kafka", "security", "ca_location"]);
        assert_eq!(
            files.get(ca),
            Some(&source("Secret", "iotblast-kafka", "ca.crt")),
            "{}: kafka.security.ca_location {ca}; mounted: {files:?}",
            o.id()
        );
        // No subPath: the kubelet never updates a subPath mount, and hot reload
        // depends on the ConfigMap's updates arriving.
        for m in seq_at(c, &["volumeMounts"]) {
            assert!(
                m.get("subPath").is_none(),
                "{}: subPath mount {m:?}",
                o.id()
            );
        }
    }
}

#[test]
fn every_container_is_hardened_limited_and_probed() {
    let objects = objects();
    let production = production();
    let http_port = port_of(str_at(&production, &["http", "address"]));
    let flush =
        humantime::parse_duration(str_at(&production, &["kafka", "flush_timeout"])).unwrap();

    let sa = find(&objects, "ServiceAccount", "iotblast");
    assert_eq!(
        at(&sa.value, &["automountServiceAccountToken"]).as_bool(),
        Some(false)
    );
    // iotblast makes no API calls: its Role grants nothing.
    let role = find(&objects, "Role", "iotblast");
    assert!(
        seq_at(&role.value, &["rules"]).is_empty(),
        "{}: grants {:?}",
        role.id(),
        role.value["rules"]
    );
    let binding = find(&objects, "RoleBinding", "iotblast");
    assert_eq!(str_at(&binding.value, &["roleRef", "kind"]), "Role");
    assert_eq!(str_at(&binding.value, &["roleRef", "name"]), "iotblast");
    let subjects = seq_at(&binding.value, &["subjects"]);
    assert_eq!(subjects.len(), 1);
    assert_eq!(str_at(&subjects[0], &["kind"]), "ServiceAccount");
    assert_eq!(str_at(&subjects[0], &["name"]), "iotblast");

    let workloads: Vec<&Object> = objects.iter().filter(|o| o.pod_spec().is_some()).collect();
    assert!(workloads.len() >= 2, "the feed and the benchmark at least");
    for o in workloads {
        let id = o.id();
        let pod = o.pod_spec().unwrap();
        assert_eq!(str_at(pod, &["serviceAccountName"]), "iotblast", "{id}");
        assert_eq!(
            at(pod, &["automountServiceAccountToken"]).as_bool(),
            Some(false),
            "{id}"
        );
        assert_eq!(
            at(pod, &["securityContext", "runAsNonRoot"]).as_bool(),
            Some(true),
            "{id}"
        );
        assert_eq!(u64_at(pod, &["securityContext", "runAsUser"]), UID, "{id}");
        for c in containers(pod) {
            let name = str_at(c, &["name"]);
            let sc = at(c, &["securityContext"]);
            assert_eq!(
                at(sc, &["runAsNonRoot"]).as_bool(),
                Some(true),
                "{id} {name}"
            );
            assert_eq!(u64_at(sc, &["runAsUser"]), UID, "{id} {name}");
            assert_eq!(
                at(sc, &["readOnlyRootFilesystem"]).as_bool(),
                Some(true),
                "{id} {name}"
            );
            assert_eq!(
                at(sc, &["allowPrivilegeEscalation"]).as_bool(),
                Some(false),
                "{id} {name}"
            );
            let drop: Vec<&str> = seq_at(sc, &["capabilities", "drop"])
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert_eq!(drop, ["ALL"], "{id} {name}: capabilities.drop");
            assert!(
                seq_at(sc, &["capabilities", "add"]).is_empty(),
                "{id} {name}"
            );
            assert_eq!(
                str_at(sc, &["seccompProfile", "type"]),
                "RuntimeDefault",
                "{id} {name}"
            );
            assert_ne!(
                sc.get("privileged").and_then(Value::as_bool),
                Some(true),
                "{id} {name}"
            );
            for kind in ["requests", "limits"] {
                for resource in ["cpu", "memory"] {
                    assert!(
                        try_at(c, &["resources", kind, resource]).is_some(),
                        "{id} {name}: no resources.{kind}.{resource}"
                    );
                }
            }
        }
        if matches!(o.kind(), "StatefulSet" | "Job") {
            let c = iotblast_container(o);
            for (probe, path) in [
                ("startupProbe", "/healthz"),
                ("livenessProbe", "/healthz"),
                ("readinessProbe", "/readyz"),
            ] {
                let get = at(c, &[probe, "httpGet"]);
                assert_eq!(str_at(get, &["path"]), path, "{id}: {probe}");
                assert_eq!(
                    container_port(c, at(get, &["port"])),
                    http_port,
                    "{id}: {probe} probes http.address's port"
                );
            }
            // SIGTERM flushes for up to kafka.flush_timeout before the summary.
            let grace = u64_at(pod, &["terminationGracePeriodSeconds"]);
            assert!(
                grace > flush.as_secs(),
                "{id}: terminationGracePeriodSeconds {grace} must exceed kafka.flush_timeout {flush:?}"
            );
        }
    }
}

/// Prometheus' conventional annotations, naming the metrics port and path.
fn assert_scrape_annotations(v: &Value, what: &str, port: u64) {
    let a = at(v, &["metadata", "annotations"]);
    let get = |key: &str| a.get(key).and_then(Value::as_str);
    assert_eq!(get("prometheus.io/scrape"), Some("true"), "{what}");
    assert_eq!(
        get("prometheus.io/port"),
        Some(port.to_string().as_str()),
        "{what}"
    );
    assert_eq!(get("prometheus.io/path"), Some("/metrics"), "{what}");
}

#[test]
fn the_metrics_are_exposed_and_annotated_for_prometheus() {
    let objects = objects();
    let production = production();
    let metrics_port = port_of(str_at(&production, &["metrics", "address"]));
    let feed = find(&objects, "StatefulSet", "iotblast-feed");
    let service = find(
        &objects,
        "Service",
        str_at(&feed.value, &["spec", "serviceName"]),
    );
    assert_scrape_annotations(&service.value, &service.id(), metrics_port);
    let ports = seq_at(&service.value, &["spec", "ports"]);
    let port = ports
        .iter()
        .find(|p| try_at(p, &["name"]).and_then(Value::as_str) == Some("metrics"))
        .unwrap_or_else(|| panic!("{}: no port named metrics", service.id()));
    assert_eq!(u64_at(port, &["port"]), metrics_port);
    // The Service selects the feed's pods, and each one of them: headless.
    assert_eq!(str_at(&service.value, &["spec", "clusterIP"]), "None");
    let labels = at(&feed.value, &["spec", "template", "metadata", "labels"]);
    for (k, v) in at(&service.value, &["spec", "selector"])
        .as_mapping()
        .unwrap()
    {
        assert_eq!(labels.get(k.as_str().unwrap()), Some(v), "selector {k:?}");
    }
    for o in objects
        .iter()
        .filter(|o| matches!(o.kind(), "StatefulSet" | "Job"))
    {
        assert_scrape_annotations(at(&o.value, &["spec", "template"]), &o.id(), metrics_port);
        let c = iotblast_container(o);
        assert_eq!(
            container_port(c, &Value::from("metrics")),
            metrics_port,
            "{}: metrics.address's port",
            o.id()
        );
        assert_eq!(
            container_port(c, at(port, &["targetPort"])),
            metrics_port,
            "{}: the Service's targetPort",
            o.id()
        );
    }
}

#[test]
fn each_instance_owns_one_slice_and_the_slices_cover_the_fleet() {
    let objects = objects();

    // The feed: one slice per pod, the index from the pod's ordinal (POD_NAME).
    let feed = find(&objects, "StatefulSet", "iotblast-feed");
    let c = iotblast_container(feed);
    let a = args(c);
    let replicas = u64_at(&feed.value, &["spec", "replicas"]);
    assert_eq!(flag(&a, "--instance-index"), Some("auto"), "{}", feed.id());
    assert_eq!(
        flag(&a, "--instance-count").map(|n| n.parse::<u64>().unwrap()),
        Some(replicas),
        "{}: --instance-count must equal replicas",
        feed.id()
    );
    assert_eq!(
        str_at(
            env(c, "POD_NAME").expect("POD_NAME for --instance-index auto"),
            &["valueFrom", "fieldRef", "fieldPath"]
        ),
        "metadata.name"
    );
    let spread = at(
        &feed.value,
        &["spec", "template", "spec", "affinity", "podAntiAffinity"],
    );
    let terms: Vec<&Value> = seq_at(spread, &["requiredDuringSchedulingIgnoredDuringExecution"])
        .iter()
        .chain(
            seq_at(spread, &["preferredDuringSchedulingIgnoredDuringExecution"])
                .iter()
                .map(|t| at(t, &["podAffinityTerm"])),
        )
        .collect();
    assert!(
        terms
            .iter()
            .any(|t| str_at(t, &["topologyKey"]) == "kubernetes.io/hostname"),
        "{}: spread over hosts",
        feed.id()
    );

    // The benchmark: an Indexed Job, all slices at once, none retried.
    let job = find(&objects, "Job", "iotblast-bench");
    let spec = at(&job.value, &["spec"]);
    let c = iotblast_container(job);
    let a = args(c);
    let count: u64 = flag(&a, "--instance-count")
        .expect("--instance-count")
        .parse()
        .unwrap();
    assert_eq!(str_at(spec, &["completionMode"]), "Indexed");
    assert_eq!(
        u64_at(spec, &["completions"]),
        count,
        "completions = --instance-count"
    );
    assert_eq!(
        u64_at(spec, &["parallelism"]),
        count,
        "parallelism = --instance-count"
    );
    assert_eq!(
        u64_at(spec, &["backoffLimit"]),
        0,
        "a retried slice double-counts"
    );
    assert_eq!(
        str_at(spec, &["template", "spec", "restartPolicy"]),
        "Never"
    );
    assert_eq!(flag(&a, "--instance-index"), Some("auto"));
    assert!(flag(&a, "--duration").is_some(), "a bounded run");
    assert!(a.contains(&"--json"));
    // One report per index, on the claim that outlives the pods.
    let report = flag(&a, "--report-file").expect("--report-file");
    assert!(report.contains("$(JOB_COMPLETION_INDEX)"), "{report}");
    let pod = job.pod_spec().unwrap();
    let mount = seq_at(c, &["volumeMounts"])
        .iter()
        .find(|m| report.starts_with(&format!("{}/", str_at(m, &["mountPath"]))))
        .unwrap_or_else(|| panic!("{report} is on no mounted volume"));
    let volume = seq_at(pod, &["volumes"])
        .iter()
        .find(|v| v.get("name") == mount.get("name"))
        .unwrap();
    let claim = str_at(volume, &["persistentVolumeClaim", "claimName"]);
    find(&objects, "PersistentVolumeClaim", claim);
    // The Job controller sets JOB_COMPLETION_INDEX; declared, it must be the same.
    if let Some(e) = env(c, "JOB_COMPLETION_INDEX") {
        let path = str_at(e, &["valueFrom", "fieldRef", "fieldPath"]);
        assert!(
            path.contains("['batch.kubernetes.io/job-completion-index']"),
            "{path}"
        );
    }
}

#[test]
fn the_workloads_args_are_iotblast_flags() {
    for o in objects()
        .iter()
        .filter(|o| matches!(o.kind(), "StatefulSet" | "Job"))
    {
        let argv = std::iter::once("iotblast".to_owned()).chain(
            args(iotblast_container(o))
                .into_iter()
                .map(|a| a.replace("$(JOB_COMPLETION_INDEX)", "0")),
        );
        if let Err(e) = iotblast::config::flags::parse_from(argv) {
            panic!("{}: iotblast refuses its args: {e}", o.id());
        }
    }
}

#[test]
fn the_dockerfile_exposes_and_checks_what_its_command_serves() {
    let dockerfile = read("Dockerfile").replace("\\\n", " ");
    let instructions: Vec<(&str, &str)> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(char::is_whitespace))
        .map(|(i, rest)| (i, rest.trim()))
        .collect();
    let last = |name: &str| {
        instructions
            .iter()
            .rev()
            .find(|(i, _)| i.eq_ignore_ascii_case(name))
            .map(|(_, rest)| *rest)
            .unwrap_or_else(|| panic!("no {name} in the Dockerfile"))
    };
    let cmd: Vec<String> = serde_json::from_str(last("CMD")).expect("CMD in exec form");
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let served: BTreeSet<u64> = ["--metrics-address", "--http-address"]
        .iter()
        .filter_map(|f| flag(&cmd, f))
        .map(port_of)
        .collect();
    let exposed: BTreeSet<u64> = last("EXPOSE")
        .split_whitespace()
        .map(|p| p.trim_end_matches("/tcp").parse().unwrap())
        .collect();
    assert_eq!(exposed, served, "EXPOSE what the default command serves");
    let http = flag(&cmd, "--http-address").expect("the default command serves /healthz");
    let check = last("HEALTHCHECK");
    assert!(check.contains("\"healthcheck\""), "{check}");
    assert!(
        check.contains(&format!("http://127.0.0.1:{}/healthz", port_of(http))),
        "HEALTHCHECK probes the default command's http address: {check}"
    );
    assert_eq!(last("USER"), UID.to_string(), "the pods' runAsUser");
    let version = instructions
        .iter()
        .filter(|(i, _)| *i == "ARG")
        .find_map(|(_, rest)| rest.strip_prefix("VERSION="))
        .expect("ARG VERSION=...");
    assert_eq!(
        version,
        env!("CARGO_PKG_VERSION"),
        "the image's version label"
    );
    let dockerignore = read(".dockerignore");
    let ignored: BTreeSet<&str> = dockerignore.lines().map(str::trim).collect();
    for pattern in ["target/", "target-*/", ".git/"] {
        assert!(ignored.contains(pattern), ".dockerignore lacks {pattern}");
    }
}
