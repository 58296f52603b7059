//! The options every command that listens shares: the limits of its HTTP
//! listeners and the tokens of the API.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use argon_engine::server::{ApiAuth, Token};
use argon_eventsource::listener::Limits;
use clap::Args;

/// Deadlines and connection cap of every HTTP listener of a command.
#[derive(Args, Clone, Debug)]
pub struct ListenArgs {
    /// A request's headers must arrive within this of their first byte.
    #[arg(long, default_value = "10s", value_parser = argon_crds::time::parse_duration)]
    header_timeout: Duration,
    /// A request's body must arrive within this of its headers.
    #[arg(long, default_value = "30s", value_parser = argon_crds::time::parse_duration)]
    body_timeout: Duration,
    /// A kept-alive connection waiting for its next request is closed after this.
    #[arg(long, default_value = "60s", value_parser = argon_crds::time::parse_duration)]
    idle_timeout: Duration,
    /// Connections one listener serves at once; beyond it they get 503.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
}

impl ListenArgs {
    /// The listener limits these options give.
    pub fn limits(&self) -> Limits {
        Limits {
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections as usize,
        }
    }
}

/// Raises the file descriptor limit (see `argon_eventsource::listener`);
/// a failure is only a warning.
pub fn raise_fd_limit() {
    match argon_eventsource::listener::raise_fd_limit() {
        Ok(limit) => tracing::debug!(soft = limit.soft, reserve = limit.reserve, "file descriptor limit"),
        Err(e) => tracing::warn!(error = %e, "cannot read the file descriptor limit"),
    }
}

/// The tokens the API server requires.
#[derive(Args, Clone, Debug)]
pub struct ServerAuthArgs {
    /// Read-write Bearer token of the API (prefer --auth-token-file or the
    /// environment: a flag shows in `ps`).
    #[arg(long, env = "ARGON_AUTH_TOKEN", hide_env_values = true)]
    auth_token: Option<String>,
    /// File holding the read-write token.
    #[arg(long, env = "ARGON_AUTH_TOKEN_FILE")]
    auth_token_file: Option<PathBuf>,
    /// Read-only Bearer token: may list and get, never change.
    #[arg(long, env = "ARGON_READ_TOKEN", hide_env_values = true)]
    read_token: Option<String>,
    /// File holding the read-only token.
    #[arg(long, env = "ARGON_READ_TOKEN_FILE")]
    read_token_file: Option<PathBuf>,
    /// Serve the API without a token on a non-loopback address: anyone who
    /// reaches it may run workflows on this host.
    #[arg(long)]
    insecure_no_auth: bool,
}

impl ServerAuthArgs {
    /// The tokens, read from their files; refuses an API on a non-loopback
    /// `addr` without a token unless `--insecure-no-auth`.
    pub fn resolve(&self, addr: SocketAddr) -> Result<ApiAuth> {
        let write = token(
            self.auth_token.as_deref(),
            self.auth_token_file.as_deref(),
            "--auth-token",
        )?;
        let read = token(
            self.read_token.as_deref(),
            self.read_token_file.as_deref(),
            "--read-token",
        )?;
        if read.is_some() && write.is_none() {
            bail!(
                "a read-only token (--read-token) needs a read-write one too (--auth-token-file or ARGON_AUTH_TOKEN): \
                 without it the API would let anyone change anything"
            );
        }
        if write.is_none() && !addr.ip().is_loopback() && !self.insecure_no_auth {
            bail!(
                "refusing to serve the API on {addr} without a token: anyone who can reach it could run \
                 workflows on this host. Give a token (--auth-token-file FILE or ARGON_AUTH_TOKEN), listen on \
                 127.0.0.1, or pass --insecure-no-auth to accept the risk"
            );
        }
        if write.is_none() && !addr.ip().is_loopback() {
            tracing::warn!(%addr, "the API serves without a token on a non-loopback address (--insecure-no-auth)");
        }
        Ok(ApiAuth { write, read })
    }
}

/// The token a client sends.
#[derive(Args, Clone, Debug)]
pub struct ClientAuthArgs {
    /// Bearer token for the Argon server (prefer --auth-token-file or the
    /// environment: a flag shows in `ps`).
    #[arg(long, env = "ARGON_AUTH_TOKEN", global = true, hide_env_values = true)]
    auth_token: Option<String>,
    /// File holding the Bearer token.
    #[arg(long, env = "ARGON_AUTH_TOKEN_FILE", global = true)]
    auth_token_file: Option<PathBuf>,
}

impl ClientAuthArgs {
    /// The token to send, if any.
    pub fn token(&self) -> Result<Option<String>> {
        token_text(
            self.auth_token.as_deref(),
            self.auth_token_file.as_deref(),
            "--auth-token",
        )
    }
}

/// A token from its flag (or variable) or its file; both is an error.
fn token(value: Option<&str>, file: Option<&Path>, flag: &str) -> Result<Option<Token>> {
    Ok(token_text(value, file, flag)?.as_deref().and_then(Token::new))
}

/// The text of a token from its flag (or variable) or its file, trimmed.
fn token_text(value: Option<&str>, file: Option<&Path>, flag: &str) -> Result<Option<String>> {
    let text = match (value, file) {
        (Some(_), Some(_)) => bail!("give {flag} or {flag}-file, not both"),
        (Some(text), None) => text.to_string(),
        (None, Some(file)) => std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the token file {} ({flag}-file)", file.display()))?,
        (None, None) => return Ok(None),
    };
    let text = text.trim();
    if text.is_empty() {
        match file {
            Some(file) => bail!("the token file {} ({flag}-file) is empty", file.display()),
            None => bail!("{flag} is empty"),
        }
    }
    Ok(Some(text.to_string()))
}
