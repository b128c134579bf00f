//! A response guestgate gives itself, as plain data: status, headers, body, and whether
//! the connection closes after it. Guest pages and refusals return one; the proxy writes
//! it in exactly one place (`proxy/respond.rs`). A leaf.

/// One response guestgate writes itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Headers beyond the ones every reply gets (content type and length, no-store, ...).
    pub headers: Vec<(&'static str, String)>,
    /// `Content-Type` of the body.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
    /// Close the connection after the reply (an unread body must not be taken for the
    /// next request).
    pub close: bool,
}

impl Reply {
    /// An HTML page.
    pub fn html(status: u16, html: String) -> Self {
        Self {
            status,
            headers: Vec::new(),
            content_type: "text/html; charset=utf-8",
            body: html.into_bytes(),
            close: false,
        }
    }

    /// A JSON body.
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            content_type: "application/json",
            body: value.to_string().into_bytes(),
            close: false,
        }
    }

    /// A static asset (the banner's stylesheet, the JWKS), cacheable for a day: it is
    /// the same for everyone.
    pub fn asset(content_type: &'static str, body: &str) -> Self {
        Self {
            status: 200,
            headers: vec![("cache-control", "public, max-age=86400".into())],
            content_type,
            body: body.as_bytes().to_vec(),
            close: false,
        }
    }

    /// A 303 See Other to `location` (after a form POST, so a reload does not re-post).
    pub fn redirect(location: &str) -> Self {
        Self {
            status: 303,
            headers: vec![("location", location.to_string())],
            content_type: "text/plain; charset=utf-8",
            body: Vec::new(),
            close: false,
        }
    }

    /// Adds a header (`Set-Cookie`, `Retry-After`, ...).
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Marks the connection to be closed after this reply.
    pub fn closing(mut self, close: bool) -> Self {
        self.close |= close;
        self
    }

    /// The value of a header this reply sets, if any (for tests and logging).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (for tests).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}
