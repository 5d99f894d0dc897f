//! The `events` view: all three streams in one timeline shape, each row pointing back to
//! the row it came from (`ref_table`, `ref_source`, `ref_offset`).

use datafusion::error::Result;
use datafusion::prelude::SessionContext;

/// Columns: event_time, event_date, source, cluster, namespace, pod, node, actor, action,
/// target, src_ip, dst_ip, summary, ref_table, ref_source, ref_offset.
const EVENTS: &str = r#"
CREATE VIEW events AS
SELECT
  event_time, event_date, 'audit' AS source, cluster, namespace, pod, node,
  user_name AS actor,
  verb AS action,
  concat(coalesce(resource, ''),
         CASE WHEN subresource IS NOT NULL THEN concat('/', subresource) ELSE '' END,
         CASE WHEN name IS NOT NULL
              THEN concat(' ', CASE WHEN namespace IS NOT NULL THEN concat(namespace, '/') ELSE '' END, name)
              ELSE '' END) AS target,
  src_ip, CAST(NULL AS VARCHAR) AS dst_ip,
  concat(coalesce(user_name, '?'), ' ', coalesce(verb, '?'), ' ', coalesce(resource, ''),
         CASE WHEN subresource IS NOT NULL THEN concat('/', subresource) ELSE '' END,
         CASE WHEN name IS NOT NULL THEN concat(' ', name) ELSE '' END,
         CASE WHEN namespace IS NOT NULL THEN concat(' in ', namespace) ELSE '' END,
         CASE WHEN response_code IS NOT NULL THEN concat(' -> ', CAST(response_code AS VARCHAR)) ELSE '' END,
         CASE WHEN src_ip IS NOT NULL THEN concat(' from ', src_ip) ELSE '' END) AS summary,
  'k8s_audit' AS ref_table, _source AS ref_source, _offset AS ref_offset
FROM k8s_audit
UNION ALL
SELECT
  event_time, event_date, 'network' AS source, cluster, namespace, pod, node,
  CASE WHEN src_pod IS NOT NULL THEN concat(coalesce(src_namespace, ''), '/', src_pod) ELSE src_ip END AS actor,
  coalesce(action, verdict, 'flow') AS action,
  concat(CASE WHEN dst_pod IS NOT NULL THEN concat(coalesce(dst_namespace, ''), '/', dst_pod) ELSE coalesce(dst_ip, '?') END,
         CASE WHEN dst_port IS NOT NULL THEN concat(':', CAST(dst_port AS VARCHAR)) ELSE '' END) AS target,
  src_ip, dst_ip,
  concat(coalesce(protocol, 'IP'), ' ', coalesce(src_ip, '?'),
         CASE WHEN src_port IS NOT NULL THEN concat(':', CAST(src_port AS VARCHAR)) ELSE '' END,
         ' -> ', coalesce(dst_ip, '?'),
         CASE WHEN dst_port IS NOT NULL THEN concat(':', CAST(dst_port AS VARCHAR)) ELSE '' END,
         ' ', coalesce(action, verdict, ''),
         CASE WHEN bytes IS NOT NULL THEN concat(' ', CAST(bytes AS VARCHAR), ' bytes') ELSE '' END,
         CASE WHEN dns_query IS NOT NULL THEN concat(' dns ', dns_query) ELSE '' END,
         CASE WHEN http_url IS NOT NULL THEN concat(' ', coalesce(http_method, ''), ' ', http_url) ELSE '' END) AS summary,
  'network_flows' AS ref_table, _source AS ref_source, _offset AS ref_offset
FROM network_flows
UNION ALL
SELECT
  event_time, event_date, 'runtime' AS source, cluster, namespace, pod, node,
  CASE WHEN pod IS NOT NULL THEN concat(coalesce(namespace, ''), '/', pod) ELSE coalesce(node, container_id) END AS actor,
  CASE WHEN rule IS NOT NULL THEN concat('falco: ', rule) ELSE event_type END AS action,
  coalesce(file_path,
           CASE WHEN dst_ip IS NOT NULL THEN concat(dst_ip, ':', coalesce(CAST(dst_port AS VARCHAR), '')) END,
           binary, rule) AS target,
  src_ip, dst_ip,
  coalesce(output,
           concat(event_type, ' ', coalesce(binary, ''),
                  CASE WHEN arguments IS NOT NULL THEN concat(' ', arguments) ELSE '' END,
                  CASE WHEN file_path IS NOT NULL THEN concat(' file ', file_path) ELSE '' END,
                  CASE WHEN dst_ip IS NOT NULL THEN concat(' -> ', dst_ip, ':', coalesce(CAST(dst_port AS VARCHAR), '')) ELSE '' END)) AS summary,
  'runtime_events' AS ref_table, _source AS ref_source, _offset AS ref_offset
FROM runtime_events
"#;

/// (Re)defines the views over whatever the event tables are now (the whole tables, or a
/// window's views of them).
pub(crate) async fn register(ctx: &SessionContext) -> Result<()> {
    ctx.deregister_table("events")?;
    ctx.sql(EVENTS).await?.collect().await?;
    crate::ocsf::register(ctx).await
}
