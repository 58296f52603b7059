//! How the workflow verbs print: Argo's `get` layout (a summary and the
//! tree of nodes, the artifacts with their locations) and its `list` table.

use std::collections::BTreeMap;

use argon_crds::workflow::{NodePhase, NodeStatus, NodeType, Workflow};

fn symbol(n: &NodeStatus) -> &'static str {
    match n.phase {
        Some(NodePhase::Succeeded) => "✔",
        Some(NodePhase::Failed) => "✖",
        Some(NodePhase::Error) => "⚠",
        Some(NodePhase::Skipped) | Some(NodePhase::Omitted) => "○",
        Some(NodePhase::Running) if n.type_ == Some(NodeType::Suspend) => "ǁ",
        Some(NodePhase::Running) => "●",
        Some(NodePhase::Pending) | None => "◷",
    }
}

pub(crate) fn human(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{}s", s / 60, s % 60)
    } else if s < 86400 {
        format!("{}h{}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}d{}h", s / 86400, (s % 86400) / 3600)
    }
}

pub(crate) fn span(start: Option<chrono::DateTime<chrono::Utc>>, end: Option<chrono::DateTime<chrono::Utc>>) -> String {
    match start {
        Some(s) => human(end.unwrap_or_else(chrono::Utc::now) - s),
        None => String::new(),
    }
}

/// The summary of `argon get`: name, phase, times, parameters and outputs.
pub(crate) fn render_summary(wf: &Workflow) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let status = wf.status.clone().unwrap_or_default();
    let start = status.started_at.as_ref().map(argon_engine::time::to_chrono);
    let end = status.finished_at.as_ref().map(argon_engine::time::to_chrono);
    let row = |out: &mut String, k: &str, v: String| {
        let _ = writeln!(out, "{:<20} {v}", format!("{k}:"));
    };
    row(&mut out, "Name", wf.metadata.name.clone().unwrap_or_default());
    row(&mut out, "Namespace", wf.metadata.namespace.clone().unwrap_or_default());
    row(
        &mut out,
        "Status",
        status
            .phase
            .map(|p| format!("{p:?}"))
            .unwrap_or_else(|| "Pending".into()),
    );
    if let Some(m) = &status.message {
        row(&mut out, "Message", m.clone());
    }
    if let Some(t) = &wf.metadata.creation_timestamp {
        row(&mut out, "Created", argon_engine::time::to_chrono(t).to_rfc3339());
    }
    if let Some(s) = start {
        row(&mut out, "Started", s.to_rfc3339());
    }
    if let Some(e) = end {
        row(&mut out, "Finished", e.to_rfc3339());
    }
    if start.is_some() {
        row(&mut out, "Duration", span(start, end));
    }
    if let Some(p) = &status.progress {
        row(&mut out, "Progress", p.clone());
    }
    let params = &wf.spec.arguments.parameters;
    if !params.is_empty() {
        out.push_str("Parameters:\n");
        for p in params {
            let _ = writeln!(
                out,
                "  {:<18} {}",
                format!("{}:", p.name),
                p.value_or_default().unwrap_or("")
            );
        }
    }
    if let Some(o) = &status.outputs {
        out.push_str("Outputs:\n");
        for p in &o.parameters {
            let _ = writeln!(
                out,
                "  {:<18} {}",
                format!("{}:", p.name),
                p.value_or_default().unwrap_or("")
            );
        }
    }
    out
}

/// The workflow as `argo get` shows it: a summary and the tree of its nodes.
pub(crate) fn render_workflow(wf: &Workflow, wide: bool) -> String {
    let mut out = render_summary(wf);
    let status = wf.status.clone().unwrap_or_default();
    let root = wf.metadata.name.clone().unwrap_or_default();
    let mut rows: Vec<[String; 5]> = Vec::new();
    if status.nodes.contains_key(&root) {
        tree(&status.nodes, &root, "", "", &mut rows);
    }
    let exit = format!("{root}.onExit");
    let exit_id = status.nodes.values().find(|n| n.name == exit).map(|n| n.id.clone());
    if let Some(id) = exit_id {
        tree(&status.nodes, &id, "", "", &mut rows);
    }
    if rows.is_empty() {
        return out;
    }
    out.push('\n');
    let header = [
        "STEP".to_string(),
        "TEMPLATE".into(),
        "PODNAME".into(),
        "DURATION".into(),
        "MESSAGE".into(),
    ];
    let shown = |r: &[String; 5]| -> Vec<String> {
        r.iter()
            .enumerate()
            .filter(|(i, _)| *i != 2 || wide)
            .map(|(_, c)| c.clone())
            .collect()
    };
    table(&shown(&header), rows.iter().map(shown), &mut out);
    artifacts_table(&status.nodes, &mut out);
    out
}

/// The output artifacts of the nodes with their locations, for `argon get`.
fn artifacts_table(nodes: &BTreeMap<String, NodeStatus>, out: &mut String) {
    let mut rows: Vec<[String; 3]> = Vec::new();
    for n in nodes.values() {
        let Some(o) = &n.outputs else { continue };
        for a in &o.artifacts {
            let Some(s3) = &a.location.s3 else { continue };
            let key = s3.key.clone().unwrap_or_default();
            let mut location = match (&s3.bucket, &s3.endpoint) {
                (Some(b), Some(e)) => format!("s3://{b}/{key} ({e})"),
                (Some(b), None) => format!("s3://{b}/{key}"),
                _ => format!("local:{key}"),
            };
            if a.deleted == Some(true) {
                location.push_str(" [deleted]");
            }
            rows.push([
                n.display_name.clone().unwrap_or_else(|| n.name.clone()),
                a.name.clone(),
                location,
            ]);
        }
    }
    if rows.is_empty() {
        return;
    }
    rows.sort();
    let header = ["STEP".to_string(), "ARTIFACT".into(), "LOCATION".into()];
    out.push('\n');
    table(&header, rows.iter().map(|r| r.to_vec()), out);
}

