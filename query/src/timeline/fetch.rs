//! Reads the three streams for a scope: one query per table, the window's partitions
//! only, bounded in rows; each row becomes a [`TimelineEvent`].

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};

use super::entity::{literal, PodRef};
use super::event::{Detail, Evidence, Stream, TimelineEvent};
use crate::window::Window;
use crate::{LakeSession, QueryError};

/// What to read: SQL conditions per stream (each already a parenthesised OR of the
/// scope's members), and how many rows a stream may return at most.
pub(crate) struct Selection {
    pub audit: Option<String>,
    pub network: Option<String>,
    pub runtime: Option<String>,
    pub max_rows: usize,
}

/// Rows of one stream, and whether the row bound cut them short.
pub(crate) struct Fetched {
    pub events: Vec<TimelineEvent>,
    pub truncated: Vec<Stream>,
}

/// The three streams are read at once: each query is small, and the machine's cores are
/// better spent on all three than on one after another.
pub(crate) async fn fetch(
    session: &LakeSession,
    window: &Window,
    selection: &Selection,
) -> Result<Fetched, QueryError> {
    let queries = [
        (Stream::Audit, &selection.audit),
        (Stream::Network, &selection.network),
        (Stream::Runtime, &selection.runtime),
    ]
    .into_iter()
    .filter_map(|(stream, condition)| {
        let condition = condition.as_ref()?;
        let sql = format!(
            "SELECT {} FROM {} WHERE {} AND {condition} ORDER BY event_time LIMIT {}",
            columns(stream),
            stream.table(),
            window.predicate(),
            selection.max_rows + 1
        );
        Some(async move { Ok::<_, QueryError>((stream, session.query(&sql).await?)) })
    });
    let answers = futures::future::try_join_all(queries).await?;
    let mut events = Vec::new();
    let mut truncated = Vec::new();
    for (stream, batches) in answers {
        let before = events.len();
        for batch in &batches {
            rows(stream, batch, &mut events)?;
        }
        if events.len() - before > selection.max_rows {
            events.truncate(before + selection.max_rows);
            truncated.push(stream);
        }
    }
    Ok(Fetched { events, truncated })
}

fn columns(stream: Stream) -> &'static str {
    match stream {
        Stream::Audit => {
            "event_time, namespace, pod, node, src_ip, audit_id, stage, verb, user_name, \
             impersonated_user, user_agent, resource, subresource, name, request_uri, \
             response_code, audit_format, _source, _offset"
        }
        Stream::Network => {
            "event_time, namespace, pod, node, src_ip, dst_ip, src_port, dst_port, protocol, \
             bytes, packets, action, verdict, src_namespace, src_pod, dst_namespace, dst_pod, \
             dns_query, http_method, http_url, http_code, flow_format, _source, _offset"
        }
        Stream::Runtime => {
            "event_time, namespace, pod, node, src_ip, dst_ip, src_port, dst_port, \
             event_type, binary, arguments, file_path, function_name, exit_code, rule, \
             priority, output, runtime_format, _source, _offset"
        }
    }
}

/// A batch's columns by name, as text or integers whatever their stored type (Delta and
/// DataFusion may hand strings back as views or dictionaries).
struct Columns<'a> {
    batch: &'a RecordBatch,
    text: HashMap<&'static str, StringArray>,
    ints: HashMap<&'static str, Int64Array>,
}

impl<'a> Columns<'a> {
    fn new(batch: &'a RecordBatch) -> Self {
        Columns {
            batch,
            text: HashMap::new(),
            ints: HashMap::new(),
        }
    }

    fn column(&self, name: &str) -> Result<&ArrayRef, QueryError> {
        self.batch
            .column_by_name(name)
            .ok_or_else(|| QueryError::Table("timeline".into(), format!("no column {name}")))
    }

