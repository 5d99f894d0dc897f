//! AWS VPC flow logs: space-separated text, versions 2 to 8. The field order comes from the
//! header line when the stream has one (S3 delivery writes it), else the version 2 default.

use serde_json::{Map, Value};

use super::json::{extra_text, protocol_name};
use super::{utf8, DecodeError, DecodeOptions, Output};
use crate::decode::ip::canonical_ip;
use crate::rows::FlowRecord;
use crate::time::from_epoch_seconds;

/// The fields of versions 2 to 8, by their names in the log format string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Version,
    AccountId,
    InterfaceId,
    SrcAddr,
    DstAddr,
    SrcPort,
    DstPort,
    Protocol,
    Packets,
    Bytes,
    Start,
    End,
    Action,
    LogStatus,
    VpcId,
    SubnetId,
    InstanceId,
    TcpFlags,
    FlowDirection,
    Region,
    /// Kept in `extra` under its own name.
    Other(&'static str),
}

const OTHER_FIELDS: [&str; 19] = [
    "type",
    "pkt-srcaddr",
    "pkt-dstaddr",
    "az-id",
    "sublocation-type",
    "sublocation-id",
    "pkt-src-aws-service",
    "pkt-dst-aws-service",
    "traffic-path",
    "ecs-cluster-arn",
    "ecs-cluster-name",
    "ecs-container-instance-arn",
    "ecs-container-instance-id",
    "ecs-container-id",
    "ecs-second-container-id",
    "ecs-service-name",
    "ecs-task-definition-arn",
    "ecs-task-arn",
    "ecs-task-id",
];

impl Field {
    fn parse(name: &str) -> Option<Field> {
        let name = name
            .trim_start_matches("${")
            .trim_end_matches('}')
            .replace('_', "-");
        Some(match name.as_str() {
            "version" => Field::Version,
            "account-id" => Field::AccountId,
            "interface-id" => Field::InterfaceId,
            "srcaddr" => Field::SrcAddr,
            "dstaddr" => Field::DstAddr,
            "srcport" => Field::SrcPort,
            "dstport" => Field::DstPort,
            "protocol" => Field::Protocol,
            "packets" => Field::Packets,
            "bytes" => Field::Bytes,
            "start" => Field::Start,
            "end" => Field::End,
            "action" => Field::Action,
            "log-status" => Field::LogStatus,
            "vpc-id" => Field::VpcId,
            "subnet-id" => Field::SubnetId,
            "instance-id" => Field::InstanceId,
            "tcp-flags" => Field::TcpFlags,
            "flow-direction" => Field::FlowDirection,
            "region" => Field::Region,
            "reject-reason" => Field::Other("reject-reason"),
            other => Field::Other(OTHER_FIELDS.iter().find(|f| **f == other)?),
        })
    }
}

/// The order of fields in a stream's records.
#[derive(Debug, Clone)]
pub struct FieldOrder(Vec<Field>);

impl Default for FieldOrder {
    /// The version 2 default format.
    fn default() -> Self {
        use Field::*;
        FieldOrder(vec![
            Version,
            AccountId,
            InterfaceId,
            SrcAddr,
            DstAddr,
            SrcPort,
            DstPort,
            Protocol,
            Packets,
            Bytes,
            Start,
            End,
            Action,
            LogStatus,
        ])
    }
}

pub(crate) fn decode(
    record: &[u8],
    order: &mut FieldOrder,
    options: &DecodeOptions,
) -> Output<FlowRecord> {
    let mut out = Output::default();
    let line = match utf8(record) {
        Ok(line) => line.trim(),
        Err(e) => {
            out.reject(record, e);
            return out;
        }
    };
    if line.is_empty() {
        return out;
    }
    let words: Vec<&str> = line.split_ascii_whitespace().collect();
    if words
        .first()
        .is_some_and(|w| w.starts_with(|c: char| c.is_ascii_alphabetic() || c == '$'))
    {
        // A header line declares the order of what follows.
        match words
            .iter()
            .map(|w| Field::parse(w).ok_or(*w))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(fields) => *order = FieldOrder(fields),
            Err(unknown) => out.reject(
                record,
                DecodeError::invalid("header", format!("unknown VPC flow log field '{unknown}'")),
            ),
        }
        return out;
    }
    match decode_line(&words, order, options) {
        Ok(row) => out.rows.push(row),
        Err(e) => out.reject(record, e),
    }
    out
}

