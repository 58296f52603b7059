//! `argon cp`: a workflow's output artifacts downloaded as they are stored.

use anyhow::{Context, Result};
use argon_client::HttpClient;
use argon_crds::workflow::Workflow;

/// Which artifacts `argon cp` copies.
pub(crate) struct CpFilter {
    pub(crate) node_id: Option<String>,
    pub(crate) template_name: Option<String>,
    pub(crate) artifact_name: Option<String>,
}

/// Downloads the output artifacts of `wf` that `filter` lets through under
/// `dir` (`argon cp`); returns how many.
pub(crate) async fn copy_artifacts(
    c: &HttpClient,
    wf: &Workflow,
    filter: &CpFilter,
    dir: &std::path::Path,
    pattern: &str,
) -> Result<usize> {
    let namespace = wf.metadata.namespace.clone().unwrap_or_default();
    let name = wf.metadata.name.clone().unwrap_or_default();
    let mut copied = 0;
    let Some(status) = &wf.status else { return Ok(0) };
    for (id, node) in &status.nodes {
        let template = node
            .template_name
            .clone()
            .or_else(|| node.template_ref.as_ref().map(|r| r.template.clone()))
            .unwrap_or_default();
        if filter.node_id.as_ref().is_some_and(|n| n != id)
            || filter.template_name.as_ref().is_some_and(|t| *t != template)
        {
            continue;
        }
        let Some(outputs) = &node.outputs else { continue };
        for a in &outputs.artifacts {
            let Some(key) = a.location.s3.as_ref().and_then(|s| s.key.clone()) else {
                continue;
            };
            if filter.artifact_name.as_ref().is_some_and(|n| *n != a.name) || a.deleted == Some(true) {
                continue;
            }
            let sub = pattern
                .replace("{namespace}", &namespace)
                .replace("{workflowName}", &name)
                .replace("{nodeId}", id)
                .replace("{templateName}", &template)
                .replace("{artifactName}", &a.name);
            let target_dir = dir.join(sub);
            tokio::fs::create_dir_all(&target_dir)
                .await
                .with_context(|| format!("cannot create {}", target_dir.display()))?;
            let file_name = key.rsplit('/').next().unwrap_or(&a.name).to_string();
            let target = target_dir.join(&file_name);
            let resp = c.artifact(&namespace, &name, id, &a.name, None).await?;
            if resp.headers().contains_key("x-argon-artifact-directory") {
                let listing = resp.text().await.context("reading the artifact's file list")?;
                for rel in listing.lines().filter(|l| !l.is_empty()) {
                    let resp = c.artifact(&namespace, &name, id, &a.name, Some(rel)).await?;
                    save_body(resp, &target.join(rel)).await?;
                }
            } else {
                save_body(resp, &target).await?;
            }
            eprintln!("Created {}", target.display());
            copied += 1;
        }
    }
    Ok(copied)
}

/// Writes a response's body to `path`, chunk by chunk.
async fn save_body(mut resp: reqwest::Response, path: &std::path::Path) -> Result<()> {
    use tokio::io::AsyncWriteExt;
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    let mut f = tokio::fs::File::create(path)
        .await
        .with_context(|| format!("cannot create {}", path.display()))?;
    while let Some(chunk) = resp.chunk().await.context("downloading the artifact")? {
        f.write_all(&chunk).await?;
    }
    f.flush().await?;
    Ok(())
}
