//! The lake in OCSF 1.1.0's shape (what AWS Security Lake and other security lakes take):
//! one view per class over the tables, `ocsf_api_activity` (6003) over `k8s_audit`,
//! `ocsf_network_activity` (4001) over `network_flows`, `ocsf_process_activity` (1007) over
//! Tetragon's process events and `ocsf_detection_finding` (2004) over `alerts` and Falco's
//! alerts. Every required attribute of each class is filled (`schema-1.1.0.json` lists
//! them, made by `scripts/ocsf-schema-names`; tests hold the views to it), and `metadata.uid` names the lake row, as an alert's
//! evidence does (`table:source#offset`). VPC flow log records that carry no traffic
//! (NODATA, SKIPDATA: no addresses) are not network activity and are left out.

pub mod export;

use datafusion::error::Result;
use datafusion::prelude::SessionContext;

/// The OCSF version the views follow.
pub const OCSF_VERSION: &str = "1.1.0";

/// One OCSF class as a view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OcsfClass {
    /// The view's name (`ocsf_api_activity`).
    pub view: &'static str,
    /// The class's name in the schema (`api_activity`).
    pub name: &'static str,
    pub class_uid: u32,
}

pub const CLASSES: [OcsfClass; 4] = [
    OcsfClass {
        view: "ocsf_api_activity",
        name: "api_activity",
        class_uid: 6003,
    },
    OcsfClass {
        view: "ocsf_network_activity",
        name: "network_activity",
        class_uid: 4001,
    },
    OcsfClass {
        view: "ocsf_process_activity",
        name: "process_activity",
        class_uid: 1007,
    },
    OcsfClass {
        view: "ocsf_detection_finding",
        name: "detection_finding",
        class_uid: 2004,
    },
];

impl std::str::FromStr for OcsfClass {
    type Err = String;

    /// By view name, class name or class uid: `ocsf_api_activity`, `api_activity`, `6003`.
    fn from_str(s: &str) -> Result<OcsfClass, String> {
        CLASSES
            .into_iter()
            .find(|c| c.view == s || c.name == s || c.class_uid.to_string() == s)
            .ok_or_else(|| {
                format!(
                    "'{s}' is not an OCSF class kubetrail exports ({})",
                    CLASSES.map(|c| c.name).join(", ")
                )
            })
    }
}

/// Milliseconds since the epoch, OCSF's `timestamp_t`.
fn ms(column: &str) -> String {
    format!("CAST(CAST({column} AS BIGINT) / 1000 AS BIGINT)")
}

/// The columns every class starts with: classification, time (and `time_dt`, the datetime
/// profile), severity, metadata (`table`: SQL naming the row's lake table) and cloud.
fn common(
    class: &str,
    class_uid: u32,
    category: (&str, u32),
    activity: (&str, &str),
    severity: (&str, &str),
    metadata: (&str, &str, &str),
    cloud: &str,
) -> String {
    let (category_name, category_uid) = category;
    let (activity_id, activity_name) = activity;
    let (severity_id, severity_name) = severity;
    let (table, provider, profiles) = metadata;
    format!(
        "{category_uid} AS category_uid, '{category_name}' AS category_name,
  {class_uid} AS class_uid, '{class}' AS class_name,
  {activity_id} AS activity_id, {activity_name} AS activity_name,
  {class_uid} * 100 + {activity_id} AS type_uid, concat('{class}: ', {activity_name}) AS type_name,
  {time} AS time, event_time AS time_dt,
  {severity_id} AS severity_id, {severity_name} AS severity,
  named_struct(
    'version', '{OCSF_VERSION}',
    'product', named_struct('name', 'kubetrail', 'vendor_name', 'kubetrail', 'version', '{version}'),
    'profiles', make_array({profiles}),
    'uid', concat({table}, ':', _source, '#', CAST(_offset AS VARCHAR)),
    'log_name', {table},
    'log_provider', {provider},
    'logged_time', {logged}
  ) AS metadata,
  {cloud} AS cloud",
        time = ms("event_time"),
        logged = ms("_ingested_at"),
        version = env!("CARGO_PKG_VERSION"),
    )
}

/// `cloud` (required by the cloud profile): the provider where the source says it.
fn cloud(provider: &str, region: &str, account: &str) -> String {
    format!(
        "named_struct('provider', {provider}, 'region', {region}, 'account', named_struct('uid', {account}))"
    )
}