fn decode_line(
    words: &[&str],
    order: &FieldOrder,
    options: &DecodeOptions,
) -> Result<FlowRecord, DecodeError> {
    if words.len() != order.0.len() {
        return Err(DecodeError::invalid(
            "record",
            format!(
                "{} fields, but the format has {}",
                words.len(),
                order.0.len()
            ),
        ));
    }
    let mut row = FlowRecord {
        cluster: options.cluster.clone(),
        flow_format: "aws-vpc-flow".to_owned(),
        ..FlowRecord::default()
    };
    let mut start = None;
    let mut end = None;
    let mut extra = Map::new();
    for (field, word) in order.0.iter().zip(words) {
        if *word == "-" {
            continue;
        }
        let text = Some(word.to_string());
        match field {
            Field::Version => {
                extra.insert("version".into(), Value::from(number(word, "version")?));
            }
            Field::AccountId => row.account_id = text,
            Field::InterfaceId => row.interface_id = text,
            Field::SrcAddr => row.src_ip = Some(canonical_ip(word)),
            Field::DstAddr => row.dst_ip = Some(canonical_ip(word)),
            Field::SrcPort => row.src_port = Some(port(word, "srcport")?),
            Field::DstPort => row.dst_port = Some(port(word, "dstport")?),
            Field::Protocol => row.protocol = Some(protocol_name(number(word, "protocol")?)),
            Field::Packets => row.packets = Some(number(word, "packets")?),
            Field::Bytes => row.bytes = Some(number(word, "bytes")?),
            Field::Start => {
                start = Some(
                    from_epoch_seconds(number(word, "start")?)
                        .map_err(|r| DecodeError::invalid("start", r))?,
                )
            }
            Field::End => {
                end = Some(
                    from_epoch_seconds(number(word, "end")?)
                        .map_err(|r| DecodeError::invalid("end", r))?,
                )
            }
            Field::Action => {
                row.action = Some(match *word {
                    "ACCEPT" => "allow".to_owned(),
                    "REJECT" => "deny".to_owned(),
                    other => other.to_ascii_lowercase(),
                });
                row.verdict = text;
            }
            Field::LogStatus => row.log_status = text,
            Field::VpcId => row.vpc_id = text,
            Field::SubnetId => row.subnet_id = text,
            Field::InstanceId => row.instance_id = text,
            Field::TcpFlags => row.tcp_flags = Some(tcp_flags(number(word, "tcp-flags")?)),
            Field::FlowDirection => row.direction = text,
            Field::Region => row.region = text,
            Field::Other(name) => {
                extra.insert((*name).to_owned(), Value::from(*word));
            }
        }
    }
    row.event_time = start.or(end).ok_or(DecodeError::Missing("start"))?;
    row.start_time = start;
    row.end_time = end;
    row.extra = extra_text(extra);
    Ok(row)
}

fn number(word: &str, field: &'static str) -> Result<i64, DecodeError> {
    word.parse::<i64>().map_err(|_| {
        DecodeError::invalid(
            field,
            format!("'{}' is not a number", crate::time::shorten(word)),
        )
    })
}

fn port(word: &str, field: &'static str) -> Result<i32, DecodeError> {
    let n = number(word, field)?;
    i32::try_from(n)
        .ok()
        .filter(|p| (0..=65535).contains(p))
        .ok_or_else(|| DecodeError::invalid(field, format!("{n} is not a port")))
}

/// The OR of the TCP flags seen during the aggregation interval.
fn tcp_flags(bits: i64) -> String {
    let names = [
        (1, "FIN"),
        (2, "SYN"),
        (4, "RST"),
        (8, "PSH"),
        (16, "ACK"),
        (32, "URG"),
    ];
    let set: Vec<&str> = names
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if set.is_empty() {
        bits.to_string()
    } else {
        set.join(",")
    }
}
