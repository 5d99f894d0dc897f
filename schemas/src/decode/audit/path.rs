//! What a request's path says about the object it is about, for events that do not say it
//! themselves: an abbreviated export without `objectRef` or `verb`, and GKE's entries,
//! which name the object only by `resourceName` and `methodName`.
//!
//! One reading of `<group>/<version>/[namespaces/<ns>/]<resource>[/<name>[/<subresource>]]`
//! serves all three spellings of it: the request URI (`/api/v1/…`, `/apis/<group>/<version>/…`),
//! GKE's `resourceName` (`core/v1/…`, `apps/v1/…`) and GKE's `methodName`
//! (`io.k8s.<reversed group>.<version>.<resource>[.<subresource>].<verb>`).

/// The object a request path names. Texts are owned: they are rare next to events that
/// carry an `objectRef`, and a path's pieces are short.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct ResourcePath {
    /// Empty for the core group, as Kubernetes spells it.
    pub group: Option<String>,
    pub version: Option<String>,
    pub namespace: Option<String>,
    pub resource: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// `?watch=true`, or the legacy `/watch/` prefix.
    pub watch: bool,
}

impl ResourcePath {
    /// A request URI as the API server logs it. `None` for paths that name no API object
    /// (`/healthz`, `/version`, `/openapi/v2`, discovery of a group).
    pub fn from_request_uri(uri: &str) -> Option<ResourcePath> {
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        let watch_param = query
            .split('&')
            .any(|p| p == "watch=true" || p == "watch=1");
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let (group, version, rest) = match parts.as_slice() {
            ["api", version, rest @ ..] => ("", *version, rest),
            ["apis", group, version, rest @ ..] => (*group, *version, rest),
            _ => return None,
        };
        let (legacy_watch, rest) = match rest {
            ["watch", rest @ ..] => (true, rest),
            rest => (false, rest),
        };
        let mut found = ResourcePath::of_parts(group, version, rest)?;
        found.watch = watch_param || legacy_watch;
        Some(found)
    }

    /// GKE's `resourceName`: `core/v1/namespaces/default/pods/nginx/exec`.
    pub fn from_gke_resource_name(name: &str) -> Option<ResourcePath> {
        let parts: Vec<&str> = name.split('/').filter(|p| !p.is_empty()).collect();
        match parts.as_slice() {
            [group, version, rest @ ..] => {
                let group = if *group == "core" { "" } else { group };
                ResourcePath::of_parts(group, version, rest)
            }
            _ => None,
        }
    }

    /// GKE's `methodName` when an entry has no `resourceName`: the group, version,
    /// resource and subresource it names (never a namespace or a name), and its verb.
    pub fn from_gke_method(method: &str) -> Option<(ResourcePath, String)> {
        let parts: Vec<&str> = method.strip_prefix("io.k8s.")?.split('.').collect();
        let at = parts.iter().position(|p| is_version(p))?;
        let (group_parts, after) = parts.split_at(at);
        let [version, resource, middle @ .., verb] = after else {
            return None;
        };
        let group = match group_parts {
            [] | ["core"] => String::new(),
            // Groups of one word without a domain (`apps`, `batch`, `policy`) are spelt so.
            [one] if LEGACY_GROUPS.contains(one) => (*one).to_owned(),
            reversed => {
                let mut g: Vec<&str> = reversed.iter().rev().copied().collect();
                g.extend(["k8s", "io"]);
                g.join(".")
            }
        };
        let path = ResourcePath {
            group: Some(group),
            version: Some((*version).to_owned()),
            resource: Some((*resource).to_owned()),
            subresource: (!middle.is_empty()).then(|| middle.join("/")),
            ..ResourcePath::default()
        };
        Some((path, (*verb).to_owned()))
    }

    /// `[namespaces/<ns>/]<resource>[/<name>[/<subresource>]]` under a group and version.
    fn of_parts(group: &str, version: &str, rest: &[&str]) -> Option<ResourcePath> {
        let owned = |s: &&str| (*s).to_owned();
        let mut found = ResourcePath {
            group: Some(group.to_owned()),
            version: Some(version.to_owned()),
            ..ResourcePath::default()
        };
        match rest {
            [] => return None,
            ["namespaces", ns, resource, tail @ ..] => {
                found.namespace = Some(owned(ns));
                found.resource = Some(owned(resource));
                found.name = tail.first().map(owned);
                found.subresource = tail.get(1..).filter(|s| !s.is_empty()).map(|s| s.join("/"));
            }
            [resource, tail @ ..] => {
                found.resource = Some(owned(resource));
                found.name = tail.first().map(owned);
                found.subresource = tail.get(1..).filter(|s| !s.is_empty()).map(|s| s.join("/"));
                if *resource == "namespaces" {
                    found.namespace = found.name.clone();
                }
            }
        }
        Some(found)
    }

    /// The Kubernetes verb of a request to this path with the HTTP `method`, as the API
    /// server's request-info resolver names it. Without a method only a watch is certain.
    pub fn verb(&self, method: Option<&str>) -> Option<&'static str> {
        if self.watch {
            return Some("watch");
        }
        let named = self.name.is_some();
        let verb = match method?.to_ascii_uppercase().as_str() {
            "GET" | "HEAD" if named => "get",
            "GET" | "HEAD" => "list",
            "POST" => "create",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" if named => "delete",
            "DELETE" => "deletecollection",
            _ => return None,
        };
        Some(verb)
    }
}

/// API groups whose name is one word, without `.k8s.io`.
const LEGACY_GROUPS: [&str; 6] = [
    "apps",
    "batch",
    "autoscaling",
    "policy",
    "extensions",
    "events",
];