/// `header` and `rows` as columns padded to their widest cell, two spaces
/// apart; the last column is not padded.
fn table(header: &[String], rows: impl Iterator<Item = Vec<String>>, out: &mut String) {
    let rows: Vec<Vec<String>> = std::iter::once(header.to_vec()).chain(rows).collect();
    let mut widths = vec![0; header.len()];
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for r in &rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < r.len() {
                line.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// What the tree looks like without times: to tell when it changed.
pub(crate) fn render_shape(wf: &Workflow) -> String {
    let status = wf.status.clone().unwrap_or_default();
    let mut s = format!("{:?}", status.phase);
    for n in status.nodes.values() {
        s.push_str(&format!("{}{:?}{:?}", n.id, n.phase, n.message));
    }
    s
}

fn tree(nodes: &BTreeMap<String, NodeStatus>, id: &str, prefix: &str, child_prefix: &str, rows: &mut Vec<[String; 5]>) {
    let Some(n) = nodes.get(id) else { return };
    let children: Vec<&String> = n.children.iter().collect();
    let template = n
        .template_ref
        .as_ref()
        .map(|r| format!("{}/{}", r.name, r.template))
        .or_else(|| n.template_name.clone())
        .unwrap_or_default();
    let duration = if n.type_ == Some(NodeType::Pod) || n.type_ == Some(NodeType::Suspend) {
        span(
            n.started_at.as_ref().map(argon_engine::time::to_chrono),
            n.finished_at.as_ref().map(argon_engine::time::to_chrono),
        )
    } else {
        String::new()
    };
    let pod = if n.type_ == Some(NodeType::Pod) {
        n.id.clone()
    } else {
        String::new()
    };
    rows.push([
        format!(
            "{prefix}{} {}",
            symbol(n),
            n.display_name.clone().unwrap_or_else(|| n.name.clone())
        ),
        template,
        pod,
        duration,
        n.message.clone().unwrap_or_default(),
    ]);
    let mut visible: Vec<&String> = children.iter().copied().filter(|c| nodes.contains_key(*c)).collect();
    let groups_only = !visible.is_empty()
        && visible
            .iter()
            .all(|c| nodes.get(*c).is_some_and(|x| x.type_ == Some(NodeType::StepGroup)));
    if groups_only {
        // Steps: the steps of every group, in order, as this node's children (as `argo get` shows them).
        visible = visible
            .iter()
            .filter_map(|g| nodes.get(*g))
            .flat_map(|g| g.children.iter())
            .filter(|c| nodes.contains_key(*c))
            .collect();
    }
    for (i, c) in visible.iter().enumerate() {
        let last = i + 1 == visible.len();
        let (p, cp) = if last {
            (format!("{child_prefix}└─"), format!("{child_prefix}  "))
        } else {
            (format!("{child_prefix}├─"), format!("{child_prefix}│ "))
        };
        tree(nodes, c, &p, &cp, rows);
    }
}

/// The rows of `argon list`, under a header line when `header`.
pub(crate) fn render_list(list: &[Workflow], wide: bool, header: bool) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if header {
        let _ = writeln!(
            out,
            "{:<36} {:<10} {:<8} {:<9} {}",
            "NAME",
            "STATUS",
            "AGE",
            "DURATION",
            if wide { "NAMESPACE  MESSAGE" } else { "MESSAGE" }
        );
    }
    let now = chrono::Utc::now();
    for w in list {
        let s = w.status.clone().unwrap_or_default();
        let age = w
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| human(now - argon_engine::time::to_chrono(t)))
            .unwrap_or_default();
        let duration = span(
            s.started_at.as_ref().map(argon_engine::time::to_chrono),
            s.finished_at.as_ref().map(argon_engine::time::to_chrono),
        );
        let mut msg = s.message.clone().unwrap_or_default();
        if wide {
            msg = format!("{:<10} {msg}", w.metadata.namespace.clone().unwrap_or_default());
        }
        let _ = writeln!(
            out,
            "{:<36} {:<10} {:<8} {:<9} {}",
            w.metadata.name.clone().unwrap_or_default(),
            s.phase.map(|p| format!("{p:?}")).unwrap_or_else(|| "Pending".into()),
            age,
            duration,
            msg
        )
        .map(|_| ());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::table;

    #[test]
    fn a_table_pads_every_column_but_the_last_to_its_widest_cell() {
        let mut out = String::new();
        let header = ["STEP".to_string(), "ARTIFACT".into(), "LOCATION".into()];
        let rows = [
            vec!["generate".to_string(), "hello".into(), "s3://b/k".into()],
            vec!["é".to_string(), "a-long-artifact".into(), "".into()],
        ];
        table(&header, rows.into_iter(), &mut out);
        assert_eq!(
            out,
            "STEP      ARTIFACT         LOCATION\n\
             generate  hello            s3://b/k\n\
             é         a-long-artifact\n"
        );
    }
}
