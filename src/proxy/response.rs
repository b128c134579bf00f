//! The one place guestgate answers a request itself: refusals and denials as a small
//! accessible HTML page for browsers, or JSON `{error, reason, deny_id}` for API calls.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

/// What kind of answer a verdict becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 400: the request is malformed or ambiguous.
    BadRequest,
    /// 414: the target is too long.
    TooLong,
    /// 403: not part of what was shared (or no session on a guest-only host).
    Forbidden,
    /// 403: the session, or every share in it, has ended (expired or revoked).
    AccessEnded,
    /// 403: the guest cookie cannot be read (bad signature, foreign key, two copies).
    SessionInvalid,
    /// 411: a body without a length, for an app that cannot read chunked bodies.
    LengthRequired,
    /// 413: the announced body is larger than guestgate accepts.
    TooLarge,
    /// 421: a guest request to a host that is not guestgate's public host.
    Misdirected,
    /// 501: a transfer coding guestgate does not forward.
    NotImplemented,
    /// 503: share state cannot be confirmed (shared store out of reach): fail closed.
    Unavailable,
}

impl Answer {
    /// From a status code.
    pub fn from_status(status: u16) -> Self {
        match status {
            414 => Self::TooLong,
            403 => Self::Forbidden,
            411 => Self::LengthRequired,
            413 => Self::TooLarge,
            421 => Self::Misdirected,
            501 => Self::NotImplemented,
            503 => Self::Unavailable,
            _ => Self::BadRequest,
        }
    }

    /// The page a denial gets: an ended session or share says so and how to get back in;
    /// an unreadable cookie says how to clear it; anything else is "not shared".
    pub fn for_denial(reason: &str) -> Self {
        match reason {
            "session_expired" | "session_no_shares" | "share_expired" | "share_inactive" => {
                Self::AccessEnded
            }
            "session_malformed"
            | "session_unknown_key"
            | "session_invalid"
            | "session_ambiguous"
            | "session_misnamed" => Self::SessionInvalid,
            _ => Self::Forbidden,
        }
    }

    fn status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::TooLong => 414,
            Self::Forbidden | Self::AccessEnded | Self::SessionInvalid => 403,
            Self::LengthRequired => 411,
            Self::TooLarge => 413,
            Self::Misdirected => 421,
            Self::NotImplemented => 501,
            Self::Unavailable => 503,
        }
    }

    fn error(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::TooLong => "uri_too_long",
            Self::Forbidden | Self::AccessEnded | Self::SessionInvalid => "forbidden",
            Self::LengthRequired => "length_required",
            Self::TooLarge => "content_too_large",
            Self::Misdirected => "misdirected_request",
            Self::NotImplemented => "not_implemented",
            Self::Unavailable => "unavailable",
        }
    }

    fn page(self, no_session: bool) -> (&'static str, &'static str) {
        match self {
            Self::Forbidden if no_session => (
                "Open your invitation link",
                "This address is only for people a case has been shared with. Open the link in the invitation email you received, and enter the code from that email.",
            ),
            Self::Forbidden => (
                "This is not part of what was shared with you",
                "Your access covers one case, at one version, read-only. The page or action you asked for is outside it, so it was not sent on. If you need more access, ask the person who shared the case with you.",
            ),
            Self::AccessEnded => (
                "Your access has ended",
                "The case shared with you is no longer available to you: the share has expired or was withdrawn. To get back in, open the link in your invitation email again and enter the new code it sends you, or ask the person who shared the case to share it again.",
            ),
            Self::SessionInvalid => (
                "Your sign-in could not be read",
                "This browser holds a guest sign-in that is not valid here, so nothing was sent on. Sign out below, then open the link in your invitation email again.",
            ),
            Self::LengthRequired => (
                "That upload could not be sent on",
                "The request did not say how large it is, and this service needs to know. Try again from the page.",
            ),
            Self::TooLarge => (
                "That upload is too large",
                "The request is larger than this service accepts, so it was not sent on.",
            ),
            Self::Misdirected => (
                "Wrong address",
                "Shared cases are opened from the address in your invitation email. Open that link again.",
            ),
            Self::NotImplemented => (
                "That request could not be understood",
                "The request used an encoding this service does not accept, so it was not sent on.",
            ),
            Self::TooLong => (
                "That address is too long",
                "The address you asked for is longer than this service accepts. Go back and follow a link from the shared case instead.",
            ),
            Self::Unavailable => (
                "Temporarily unavailable",
                "We cannot confirm your access right now, so nothing was sent on. Nothing was lost; please try again in a minute.",
            ),
            Self::BadRequest => (
                "That request could not be understood",
                "The address or request was malformed, so it was not sent on. Go back and follow a link from the shared case instead.",
            ),
        }
    }
}