    fn load_text(&mut self, names: &[&'static str]) -> Result<(), QueryError> {
        for &n in names {
            let a = as_text(self.column(n)?)?;
            self.text.insert(n, a);
        }
        Ok(())
    }

    fn load_ints(&mut self, names: &[&'static str]) -> Result<(), QueryError> {
        for &n in names {
            let a = as_ints(self.column(n)?)?;
            self.ints.insert(n, a);
        }
        Ok(())
    }

    fn s(&self, name: &str, row: usize) -> Option<String> {
        let a = &self.text[name];
        (!a.is_null(row) && !a.value(row).is_empty()).then(|| a.value(row).to_owned())
    }

    fn i(&self, name: &str, row: usize) -> Option<i64> {
        let a = &self.ints[name];
        (!a.is_null(row)).then(|| a.value(row))
    }
}

/// A column as text, whatever its stored string type.
pub(crate) fn as_text(column: &ArrayRef) -> Result<StringArray, QueryError> {
    Ok(cast(column, &DataType::Utf8)?.as_string::<i32>().clone())
}

/// A column as integers; timestamps become their µs count.
pub(crate) fn as_ints(column: &ArrayRef) -> Result<Int64Array, QueryError> {
    Ok(cast(column, &DataType::Int64)?
        .as_primitive::<Int64Type>()
        .clone())
}

fn rows(
    stream: Stream,
    batch: &RecordBatch,
    out: &mut Vec<TimelineEvent>,
) -> Result<(), QueryError> {
    let mut c = Columns::new(batch);
    c.load_text(&["namespace", "pod", "node", "src_ip", "_source"])?;
    c.load_ints(&["event_time", "_offset"])?;
    match stream {
        Stream::Audit => {
            c.load_text(&[
                "audit_id",
                "stage",
                "verb",
                "user_name",
                "impersonated_user",
                "user_agent",
                "resource",
                "subresource",
                "name",
                "request_uri",
                "audit_format",
            ])?;
            c.load_ints(&["response_code"])?;
        }
        Stream::Network => {
            c.load_text(&[
                "dst_ip",
                "protocol",
                "action",
                "verdict",
                "src_namespace",
                "src_pod",
                "dst_namespace",
                "dst_pod",
                "dns_query",
                "http_method",
                "http_url",
                "flow_format",
            ])?;
            c.load_ints(&["src_port", "dst_port", "bytes", "packets", "http_code"])?;
        }
        Stream::Runtime => {
            c.load_text(&[
                "dst_ip",
                "event_type",
                "binary",
                "arguments",
                "file_path",
                "function_name",
                "rule",
                "priority",
                "output",
                "runtime_format",
            ])?;
            c.load_ints(&["src_port", "dst_port", "exit_code"])?;
        }
    }
    for row in 0..batch.num_rows() {
        out.push(event(stream, &c, row));
    }
    Ok(())
}

fn event(stream: Stream, c: &Columns, row: usize) -> TimelineEvent {
    let time = c.i("event_time", row).unwrap_or_default();
    let evidence = Evidence {
        table: stream.table(),
        source: c.s("_source", row).unwrap_or_default(),
        offset: c.i("_offset", row).unwrap_or_default(),
    };
    let port = |name: &str| c.i(name, row).and_then(|p| i32::try_from(p).ok());
    let mut e = TimelineEvent {
        time,
        last_time: time,
        count: 1,
        stream,
        actor: None,
        action: String::new(),
        target: None,
        namespace: c.s("namespace", row),
        pod: c.s("pod", row),
        node: c.s("node", row),
        src_ip: c.s("src_ip", row),
        src_port: None,
        dst_ip: None,
        dst_port: None,
        bytes: None,
        format: String::new(),
        relation: String::new(),
        alert_ids: Vec::new(),
        evidence,
        detail: Detail::Flow {
            protocol: None,
            verdict: None,
            packets: None,
            dns_query: None,
            http: None,
            src_pod: None,
            dst_pod: None,
        },
    };
    match stream {
        Stream::Audit => {
            let verb = c.s("verb", row).unwrap_or_else(|| "?".into());
            let resource = c.s("resource", row);
            let subresource = c.s("subresource", row);
            let name = c.s("name", row);
            e.actor = c.s("user_name", row);
            e.action = match &subresource {
                Some(sub) => format!("{verb} {}/{sub}", resource.as_deref().unwrap_or("?")),
                None => format!("{verb} {}", resource.as_deref().unwrap_or("?")),
            };
            e.target = match (&e.namespace, &name) {
                (Some(ns), Some(n)) => Some(format!("{ns}/{n}")),
                (None, Some(n)) => Some(n.clone()),
                (Some(ns), None) => Some(ns.clone()),
                (None, None) => None,
            };
            e.format = c.s("audit_format", row).unwrap_or_default();
            let command = (subresource.as_deref() == Some("exec"))
                .then(|| c.s("request_uri", row).and_then(|u| exec_command(&u)))
                .flatten();
            e.detail = Detail::Audit {
                verb,
                resource,
                subresource,
                name,
                response_code: c
                    .i("response_code", row)
                    .and_then(|v| i32::try_from(v).ok()),
                user_agent: c.s("user_agent", row),
                command,
                impersonated: c.s("impersonated_user", row),
                audit_id: c.s("audit_id", row),
                stage: c.s("stage", row),
            };
        }
        Stream::Network => {
            e.src_port = port("src_port");
            e.dst_ip = c.s("dst_ip", row);
            e.dst_port = port("dst_port");
            e.bytes = c.i("bytes", row);
            let verdict = c.s("action", row).or_else(|| c.s("verdict", row));
            e.action = verdict.clone().unwrap_or_else(|| "flow".into());
            e.format = c.s("flow_format", row).unwrap_or_default();
            let pod = |ns: &str, name: &str| {
                c.s(name, row).map(|n| PodRef {
                    namespace: c.s(ns, row).unwrap_or_default(),
                    name: n,
                })
            };
            let http = match (c.s("http_method", row), c.s("http_url", row)) {
                (Some(m), Some(u)) => Some(match c.i("http_code", row) {
                    Some(code) => format!("{m} {u} → {code}"),
                    None => format!("{m} {u}"),
                }),
                _ => None,
            };
            e.detail = Detail::Flow {
                protocol: c.s("protocol", row),
                verdict,
                packets: c.i("packets", row),
                dns_query: c.s("dns_query", row),
                http,
                src_pod: pod("src_namespace", "src_pod"),
                dst_pod: pod("dst_namespace", "dst_pod"),
            };
            e.describe_flow_ends();
        }
        Stream::Runtime => {
            e.src_port = port("src_port");
            e.dst_ip = c.s("dst_ip", row);
            e.dst_port = port("dst_port");
            let event_type = c.s("event_type", row).unwrap_or_else(|| "event".into());
            let rule = c.s("rule", row);
            e.actor = e
                .pod_ref()
                .or_else(|| e.node.clone().map(|n| format!("node {n}")));
            e.action = match &rule {
                Some(r) => format!("falco: {r}"),
                None => event_type.clone(),
            };
            e.target = c
                .s("file_path", row)
                .or_else(|| e.dst())
                .or_else(|| c.s("binary", row))
                .or_else(|| rule.clone());
            e.format = c.s("runtime_format", row).unwrap_or_default();
            e.detail = Detail::Runtime {
                event_type,
                binary: c.s("binary", row),
                arguments: c.s("arguments", row),
                file_path: c.s("file_path", row),
                function_name: c.s("function_name", row),
                exit_code: c.i("exit_code", row),
                falco: rule.map(|r| (r, c.s("priority", row).unwrap_or_default())),
                output: c.s("output", row),
            };
        }
    }
    e
}

/// `…/exec?command=sh&command=-c&command=id&container=api` → `sh -c id`.
fn exec_command(uri: &str) -> Option<String> {
    let (_, query) = uri.split_once('?')?;
    let parts: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.into_owned())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// SQL: `(namespace = 'a' AND pod = 'b') OR …` over the given column pair.
pub(crate) fn pods_condition<'a>(
    pods: impl IntoIterator<Item = &'a PodRef>,
    namespace_column: &str,
    pod_column: &str,
) -> Option<String> {
    let parts: Vec<String> = pods
        .into_iter()
        .map(|p| {
            format!(
                "({namespace_column} = {} AND {pod_column} = {})",
                literal(&p.namespace),
                literal(&p.name)
            )
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(" OR "))
}

/// SQL: `column IN ('a', 'b')`.
pub(crate) fn in_condition<'a>(
    column: &str,
    values: impl IntoIterator<Item = &'a String>,
) -> Option<String> {
    let values: Vec<String> = values.into_iter().map(|v| literal(v)).collect();
    (!values.is_empty()).then(|| format!("{column} IN ({})", values.join(", ")))
}

/// The OR of the conditions that exist, parenthesised; `None` when there are none.
pub(crate) fn any_of(conditions: impl IntoIterator<Item = Option<String>>) -> Option<String> {
    let parts: Vec<String> = conditions.into_iter().flatten().collect();
    (!parts.is_empty()).then(|| format!("({})", parts.join(" OR ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exec_shows_its_command() {
        assert_eq!(
            exec_command("/api/v1/namespaces/shop/pods/api/exec?command=sh&command=-c&command=cat%20%2Fetc%2Fpasswd&container=api&stdin=true").as_deref(),
            Some("sh -c cat /etc/passwd")
        );
        assert_eq!(exec_command("/api/v1/namespaces/shop/pods/api/exec"), None);
    }
}
