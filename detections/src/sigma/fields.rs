//! Where a Sigma field of a Kubernetes audit event lives in `k8s_audit`: SigmaHQ names
//! fields by the audit event's own JSON paths (`objectRef.resource`, `user.username`), plus
//! a few of its own for what the pod spec grants (`capabilities`, `hostPath`).

/// One Sigma field, as SQL over `k8s_audit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum AuditField {
    /// A text column.
    Text(&'static str),
    /// An integer column (`responseStatus.code`).
    Integer(&'static str),
    /// A list of text; a value matches when any element does.
    List(&'static str),
    /// A scalar inside a JSON column: the request or response object, or an annotation.
    Json {
        column: &'static str,
        path: Vec<JsonKey>,
    },
    /// Elements of a list a function derives from the request object that start with
    /// `prefix`; a value matches what follows the prefix.
    Derived {
        list: &'static str,
        prefix: &'static str,
    },
    /// Whether a list a function derives holds `element`: only existence can be asked.
    Flag {
        list: &'static str,
        element: &'static str,
    },
}

/// One step of a path into JSON: an object key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum JsonKey {
    Name(String),
    Index(u32),
}

/// The pod spec's risks as `query`'s `pod_risks` lists them (`capability:NET_ADMIN`,
/// `hostPath`), whatever the workload kind or patch shape.
const POD_RISKS: &str = "pod_risks(request_object)";

/// The field's place in `k8s_audit`, or why it has none.
pub(super) fn audit_field(name: &str) -> Result<AuditField, String> {
    use AuditField::*;
    Ok(match name {
        "auditID" => Text("audit_id"),
        "stage" => Text("stage"),
        "level" => Text("level"),
        "verb" => Text("verb"),
        "requestURI" => Text("request_uri"),
        "userAgent" => Text("user_agent"),
        // The client's address: the first of sourceIPs (the rest are proxies on the way).
        "sourceIPs" => Text("src_ip"),
        "user.username" => Text("user_name"),
        "user.uid" => Text("user_uid"),
        "user.groups" => List("user_groups"),
        "impersonatedUser.username" => Text("impersonated_user"),
        "impersonatedUser.groups" => List("impersonated_groups"),
        "objectRef.resource" => Text("resource"),
        "objectRef.subresource" => Text("subresource"),
        "objectRef.namespace" => Text("namespace"),
        "objectRef.name" => Text("name"),
        // SigmaHQ's rules write the object's API group both ways.
        "objectRef.apiGroup" | "apiGroup" => Text("api_group"),
        "objectRef.apiVersion" => Text("api_version"),
        "responseStatus.code" => Integer("response_code"),
        "responseStatus.reason" => Text("response_reason"),
        "responseStatus.message" => Text("response_message"),
        "annotations.authorization.k8s.io/decision" => Text("decision"),
        "annotations.authorization.k8s.io/reason" => Text("authz_reason"),
        "capabilities" => Derived {
            list: POD_RISKS,
            prefix: "capability:",
        },
        "hostPath" => Flag {
            list: POD_RISKS,
            element: "hostPath",
        },
        other => {
            // Annotation keys hold dots of their own: the rest of the name is one key.
            if let Some(key) = other.strip_prefix("annotations.") {
                return Ok(Json {
                    column: "annotations",
                    path: vec![JsonKey::Name(key.to_owned())],
                });
            }
            for (prefix, column) in [
                ("requestObject.", "request_object"),
                ("responseObject.", "response_object"),
            ] {
                if let Some(rest) = other.strip_prefix(prefix) {
                    return Ok(Json {
                        column,
                        path: json_path(rest)?,
                    });
                }
            }
            return Err(format!(
                "unknown field '{other}': not a field of a Kubernetes audit event (see detections/README.md, Sigma)"
            ));
        }
    })
}

fn json_path(path: &str) -> Result<Vec<JsonKey>, String> {
    path.split('.')
        .map(|step| match step {
            "" => Err(format!("'{path}' has an empty step")),
            s if s.bytes().all(|b| b.is_ascii_digit()) => s
                .parse()
                .map(JsonKey::Index)
                .map_err(|_| format!("'{s}' is not an array index")),
            s => Ok(JsonKey::Name(s.to_owned())),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_paths_map_onto_columns_and_json() {
        assert_eq!(
            audit_field("objectRef.resource"),
            Ok(AuditField::Text("resource"))
        );
        assert_eq!(audit_field("apiGroup"), Ok(AuditField::Text("api_group")));
        assert_eq!(
            audit_field("requestObject.spec.containers.0.image"),
            Ok(AuditField::Json {
                column: "request_object",
                path: vec![
                    JsonKey::Name("spec".into()),
                    JsonKey::Name("containers".into()),
                    JsonKey::Index(0),
                    JsonKey::Name("image".into()),
                ],
            })
        );
        assert_eq!(
            audit_field("annotations.pod-security.kubernetes.io/enforce-policy"),
            Ok(AuditField::Json {
                column: "annotations",
                path: vec![JsonKey::Name(
                    "pod-security.kubernetes.io/enforce-policy".into()
                )],
            })
        );
        assert!(audit_field("file_path")
            .unwrap_err()
            .contains("unknown field 'file_path'"));
        assert!(audit_field("requestObject.spec..x").is_err());
    }
}
