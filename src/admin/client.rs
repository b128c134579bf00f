//! The CLI's client for the admin API: one blocking HTTP/1.1 request per call over a
//! plain TCP connection (the admin listener is meant for loopback or a private network).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde_json::Value;

/// Talks to one guestgate admin listener, with an API key for the API (health and
/// metrics need none).
pub struct AdminClient {
    host_port: String,
    token: Option<String>,
    staff: Option<String>,
}

impl AdminClient {
    /// `url` is `http://host:port`; API calls need a key.
    pub fn new(url: &str, token: &str) -> anyhow::Result<Self> {
        if token.is_empty() {
            bail!("no API key: set GUESTGATE_ADMIN_TOKEN or pass --token");
        }
        let (mut client, _) = Self::for_url(url)?;
        client.token = Some(token.to_string());
        Ok(client)
    }

    /// A client without a key for `http://host:port/path`, and the path (`/` if none).
    pub fn for_url(url: &str) -> anyhow::Result<(Self, String)> {
        let Some(rest) = url.strip_prefix("http://") else {
            bail!("admin URL `{url}` must be http://host:port (the admin listener speaks plain HTTP; keep it private)");
        };
        let (host_port, path) = match rest.split_once('/') {
            Some((h, p)) => (h, format!("/{p}")),
            None => (rest, "/".to_string()),
        };
        let client = Self {
            host_port: host_port.to_string(),
            token: None,
            staff: None,
        };
        Ok((client, path))
    }

    /// Names the staff member the key acts for (`X-Guestgate-Staff`).
    /// Refuses a value that is not a staff id the API accepts, so nothing but that id
    /// (no line break, no second header) goes into the request.
    pub fn acting_for(mut self, staff: Option<&str>) -> anyhow::Result<Self> {
        if let Some(s) = staff.filter(|s| !s.is_empty()) {
            // The API's own rule, so the CLI refuses exactly what the API would.
            if super::api::staff_id(s.as_bytes()).is_none() {
                anyhow::bail!(
                    "--staff / GUESTGATE_STAFF: 1 to 254 ASCII letters, digits and @ . _ + - (the app's id of the staff member)"
                );
            }
            self.staff = Some(s.to_string());
        }
        Ok(self)
    }

    /// One call; returns status and JSON (Null for an empty body).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut s = TcpStream::connect(&self.host_port)
            .with_context(|| format!("cannot reach the admin API at {}", self.host_port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let auth = self
            .token
            .as_ref()
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default()
            + &self
                .staff
                .as_ref()
                .map(|s| format!("X-Guestgate-Staff: {s}\r\n"))
                .unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.host_port,
            body.len()
        );
        s.write_all(req.as_bytes())?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf)?;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(n) = resp.parse(&buf).context("malformed admin response")?
        else {
            bail!("truncated admin response");
        };
        let status = resp
            .code
            .ok_or_else(|| anyhow!("admin response without status"))?;
        let text = &buf[n..];
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(text).context("admin response is not JSON")?
        };
        Ok((status, json))
    }
}

/// Percent-encodes a path segment (emails carry `@`, `+`).
pub fn segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
