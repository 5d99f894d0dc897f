//! What a timeline is about: a pod, an identity, an address, a node, a container or an
//! alert. Parsed and checked before any SQL is written, so a value can never change a
//! query's meaning and a typo is reported in one line.

use std::fmt;
use std::net::IpAddr;

/// A pod, named the way `kubectl` names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
}

impl PodRef {
    /// `NAMESPACE/NAME`, both DNS labels or subdomains as Kubernetes allows them.
    pub fn parse(text: &str) -> Result<PodRef, String> {
        let (namespace, name) = text
            .split_once('/')
            .ok_or_else(|| format!("pod '{text}' must be NAMESPACE/NAME"))?;
        for (what, part) in [("namespace", namespace), ("pod name", name)] {
            if !is_k8s_name(part) {
                return Err(format!(
                    "{what} '{part}' in '{text}' is not a Kubernetes name (lower-case letters, digits, '-' and '.', at most 253)"
                ));
            }
        }
        Ok(PodRef {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }
}

impl fmt::Display for PodRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The subject of a timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entity {
    Pod(PodRef),
    /// A user or service account as the API server names it
    /// (`system:serviceaccount:NS:NAME`).
    User(String),
    Ip(IpAddr),
    Node(String),
    /// A container ID or an unambiguous prefix of one (at least 12 hex digits, as
    /// `crictl ps` and Falco print them).
    Container(String),
    Alert(String),
}

impl Entity {
    pub fn pod(text: &str) -> Result<Entity, String> {
        PodRef::parse(text).map(Entity::Pod)
    }

    pub fn user(text: &str) -> Result<Entity, String> {
        let text = text.trim();
        if text.is_empty() || text.len() > 1024 || text.chars().any(char::is_control) {
            return Err(format!("user '{text}' is not a user name"));
        }
        Ok(Entity::User(text.to_owned()))
    }

    pub fn ip(text: &str) -> Result<Entity, String> {
        text.trim()
            .parse::<IpAddr>()
            .map(Entity::Ip)
            .map_err(|_| format!("'{text}' is not an IPv4 or IPv6 address"))
    }

    pub fn node(text: &str) -> Result<Entity, String> {
        if is_k8s_name(text) {
            Ok(Entity::Node(text.to_owned()))
        } else {
            Err(format!("node '{text}' is not a Kubernetes name"))
        }
    }

    pub fn container(text: &str) -> Result<Entity, String> {
        // Runtimes print `containerd://<id>` or `docker://<id>`; accept what they print.
        let id = text
            .rsplit("://")
            .next()
            .unwrap_or(text)
            .to_ascii_lowercase();
        if id.len() < 12 || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "container '{text}' is not a container ID (12 to 64 hex digits)"
            ));
        }
        Ok(Entity::Container(id))
    }

    pub fn alert(text: &str) -> Result<Entity, String> {
        let id = text.trim();
        if id.is_empty()
            || id.len() > 128
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_:.".contains(&b))
        {
            return Err(format!("'{text}' is not an alert id"));
        }
        Ok(Entity::Alert(id.to_owned()))
    }
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entity::Pod(p) => write!(f, "pod {p}"),
            Entity::User(u) => write!(f, "user {u}"),
            Entity::Ip(ip) => write!(f, "address {ip}"),
            Entity::Node(n) => write!(f, "node {n}"),
            Entity::Container(c) => write!(f, "container {c}"),
            Entity::Alert(a) => write!(f, "alert {a}"),
        }
    }
}

fn is_k8s_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

/// A string as a SQL literal. Entities are validated above; this is the second fence.
pub(crate) fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_are_checked_before_they_reach_sql() {
        assert_eq!(
            Entity::pod("shop/api-7d9f8b6c5-x2k4p").unwrap().to_string(),
            "pod shop/api-7d9f8b6c5-x2k4p"
        );
        for bad in ["shop", "shop/", "/api", "Shop/api", "shop/api'--", "a/b/c"] {
            assert!(Entity::pod(bad).is_err(), "{bad}");
        }
        assert!(Entity::ip("10.244.1.5").is_ok());
        assert!(Entity::ip("2001:db8::1").is_ok());
        assert!(Entity::ip("10.244.1.500")
            .unwrap_err()
            .contains("not an IPv4"));
        assert_eq!(
            Entity::container("containerd://0A1B2C3D4E5F67").unwrap(),
            Entity::Container("0a1b2c3d4e5f67".into())
        );
        assert!(Entity::container("abc").is_err());
        assert!(Entity::user("").is_err());
        assert!(Entity::alert("x'; DROP").is_err());
        assert_eq!(literal("o'brien"), "'o''brien'");
    }
}