const NO_TEXT: &str = "CAST(NULL AS VARCHAR)";

/// The row's user, or null: OCSF's user needs a name or an id.
fn user() -> String {
    "CASE WHEN user_name IS NOT NULL THEN named_struct('name', user_name) END".into()
}

fn api_activity() -> String {
    let activity = "CASE lower(verb) WHEN 'create' THEN 1 WHEN 'get' THEN 2 WHEN 'list' THEN 2 \
                    WHEN 'watch' THEN 2 WHEN 'update' THEN 3 WHEN 'patch' THEN 3 \
                    WHEN 'delete' THEN 4 WHEN 'deletecollection' THEN 4 ELSE 99 END";
    let activity_name = format!(
        "CASE {activity} WHEN 1 THEN 'Create' WHEN 2 THEN 'Read' WHEN 3 THEN 'Update' \
         WHEN 4 THEN 'Delete' ELSE 'Other' END"
    );
    let provider = "CASE audit_format WHEN 'eks' THEN 'AWS' WHEN 'gke' THEN 'GCP' \
                    WHEN 'aks' THEN 'Azure' ELSE 'unknown' END";
    format!(
        "CREATE VIEW ocsf_api_activity AS
SELECT
  {common},
  named_struct(
    'user', CASE WHEN coalesce(user_name, user_uid) IS NOT NULL
                 THEN named_struct('name', user_name, 'uid', user_uid) END,
    'invoked_by', impersonated_user
  ) AS actor,
  named_struct(
    'operation', verb,
    'service', named_struct('name', 'kube-apiserver'),
    'request', named_struct('uid', coalesce(audit_id, concat(_source, '#', CAST(_offset AS VARCHAR)))),
    'response', named_struct('code', response_code, 'error', response_reason, 'message', response_message),
    'version', api_version
  ) AS api,
  named_struct('ip', src_ip) AS src_endpoint,
  named_struct('user_agent', user_agent, 'url', named_struct('path', request_uri)) AS http_request,
  make_array(named_struct(
    'type', concat(coalesce(resource, ''), CASE WHEN subresource IS NOT NULL THEN concat('/', subresource) ELSE '' END),
    'name', name, 'namespace', namespace, 'group', named_struct('name', api_group),
    'version', api_version
  )) AS resources,
  CASE WHEN response_code IS NULL THEN 0 WHEN response_code < 400 THEN 1 ELSE 2 END AS status_id,
  CASE WHEN response_code IS NULL THEN 'Unknown' WHEN response_code < 400 THEN 'Success' ELSE 'Failure' END AS status,
  CAST(response_code AS VARCHAR) AS status_code,
  response_reason AS status_detail,
  concat(coalesce(user_name, '?'), ' ', coalesce(verb, '?'), ' ', coalesce(resource, ''),
         CASE WHEN subresource IS NOT NULL THEN concat('/', subresource) ELSE '' END,
         CASE WHEN name IS NOT NULL THEN concat(' ', name) ELSE '' END,
         CASE WHEN namespace IS NOT NULL THEN concat(' in ', namespace) ELSE '' END) AS message
FROM k8s_audit",
        common = common(
            "API Activity",
            6003,
            ("Application Activity", 6),
            (activity, &activity_name),
            ("1", "'Informational'"),
            ("'k8s_audit'", "audit_format", "'cloud', 'datetime'"),
            &cloud(provider, NO_TEXT, NO_TEXT),
        ),
    )
}

/// A flow's end: its address and port, and the pod (`namespace/pod`) where one is known.
fn endpoint(side: &str) -> String {
    format!(
        "named_struct('ip', {side}_ip, 'port', {side}_port,
    'name', CASE WHEN {side}_pod IS NOT NULL THEN concat(coalesce({side}_namespace, ''), '/', {side}_pod) END)"
    )
}

