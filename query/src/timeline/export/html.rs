//! One HTML file a responder can mail or open offline: no request leaves it. The data sits
//! in the page as JSON; a small script draws the lanes and the filterable table.

use serde_json::json;

use super::super::Timeline;
use crate::output::{escape_html as escape, html_head};
use crate::window::rfc3339;

const STYLE: &str = include_str!("report.css");
const SCRIPT: &str = include_str!("report.js");

pub fn render(t: &Timeline) -> String {
    let lines: Vec<serde_json::Value> = t
        .lines
        .iter()
        .map(|e| {
            json!({
                "ms": e.time / 1000,
                "last_ms": e.last_time / 1000,
                "count": e.count,
                "stream": e.stream.name(),
                "summary": e.summary(),
                "relation": e.relation,
                "actor": e.actor,
                "target": e.target,
                "pod": e.pod_ref(),
                "src": e.src(),
                "dst": e.dst(),
                "alerts": e.alert_ids,
                "evidence": e.evidence.to_string(),
            })
        })
        .collect();
    let data = json!({
        "window_from_ms": t.window.from() / 1000,
        "window_to_ms": t.window.to() / 1000,
        "lines": lines,
    });
    // In a <script> element only `</` can end the data early; JSON allows `\u003c` for `<`.
    let data = data.to_string().replace('<', "\\u003c");
    let title = format!("Timeline of {}", t.entity);
    let mut followed = String::new();
    for f in &t.followed {
        followed.push_str(&format!("<li>{}</li>", escape(f)));
    }
    let notes = if t.notes.is_empty() {
        String::new()
    } else {
        let items: Vec<String> = t.notes.iter().map(|n| escape(n)).collect();
        format!("<div class=\"notes\">{}</div>", items.join("<br>"))
    };
    let alerted = t.lines.iter().filter(|e| !e.alert_ids.is_empty()).count();
    format!(
        r#"{head}
<body>
<header>
<h1>{title_html}</h1>
<p class="meta">{from} to {to} (UTC) · {n} lines · {alerted} with alerts</p>
<p class="meta">Following:</p>
<ul class="followed">{followed}</ul>
{notes}
</header>
<div id="error" role="alert"></div>
<main>
<section id="chart" aria-label="timeline by stream"></section>
<div class="controls">
<input type="search" id="filter" placeholder="Filter: text in the summary, pod, address, evidence…" aria-label="filter">
<label><input type="checkbox" id="show-audit" checked> audit</label>
<label><input type="checkbox" id="show-network" checked> network</label>
<label><input type="checkbox" id="show-runtime" checked> runtime</label>
<span id="count"></span>
</div>
<table>
<thead><tr><th>time (UTC)</th><th>stream</th><th>what happened</th><th>pod</th><th>addresses</th><th>evidence (table:source#offset)</th></tr></thead>
<tbody id="rows"></tbody>
</table>
</main>
<footer>Written by kubetrail. Every line names the lake row it comes from: query it with <code>kubetrail sql "SELECT * FROM &lt;table&gt; WHERE _source = '…' AND _offset = …"</code>.</footer>
<script type="application/json" id="timeline-data">{data}</script>
<script>{SCRIPT}</script>
</body>
</html>
"#,
        head = html_head(&title, STYLE, true),
        title_html = escape(&title),
        from = escape(&rfc3339(t.window.from())),
        to = escape(&rfc3339(t.window.to())),
        n = t.lines.len(),
    )
}