/// Whether the client asked for HTML (a browser navigation).
pub fn wants_html(accept: Option<&[u8]>) -> bool {
    accept.is_some_and(|a| a.windows(9).any(|w| w.eq_ignore_ascii_case(b"text/html")))
}

/// Writes the answer and ends the response. `close` drops the connection afterwards
/// (framing errors and unread bodies must not be read as a next request).
pub async fn send(
    session: &mut Session,
    answer: Answer,
    reason: &str,
    deny_id: &str,
    no_session: bool,
    close: bool,
) -> Result<()> {
    let html = wants_html(
        session
            .req_header()
            .headers
            .get("accept")
            .map(|v| v.as_bytes()),
    );
    let (content_type, body) = if html {
        let (title, text) = answer.page(no_session);
        (
            "text/html; charset=utf-8",
            crate::html::page(
                title,
                &format!(
                    "<h1>{title}</h1><p>{text}</p>\
                     <p>If you contact support, quote this reference: <code>{deny_id}</code></p>",
                    title = crate::html::esc(title),
                    text = crate::html::esc(text),
                    deny_id = crate::html::esc(deny_id),
                ),
            ),
        )
    } else {
        (
            "application/json",
            serde_json::json!({
                "error": answer.error(),
                "reason": reason,
                "deny_id": deny_id,
            })
            .to_string(),
        )
    };
    let mut extra = vec![("x-guestgate-deny-id", deny_id.to_string())];
    if answer == Answer::Unavailable {
        extra.push(("retry-after", "5".to_string()));
    }
    write(session, answer.status(), content_type, body, &extra, close).await
}

/// Writes one of guestgate's own HTML pages, with optional extra headers (`Set-Cookie`).
pub async fn page(
    session: &mut Session,
    status: u16,
    html: String,
    extra: &[(&'static str, String)],
) -> Result<()> {
    write(
        session,
        status,
        "text/html; charset=utf-8",
        html,
        extra,
        false,
    )
    .await
}

/// A 303 redirect (after a form POST), with optional extra headers.
pub async fn redirect(
    session: &mut Session,
    location: &str,
    extra: &[(&'static str, String)],
) -> Result<()> {
    let mut headers = vec![("location", location.to_string())];
    headers.extend(extra.iter().cloned());
    write(
        session,
        303,
        "text/plain; charset=utf-8",
        String::new(),
        &headers,
        false,
    )
    .await
}

async fn write(
    session: &mut Session,
    status: u16,
    content_type: &str,
    body: String,
    extra: &[(&'static str, String)],
    close: bool,
) -> Result<()> {
    let mut h = ResponseHeader::build(status, Some(8 + extra.len()))?;
    h.insert_header("content-type", content_type)?;
    h.insert_header("content-length", body.len().to_string())?;
    h.insert_header("cache-control", "no-store")?;
    h.insert_header("x-content-type-options", "nosniff")?;
    // Guest pages carry the link token in their URL: never leak it through Referer.
    h.insert_header("referrer-policy", "no-referrer")?;
    h.insert_header(
        "content-security-policy",
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    )?;
    for (name, value) in extra {
        h.append_header(*name, value.as_str())?;
    }
    if close {
        h.insert_header("connection", "close")?;
        session.set_keepalive(None);
    }
    session.write_response_header(Box::new(h), false).await?;
    session
        .write_response_body(Some(Bytes::from(body)), true)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_get_html_api_calls_get_json() {
        assert!(wants_html(Some(
            b"text/html,application/xhtml+xml,*/*;q=0.8"
        )));
        assert!(wants_html(Some(b"TEXT/HTML")));
        assert!(!wants_html(Some(b"application/json")));
        assert!(!wants_html(None));
    }

    #[test]
    fn statuses_map_once() {
        assert_eq!(Answer::from_status(414).status(), 414);
        assert_eq!(Answer::from_status(403).status(), 403);
        assert_eq!(Answer::from_status(400).status(), 400);
        assert_eq!(Answer::from_status(503).status(), 503);
        assert_eq!(Answer::from_status(999).status(), 400);
    }
}