fn network_activity() -> String {
    let provider =
        "CASE flow_format WHEN 'aws-vpc-flow' THEN 'AWS' WHEN 'gcp-vpc-flow' THEN 'GCP' \
                    ELSE 'unknown' END";
    format!(
        "CREATE VIEW ocsf_network_activity AS
SELECT
  {common},
  {src} AS src_endpoint,
  {dst} AS dst_endpoint,
  named_struct(
    'protocol_name', lower(protocol),
    'protocol_num', CASE upper(protocol) WHEN 'TCP' THEN 6 WHEN 'UDP' THEN 17 WHEN 'ICMP' THEN 1 WHEN 'ICMPV6' THEN 58 END,
    'direction_id', CASE direction WHEN 'ingress' THEN 1 WHEN 'egress' THEN 2 ELSE 0 END,
    'direction', CASE direction WHEN 'ingress' THEN 'Inbound' WHEN 'egress' THEN 'Outbound' ELSE 'Unknown' END
  ) AS connection_info,
  named_struct('bytes', bytes, 'packets', packets) AS traffic,
  CASE action WHEN 'allow' THEN 1 WHEN 'deny' THEN 2 ELSE 0 END AS action_id,
  CASE action WHEN 'allow' THEN 'Allowed' WHEN 'deny' THEN 'Denied' ELSE 'Unknown' END AS action,
  {start} AS start_time,
  {end} AS end_time,
  concat(coalesce(protocol, 'IP'), ' ', coalesce(src_ip, '?'),
         CASE WHEN src_port IS NOT NULL THEN concat(':', CAST(src_port AS VARCHAR)) ELSE '' END,
         ' -> ', coalesce(dst_ip, '?'),
         CASE WHEN dst_port IS NOT NULL THEN concat(':', CAST(dst_port AS VARCHAR)) ELSE '' END,
         CASE WHEN action IS NOT NULL THEN concat(' ', action) ELSE '' END) AS message
FROM network_flows
WHERE coalesce(src_ip, src_pod) IS NOT NULL AND coalesce(dst_ip, dst_pod) IS NOT NULL",
        common = common(
            "Network Activity",
            4001,
            ("Network Activity", 4),
            ("6", "'Traffic'"),
            ("1", "'Informational'"),
            (
                "'network_flows'",
                "flow_format",
                "'cloud', 'datetime', 'security_control'"
            ),
            &cloud(provider, "region", "account_id"),
        ),
        src = endpoint("src"),
        dst = endpoint("dst"),
        start = ms("start_time"),
        end = ms("end_time"),
    )
}

fn basename(column: &str) -> String {
    format!("regexp_replace({column}, '^.*/', '')")
}

fn process_activity() -> String {
    let activity = "CASE event_type WHEN 'process_exec' THEN 1 ELSE 2 END";
    let activity_name = "CASE event_type WHEN 'process_exec' THEN 'Launch' ELSE 'Terminate' END";
    format!(
        "CREATE VIEW ocsf_process_activity AS
SELECT
  {common},
  named_struct(
    'process', CASE WHEN parent_exec_id IS NOT NULL THEN named_struct(
      'uid', parent_exec_id, 'name', {parent_name},
      'cmd_line', trim(concat(coalesce(parent_binary, ''), ' ', coalesce(parent_arguments, '')))) END,
    'user', {user}
  ) AS actor,
  named_struct(
    'uid', exec_id,
    'name', {name},
    'cmd_line', trim(concat(coalesce(binary, ''), ' ', coalesce(arguments, ''))),
    'file', named_struct('name', {name}, 'path', binary, 'type_id', 1, 'type', 'Regular File'),
    'created_time', {started},
    'user', {user},
    'container', CASE WHEN coalesce(container_id, container_name) IS NOT NULL THEN named_struct(
      'uid', container_id, 'name', container_name,
      'image', CASE WHEN coalesce(image_id, image) IS NOT NULL
                    THEN named_struct('uid', coalesce(image_id, image), 'name', image) END,
      'orchestrator', 'Kubernetes') END
  ) AS process,
  named_struct('type_id', 1, 'type', 'Server', 'hostname', node, 'name', node) AS device,
  concat(CASE event_type WHEN 'process_exec' THEN 'started ' ELSE 'exited ' END,
         trim(concat(coalesce(binary, '?'), ' ', coalesce(arguments, ''))),
         CASE WHEN pod IS NOT NULL THEN concat(' in ', coalesce(namespace, ''), '/', pod) ELSE '' END) AS message
FROM runtime_events
WHERE event_type IN ('process_exec', 'process_exit')",
        common = common(
            "Process Activity",
            1007,
            ("System Activity", 1),
            (activity, activity_name),
            ("1", "'Informational'"),
            ("'runtime_events'", "runtime_format", "'cloud', 'datetime', 'host'"),
            &cloud("'unknown'", NO_TEXT, NO_TEXT),
        ),
        parent_name = basename("parent_binary"),
        user = user(),
        name = basename("binary"),
        started = ms("process_start_time"),
    )
}

