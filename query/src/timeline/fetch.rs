//! Reads the three streams for a scope: one query per table, the window's partitions
//! only, bounded in rows; each row becomes a [`TimelineEvent`].

use std::sync::Arc;

use foldhash::HashSet;

use arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray, StringViewArray,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};

use super::entity::{literal, PodRef};
use kubetrail_schemas::table::OFFSET_COLUMN;

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
/// better spent on all three than on one after another. Rows in `read` (an earlier hop's)
/// are not made into events again.
pub(crate) async fn fetch(
    session: &LakeSession,
    window: &Window,
    selection: &Selection,
    read: &HashSet<Evidence>,
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
    let started = std::time::Instant::now();
    let rows_read = answers
        .iter()
        .flat_map(|(_, b)| b)
        .map(RecordBatch::num_rows);
    let mut events = Vec::with_capacity(rows_read.sum());
    let mut truncated = Vec::new();
    for (stream, batches) in answers {
        let mut room = selection.max_rows;
        for batch in &batches {
            room -= rows(stream, batch, room, read, &mut events)?;
        }
        if batches.iter().map(RecordBatch::num_rows).sum::<usize>() > selection.max_rows {
            truncated.push(stream);
        }
    }
    // With the queries' own log lines, tells reading rows from making them events.
    tracing::debug!(
        rows = events.len(),
        seconds = started.elapsed().as_secs_f64(),
        "rows converted"
    );
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

/// A text column read in place, whatever its stored string type (Delta and DataFusion
/// hand strings back as views, plain strings or dictionaries; views are the common case
/// and cast to themselves without a copy).
struct Text(StringViewArray);

impl Text {
    fn of(batch: &RecordBatch, name: &str) -> Result<Text, QueryError> {
        let column = column(batch, name)?;
        Ok(Text(
            cast(column, &DataType::Utf8View)?.as_string_view().clone(),
        ))
    }

    /// The value; `None` for null or empty.
    fn get(&self, row: usize) -> Option<&str> {
        (!self.0.is_null(row))
            .then(|| self.0.value(row))
            .filter(|v| !v.is_empty())
    }

    fn owned(&self, row: usize) -> Option<String> {
        self.get(row).map(str::to_owned)
    }
}

/// An integer column; timestamps as their µs count.
struct Ints(Int64Array);

impl Ints {
    fn of(batch: &RecordBatch, name: &str) -> Result<Ints, QueryError> {
        Ok(Ints(as_ints(column(batch, name)?)?))
    }

    fn get(&self, row: usize) -> Option<i64> {
        (!self.0.is_null(row)).then(|| self.0.value(row))
    }

    /// The value as a 32-bit integer (ports, status codes); `None` if it does not fit.
    fn int32(&self, row: usize) -> Option<i32> {
        self.get(row).and_then(|p| i32::try_from(p).ok())
    }
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, QueryError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| QueryError::Table("timeline".into(), format!("no column {name}")))
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

/// The columns every stream has.
struct Shared {
    time: Ints,
    namespace: Text,
    pod: Text,
    node: Text,
    src_ip: Text,
    source: Text,
    offset: Ints,
}

struct AuditColumns {
    audit_id: Text,
    stage: Text,
    verb: Text,
    user_name: Text,
    impersonated_user: Text,
    user_agent: Text,
    resource: Text,
    subresource: Text,
    name: Text,
    request_uri: Text,
    format: Text,
    response_code: Ints,
}

struct FlowColumns {
    dst_ip: Text,
    protocol: Text,
    action: Text,
    verdict: Text,
    src_namespace: Text,
    src_pod: Text,
    dst_namespace: Text,
    dst_pod: Text,
    dns_query: Text,
    http_method: Text,
    http_url: Text,
    format: Text,
    src_port: Ints,
    dst_port: Ints,
    bytes: Ints,
    packets: Ints,
    http_code: Ints,
}

struct RuntimeColumns {
    dst_ip: Text,
    event_type: Text,
    binary: Text,
    arguments: Text,
    file_path: Text,
    function_name: Text,
    rule: Text,
    priority: Text,
    output: Text,
    format: Text,
    src_port: Ints,
    dst_port: Ints,
    exit_code: Ints,
}

/// One stream's columns of a batch (boxed: one per batch, of very different sizes).
enum StreamColumns {
    Audit(Box<AuditColumns>),
    Flow(Box<FlowColumns>),
    Runtime(Box<RuntimeColumns>),
}

impl StreamColumns {
    fn of(stream: Stream, b: &RecordBatch) -> Result<StreamColumns, QueryError> {
        let t = |name| Text::of(b, name);
        let i = |name| Ints::of(b, name);
        Ok(match stream {
            Stream::Audit => StreamColumns::Audit(Box::new(AuditColumns {
                audit_id: t("audit_id")?,
                stage: t("stage")?,
                verb: t("verb")?,
                user_name: t("user_name")?,
                impersonated_user: t("impersonated_user")?,
                user_agent: t("user_agent")?,
                resource: t("resource")?,
                subresource: t("subresource")?,
                name: t("name")?,
                request_uri: t("request_uri")?,
                format: t("audit_format")?,
                response_code: i("response_code")?,
            })),
            Stream::Network => StreamColumns::Flow(Box::new(FlowColumns {
                dst_ip: t("dst_ip")?,
                protocol: t("protocol")?,
                action: t("action")?,
                verdict: t("verdict")?,
                src_namespace: t("src_namespace")?,
                src_pod: t("src_pod")?,
                dst_namespace: t("dst_namespace")?,
                dst_pod: t("dst_pod")?,
                dns_query: t("dns_query")?,
                http_method: t("http_method")?,
                http_url: t("http_url")?,
                format: t("flow_format")?,
                src_port: i("src_port")?,
                dst_port: i("dst_port")?,
                bytes: i("bytes")?,
                packets: i("packets")?,
                http_code: i("http_code")?,
            })),
            Stream::Runtime => StreamColumns::Runtime(Box::new(RuntimeColumns {
                dst_ip: t("dst_ip")?,
                event_type: t("event_type")?,
                binary: t("binary")?,
                arguments: t("arguments")?,
                file_path: t("file_path")?,
                function_name: t("function_name")?,
                rule: t("rule")?,
                priority: t("priority")?,
                output: t("output")?,
                format: t("runtime_format")?,
                src_port: i("src_port")?,
                dst_port: i("dst_port")?,
                exit_code: i("exit_code")?,
            })),
        })
    }
}

/// Makes events of the batch's first `room` rows, those not in `read`; returns how many
/// rows it went through.
fn rows(
    stream: Stream,
    batch: &RecordBatch,
    room: usize,
    read: &HashSet<Evidence>,
    out: &mut Vec<TimelineEvent>,
) -> Result<usize, QueryError> {
    let shared = Shared {
        time: Ints::of(batch, "event_time")?,
        namespace: Text::of(batch, "namespace")?,
        pod: Text::of(batch, "pod")?,
        node: Text::of(batch, "node")?,
        src_ip: Text::of(batch, "src_ip")?,
        source: Text::of(batch, "_source")?,
        offset: Ints::of(batch, OFFSET_COLUMN)?,
    };
    let columns = StreamColumns::of(stream, batch)?;
    let taken = batch.num_rows().min(room);
    // A batch holds few sources (one per file or Kafka partition): rows share their text.
    let mut source: Arc<str> = Arc::from("");
    for row in 0..taken {
        let s = shared.source.get(row).unwrap_or_default();
        if *source != *s {
            source = Arc::from(s);
        }
        let evidence = Evidence {
            table: stream.table(),
            source: source.clone(),
            offset: shared.offset.get(row).unwrap_or_default(),
        };
        if read.contains(&evidence) {
            continue;
        }
        let mut e = shared_fields(stream, &shared, row, evidence);
        match &columns {
            StreamColumns::Audit(c) => audit(&mut e, c, row),
            StreamColumns::Flow(c) => flow(&mut e, c, row),
            StreamColumns::Runtime(c) => runtime(&mut e, c, row),
        }
        out.push(e);
    }
    Ok(taken)
}

fn shared_fields(stream: Stream, c: &Shared, row: usize, evidence: Evidence) -> TimelineEvent {
    let time = c.time.get(row).unwrap_or_default();
    let mut e = TimelineEvent::new(stream, time, evidence);
    e.namespace = c.namespace.owned(row);
    e.pod = c.pod.owned(row);
    e.node = c.node.owned(row);
    e.src_ip = c.src_ip.owned(row);
    e
}

fn audit(e: &mut TimelineEvent, c: &AuditColumns, row: usize) {
    let verb = c.verb.get(row).unwrap_or("?");
    let resource = c.resource.get(row);
    let subresource = c.subresource.get(row);
    let name = c.name.owned(row);
    e.actor = c.user_name.owned(row);
    e.action = match subresource {
        Some(sub) => format!("{verb} {}/{sub}", resource.unwrap_or("?")),
        None => format!("{verb} {}", resource.unwrap_or("?")),
    };
    e.target = match (&e.namespace, &name) {
        (Some(ns), Some(n)) => Some(format!("{ns}/{n}")),
        (None, Some(n)) => Some(n.clone()),
        (Some(ns), None) => Some(ns.clone()),
        (None, None) => None,
    };
    e.format = c.format.owned(row).unwrap_or_default();
    let command = (subresource == Some("exec"))
        .then(|| c.request_uri.get(row).and_then(exec_command))
        .flatten();
    e.detail = Detail::Audit {
        verb: verb.to_owned(),
        resource: resource.map(str::to_owned),
        subresource: subresource.map(str::to_owned),
        name,
        response_code: c.response_code.int32(row),
        user_agent: c.user_agent.owned(row),
        command,
        impersonated: c.impersonated_user.owned(row),
        audit_id: c.audit_id.owned(row),
        stage: c.stage.owned(row),
    };
}

fn flow(e: &mut TimelineEvent, c: &FlowColumns, row: usize) {
    e.src_port = c.src_port.int32(row);
    e.dst_ip = c.dst_ip.owned(row);
    e.dst_port = c.dst_port.int32(row);
    e.bytes = c.bytes.get(row);
    let verdict = c.action.owned(row).or_else(|| c.verdict.owned(row));
    e.action = verdict.clone().unwrap_or_else(|| "flow".into());
    e.format = c.format.owned(row).unwrap_or_default();
    let pod = |ns: &Text, name: &Text| {
        name.owned(row).map(|n| PodRef {
            namespace: ns.owned(row).unwrap_or_default(),
            name: n,
        })
    };
    let http = match (c.http_method.get(row), c.http_url.get(row)) {
        (Some(m), Some(u)) => Some(match c.http_code.get(row) {
            Some(code) => format!("{m} {u} → {code}"),
            None => format!("{m} {u}"),
        }),
        _ => None,
    };
    e.detail = Detail::Flow {
        protocol: c.protocol.owned(row),
        verdict,
        packets: c.packets.get(row),
        dns_query: c.dns_query.owned(row),
        http,
        src_pod: pod(&c.src_namespace, &c.src_pod),
        dst_pod: pod(&c.dst_namespace, &c.dst_pod),
    };
    e.describe_flow_ends();
}

fn runtime(e: &mut TimelineEvent, c: &RuntimeColumns, row: usize) {
    e.src_port = c.src_port.int32(row);
    e.dst_ip = c.dst_ip.owned(row);
    e.dst_port = c.dst_port.int32(row);
    let event_type = c.event_type.owned(row).unwrap_or_else(|| "event".into());
    let rule = c.rule.owned(row);
    e.actor = e
        .pod_ref()
        .or_else(|| e.node.clone().map(|n| format!("node {n}")));
    e.action = match &rule {
        Some(r) => format!("falco: {r}"),
        None => event_type.clone(),
    };
    e.target = c
        .file_path
        .owned(row)
        .or_else(|| e.dst())
        .or_else(|| c.binary.owned(row))
        .or_else(|| rule.clone());
    e.format = c.format.owned(row).unwrap_or_default();
    e.detail = Detail::Runtime {
        event_type,
        binary: c.binary.owned(row),
        arguments: c.arguments.owned(row),
        file_path: c.file_path.owned(row),
        function_name: c.function_name.owned(row),
        exit_code: c.exit_code.get(row),
        falco: rule.map(|r| (r, c.priority.owned(row).unwrap_or_default())),
        output: c.output.owned(row),
    };
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
