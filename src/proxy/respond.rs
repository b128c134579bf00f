//! The one place guestgate writes a response itself: a [`Reply`] from the guest routes or
//! a refusal, with the headers every such answer carries. Nothing else in the proxy calls
//! `write_response_header`.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

use crate::reply::Reply;

/// The Content-Security-Policy of guestgate's own pages: no script, styles inline only,
/// forms post to guestgate only, never framed.
const PAGE_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'";

/// Writes `reply` and ends the response; closes the connection when the reply says so.
pub async fn write(session: &mut Session, reply: Reply) -> Result<()> {
    let mut h = ResponseHeader::build(reply.status, Some(8 + reply.headers.len()))?;
    h.insert_header("content-type", reply.content_type)?;
    h.insert_header("content-length", reply.body.len())?;
    if reply.header("cache-control").is_none() {
        h.insert_header("cache-control", "no-store")?;
    }
    h.insert_header("x-content-type-options", "nosniff")?;
    // Guest pages carry the link token in their URL: never leak it through Referer to
    // another origin. `same-origin`, not `no-referrer`: under `no-referrer` a browser
    // posts the page's forms with `Origin: null`.
    h.insert_header("referrer-policy", "same-origin")?;
    h.insert_header("content-security-policy", PAGE_CSP)?;
    for (name, value) in &reply.headers {
        h.append_header(*name, value.as_str())?;
    }
    if reply.close {
        h.insert_header("connection", "close")?;
        session.set_keepalive(None);
    }
    session.write_response_header(Box::new(h), false).await?;
    session
        .write_response_body(Some(Bytes::from(reply.body)), true)
        .await
}