fn detection_finding() -> String {
    // kubetrail's alerts and Falco's, in one shape; ATT&CK techniques as OCSF attacks.
    let severity_id = "CASE lower(severity) WHEN 'info' THEN 1 WHEN 'informational' THEN 1 \
                       WHEN 'low' THEN 2 WHEN 'medium' THEN 3 WHEN 'high' THEN 4 \
                       WHEN 'critical' THEN 5 ELSE 0 END";
    let severity_name = format!(
        "CASE {severity_id} WHEN 1 THEN 'Informational' WHEN 2 THEN 'Low' WHEN 3 THEN 'Medium' \
         WHEN 4 THEN 'High' WHEN 5 THEN 'Critical' ELSE 'Unknown' END"
    );
    format!(
        "CREATE VIEW ocsf_detection_finding AS
WITH findings AS (
  SELECT event_time, _source, _offset, _ingested_at, 'alerts' AS ref_table, 'kubetrail' AS finder,
         alert_id AS uid, title, summary AS descr, rule_id AS analytic,
         severity, first_seen, last_seen, mitre AS techniques
  FROM alerts
  UNION ALL
  SELECT event_time, _source, _offset, _ingested_at, 'runtime_events' AS ref_table, 'falco' AS finder,
         concat('falco:', _source, '#', CAST(_offset AS VARCHAR)) AS uid, rule AS title, output AS descr,
         concat('falco: ', rule) AS analytic,
         CASE lower(priority) WHEN 'emergency' THEN 'critical' WHEN 'alert' THEN 'critical'
              WHEN 'critical' THEN 'critical' WHEN 'error' THEN 'high' WHEN 'warning' THEN 'medium'
              WHEN 'notice' THEN 'low' ELSE 'info' END AS severity,
         {no_time} AS first_seen, {no_time} AS last_seen, tags AS techniques
  FROM runtime_events
  WHERE event_type = 'falco_alert'
),
attacks AS (
  SELECT uid, array_agg(named_struct('technique', named_struct(
           'uid', technique,
           'src_url', concat('https://attack.mitre.org/techniques/', replace(technique, '.', '/'), '/')))) AS attacks
  FROM (SELECT uid, unnest(techniques) AS technique FROM findings)
  WHERE regexp_like(technique, '^T[0-9]{{4}}(\\.[0-9]{{3}})?$')
  GROUP BY uid
)
SELECT
  {common},
  named_struct(
    'uid', f.uid, 'title', f.title, 'desc', f.descr,
    'analytic', named_struct('uid', f.analytic, 'name', f.analytic, 'type_id', 1, 'type', 'Rule'),
    'attacks', a.attacks,
    'types', make_array(f.finder),
    'first_seen_time', {first},
    'last_seen_time', {last}
  ) AS finding_info,
  f.descr AS message
FROM findings f LEFT JOIN attacks a ON f.uid = a.uid",
        common = common(
            "Detection Finding",
            2004,
            ("Findings", 2),
            ("1", "'Create'"),
            (severity_id, &severity_name),
            ("ref_table", "finder", "'cloud', 'datetime'"),
            &cloud("'unknown'", NO_TEXT, NO_TEXT),
        ),
        first = ms("coalesce(f.first_seen, f.event_time)"),
        last = ms("coalesce(f.last_seen, f.event_time)"),
        // A column named twice in one branch trips DataFusion 55's leaf-projection pushdown
        // ("duplicate qualified field name"): Falco's times come from event_time below.
        no_time = "arrow_cast(NULL, 'Timestamp(Microsecond, Some(\"UTC\"))')",
    )
}

pub(crate) async fn register(ctx: &SessionContext) -> Result<()> {
    for class in CLASSES {
        ctx.deregister_table(class.view)?;
    }
    for sql in [
        api_activity(),
        network_activity(),
        process_activity(),
        detection_finding(),
    ] {
        ctx.sql(&sql).await?.collect().await?;
    }
    Ok(())
}