/// `v1`, `v2`, `v1beta1`, `v1alpha2`.
fn is_version(part: &str) -> bool {
    let Some(rest) = part.strip_prefix('v') else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return false;
    }
    let tail = &rest[digits..];
    let level = tail
        .strip_prefix("alpha")
        .or_else(|| tail.strip_prefix("beta"));
    match level {
        None => tail.is_empty(),
        Some(n) => !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(
        group: &str,
        ns: Option<&str>,
        resource: &str,
        name: Option<&str>,
        sub: Option<&str>,
    ) -> ResourcePath {
        ResourcePath {
            group: Some(group.into()),
            version: Some("v1".into()),
            namespace: ns.map(Into::into),
            resource: Some(resource.into()),
            name: name.map(Into::into),
            subresource: sub.map(Into::into),
            watch: false,
        }
    }

    #[test]
    fn request_uris_name_their_objects() {
        let exec = ResourcePath::from_request_uri(
            "/api/v1/namespaces/shop/pods/api-1/exec?command=tar&command=cf&container=app",
        );
        assert_eq!(
            exec,
            Some(path("", Some("shop"), "pods", Some("api-1"), Some("exec")))
        );
        assert_eq!(
            ResourcePath::from_request_uri(
                "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"
            ),
            Some(path(
                "rbac.authorization.k8s.io",
                None,
                "clusterrolebindings",
                None,
                None
            ))
        );
        assert_eq!(
            ResourcePath::from_request_uri("/api/v1/namespaces/kube-system"),
            Some(path(
                "",
                Some("kube-system"),
                "namespaces",
                Some("kube-system"),
                None
            ))
        );
        let watch =
            ResourcePath::from_request_uri("/api/v1/pods?watch=true&resourceVersion=1").unwrap();
        assert_eq!(watch.verb(None), Some("watch"));
        let legacy = ResourcePath::from_request_uri("/api/v1/watch/namespaces/a/pods").unwrap();
        assert!(legacy.watch && legacy.namespace.as_deref() == Some("a"));
        for none in [
            "/healthz",
            "/version",
            "/apis/apps/v1",
            "/api",
            "",
            "?x",
            "/metrics",
        ] {
            assert_eq!(ResourcePath::from_request_uri(none), None, "{none}");
        }
    }

    #[test]
    fn verbs_follow_the_method_and_whether_an_object_is_named() {
        let named = path("", Some("a"), "pods", Some("p"), None);
        let collection = path("", Some("a"), "pods", None, None);
        for (p, method, verb) in [
            (&named, "GET", Some("get")),
            (&collection, "get", Some("list")),
            (&collection, "POST", Some("create")),
            (&named, "PUT", Some("update")),
            (&named, "PATCH", Some("patch")),
            (&named, "DELETE", Some("delete")),
            (&collection, "DELETE", Some("deletecollection")),
            (&named, "TRACE", None),
        ] {
            assert_eq!(p.verb(Some(method)), verb, "{method}");
        }
        assert_eq!(named.verb(None), None);
    }

    #[test]
    fn gke_names_and_methods() {
        assert_eq!(
            ResourcePath::from_gke_resource_name("core/v1/namespaces/default/pods/nginx/exec"),
            Some(path(
                "",
                Some("default"),
                "pods",
                Some("nginx"),
                Some("exec")
            ))
        );
        assert_eq!(
            ResourcePath::from_gke_resource_name("rbac.authorization.k8s.io/v1/clusterroles/x"),
            Some(path(
                "rbac.authorization.k8s.io",
                None,
                "clusterroles",
                Some("x"),
                None
            ))
        );
        assert_eq!(ResourcePath::from_gke_resource_name("core/v1"), None);
        assert_eq!(ResourcePath::from_gke_resource_name(""), None);
        for (method, group, resource, sub, verb) in [
            (
                "io.k8s.core.v1.pods.exec.create",
                "",
                "pods",
                Some("exec"),
                "create",
            ),
            (
                "io.k8s.apps.v1.daemonsets.create",
                "apps",
                "daemonsets",
                None,
                "create",
            ),
            (
                "io.k8s.batch.v1.cronjobs.patch",
                "batch",
                "cronjobs",
                None,
                "patch",
            ),
            (
                "io.k8s.authorization.rbac.v1.clusterrolebindings.create",
                "rbac.authorization.k8s.io",
                "clusterrolebindings",
                None,
                "create",
            ),
            (
                "io.k8s.certificates.v1.certificatesigningrequests.approval.update",
                "certificates.k8s.io",
                "certificatesigningrequests",
                Some("approval"),
                "update",
            ),
            (
                "io.k8s.core.v1.serviceaccounts.token.create",
                "",
                "serviceaccounts",
                Some("token"),
                "create",
            ),
        ] {
            let (p, v) = ResourcePath::from_gke_method(method).expect(method);
            assert_eq!(p.group.as_deref(), Some(group), "{method}");
            assert_eq!(p.resource.as_deref(), Some(resource), "{method}");
            assert_eq!(p.subresource.as_deref(), sub, "{method}");
            assert_eq!(v, verb, "{method}");
        }
        for bad in [
            "io.k8s.",
            "io.k8s.core",
            "io.k8s.core.v1",
            "io.k8s.core.v1.pods",
            "google.x.v1.a.b",
        ] {
            assert_eq!(ResourcePath::from_gke_method(bad), None, "{bad}");
        }
        assert!(is_version("v1") && is_version("v2beta1") && is_version("v1alpha3"));
        assert!(
            !is_version("v")
                && !is_version("vbeta")
                && !is_version("v1beta")
                && !is_version("version")
        );
    }
}
