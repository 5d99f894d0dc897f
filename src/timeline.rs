//! `kubetrail timeline`.

use std::io::Write;
use std::path::PathBuf;

use kubetrail_query::timeline::{
    self, export, parse_time, Entity, TimelineError, TimelineFormat, TimelineRequest, Window,
};
use kubetrail_query::LakeSession;

use crate::cli::TimelineCmd;
use crate::config::Config;
use crate::Outcome;

/// Where the timeline goes: a stream in one format, or an evidence bundle's directory.
enum Destination {
    Stream(TimelineFormat),
    Evidence(PathBuf),
}

pub async fn run(cmd: TimelineCmd, config: &Config) -> anyhow::Result<Outcome> {
    let destination = match (cmd.format.as_str(), &cmd.output) {
        ("evidence", Some(dir)) => Destination::Evidence(dir.clone()),
        ("evidence", None) => {
            anyhow::bail!("an evidence bundle is a directory: give it with --output DIR")
        }
        (format, _) => Destination::Stream(format.parse().map_err(anyhow::Error::msg)?),
    };
    let format = match &destination {
        Destination::Stream(format) => *format,
        Destination::Evidence(_) => TimelineFormat::Jsonl,
    };
    if format.is_binary()
        && cmd.output.is_none()
        && std::io::IsTerminal::is_terminal(&std::io::stdout())
    {
        anyhow::bail!("parquet output needs --output FILE (or a pipe)");
    }
    let mut request = TimelineRequest::new(entity(&cmd).map_err(anyhow::Error::msg)?);
    request.window = window(&cmd).map_err(anyhow::Error::msg)?;
    request.depth = cmd.depth;
    // A bundle's lines are one lake row each: a folded line would stand for rows it
    // cannot name.
    request.collapse = !cmd.no_collapse && matches!(destination, Destination::Stream(_));
    if cmd.max_rows == 0 {
        anyhow::bail!("--max-rows must be at least 1");
    }
    request.max_rows = cmd.max_rows;
    request.address_lookback_micros = i64::try_from(cmd.address_lookback.as_micros())
        .map_err(|_| anyhow::anyhow!("--address-lookback is too long"))?;
    let engine = config.engine(cmd.engine.engine.as_deref())?;
    let session = LakeSession::open_on(&config.lake(cmd.lake.lake.as_deref())?, &engine).await?;
    let built = match timeline::build(&session, &request).await {
        Ok(t) => t,
        Err(TimelineError::Query(e)) => return Err(e.into()),
        Err(e) => anyhow::bail!("{e}"),
    };
    // Notes go to stderr too when the output is data, so a pipe stays clean and the
    // responder still reads them.
    if format != TimelineFormat::Table {
        for n in &built.notes {
            eprintln!("note: {n}");
        }
    }
    if let Destination::Evidence(dir) = &destination {
        let bundle = export::evidence::write_bundle(&session, &built, dir).await?;
        let rows: Vec<String> = (bundle.rows.iter())
            .map(|(t, n)| format!("{n} {t}"))
            .collect();
        eprintln!(
            "evidence bundle of {} written to {}: {} lines, rows {} from {} lake file(s); check it with: cd {} && sha256sum -c SHA256SUMS",
            built.entity,
            dir.display(),
            built.lines.len(),
            rows.join(", "),
            bundle.files,
            dir.display()
        );
        return Ok(Outcome::Ok);
    }
    let mut out = crate::query::output(cmd.output.as_deref())?;
    export::write(&built, format, &mut out)?;
    out.flush()?;
    if let Some(path) = &cmd.output {
        eprintln!(
            "{} lines of the timeline of {} written to {}",
            built.lines.len(),
            built.entity,
            path.display()
        );
    }
    Ok(Outcome::Ok)
}

fn entity(cmd: &TimelineCmd) -> Result<Entity, String> {
    if let Some(p) = &cmd.pod {
        Entity::pod(p)
    } else if let Some(u) = &cmd.user {
        Entity::user(u)
    } else if let Some(ip) = &cmd.ip {
        Entity::ip(ip)
    } else if let Some(n) = &cmd.node {
        Entity::node(n)
    } else if let Some(c) = &cmd.container {
        Entity::container(c)
    } else if let Some(a) = &cmd.alert {
        Entity::alert(a)
    } else {
        Err("name an entity: --pod, --user, --ip, --node, --container or --alert".into())
    }
}

fn window(cmd: &TimelineCmd) -> Result<Option<Window>, String> {
    match (&cmd.from, &cmd.to, &cmd.around) {
        (Some(from), Some(to), None) => {
            let from = parse_time(from).map_err(|e| format!("--from: {e}"))?;
            let to = parse_time(to).map_err(|e| format!("--to: {e}"))?;
            Window::new(from, to).map(Some)
        }
        (None, None, Some(around)) => {
            let center = parse_time(around).map_err(|e| format!("--around: {e}"))?;
            Window::around(center, cmd.window).map(Some)
        }
        _ => Ok(None),
    }
}
