//! `kubetrail export ocsf`.

use anyhow::bail;
use kubetrail_query::ocsf::export::{export, SecurityLakeSource};
use kubetrail_query::ocsf::{OcsfClass, CLASSES};
use kubetrail_query::timeline::parse_time;
use kubetrail_query::Window;

use crate::cli::ExportCmd;
use crate::config::Config;
use crate::Outcome;

pub async fn run(cmd: ExportCmd, config: &Config) -> anyhow::Result<Outcome> {
    let ExportCmd::Ocsf {
        lake,
        table,
        from,
        to,
        output,
        source_name,
        region,
        account_id,
    } = cmd;
    let classes: Vec<OcsfClass> = if table.iter().any(|t| t == "all") {
        CLASSES.to_vec()
    } else {
        table
            .iter()
            .flat_map(|t| t.split(','))
            .map(|t| t.trim().parse().map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<_>>()?
    };
    if source_name.is_some() && classes.len() > 1 {
        bail!("--source-name names one source, and Security Lake takes one OCSF class per source: export one --table with it");
    }
    let window = Window::new(
        parse_time(&from).map_err(|e| anyhow::anyhow!("--from: {e}"))?,
        parse_time(&to).map_err(|e| anyhow::anyhow!("--to: {e}"))?,
    )
    .map_err(anyhow::Error::msg)?;
    let lake = config.lake(lake.lake.as_deref())?;
    let target = config.lake(Some(&output))?;
    for class in classes {
        let name = source_name
            .clone()
            .unwrap_or_else(|| format!("kubetrail-{}", class.name.replace('_', "-")));
        let source =
            SecurityLakeSource::new(&name, &region, &account_id).map_err(anyhow::Error::msg)?;
        let files = export(&lake, class, &window, &source, &target).await?;
        let rows: usize = files.iter().map(|f| f.rows).sum();
        println!(
            "{} ({}): {rows} rows in {} file(s) under {}ext/{name}/",
            class.name,
            class.class_uid,
            files.len(),
            target.root()
        );
    }
    Ok(Outcome::Ok)
}
