//! What the proxy reads from a pingora request, once: the decision's facts, the client's
//! address, whether HTTP/2 frames carry a body, the cookies, and the form body of a guest
//! page. Everything downstream works on these plain values.

use std::net::IpAddr;

use pingora::http::RequestHeader;
use pingora::proxy::Session;

use crate::client_addr::TrustedProxies;
use crate::decision::RequestFacts;
use crate::framing::{self, FramingError};
use crate::guest::MAX_FORM;
use crate::reason::Reason;
use crate::refusal::{self, Refusal};

/// The client behind the connection: the peer, or the forwarded address behind a trusted
/// load balancer.
pub fn client(session: &Session, trusted: &TrustedProxies) -> Option<IpAddr> {
    let peer = session.client_addr().and_then(|a| a.as_inet())?.ip();
    let xff = session.req_header().headers.get_all("x-forwarded-for");
    Some(trusted.client(peer, xff.iter().map(|v| v.as_bytes())))
}

/// Values of every `Cookie` header.
pub fn cookies(req: &RequestHeader) -> Vec<&[u8]> {
    req.headers
        .get_all("cookie")
        .iter()
        .map(|v| v.as_bytes())
        .collect()
}

/// Whether the client asked for HTML.
pub fn wants_html(session: &Session) -> bool {
    refusal::wants_html(
        session
            .req_header()
            .headers
            .get("accept")
            .map(|v| v.as_bytes()),
    )
}

/// The decision's view of the request.
pub fn facts<'a>(
    session: &'a Session,
    raw_head: &'a [u8],
    frames_carry_body: bool,
) -> RequestFacts<'a> {
    let req = session.req_header();
    RequestFacts {
        raw_head,
        method: req.method.as_str(),
        cookies: cookies(req),
        header_names: req.headers.keys().map(|k| k.as_str()).collect(),
        http2: req.version == http::Version::HTTP_2,
        authority: req.uri.authority().map(|a| a.as_str().as_bytes()),
        frames_carry_body,
    }
}

/// HTTP/2 only: whether DATA frames with bytes follow the HEADERS frame. On HTTP/2 a
/// body is known from the frames, not the headers. A bodiless method whose HEADERS did
/// not end the stream is read ahead until the stream ends or bytes arrive, so an empty
/// DATA frame that ends the stream is no body, and any byte is one.
pub async fn frames_carry_body(session: &mut Session) -> bool {
    if session.req_header().version != http::Version::HTTP_2
        || session.as_downstream_mut().is_body_empty()
    {
        return false;
    }
    if !framing::is_bodiless(session.req_header().method.as_str()) {
        return true;
    }
    loop {
        match session.read_request_body().await {
            Ok(None) => return false,
            Ok(Some(chunk)) if chunk.is_empty() => continue,
            _ => return true,
        }
    }
}

/// The framing checks a guest page gets (every request does): a malformed head, or a
/// body on a bodiless method, is refused before any route runs.
pub async fn guest_framing(session: &mut Session, max_content_length: u64) -> Result<(), Refusal> {
    let frames_carry_body = frames_carry_body(session).await;
    let http2 = session.req_header().version == http::Version::HTTP_2;
    let raw_head = session.as_downstream().to_h1_raw();
    let outcome = framing::inspect(&raw_head, http2, max_content_length).and_then(|head| {
        let body = head.body.is_some() || frames_carry_body;
        if body && framing::is_bodiless(session.req_header().method.as_str()) {
            return Err(FramingError::BodyOnBodilessMethod);
        }
        Ok(())
    });
    outcome.map_err(|e| {
        let reason = Reason::from(e);
        let answer = reason.answer().unwrap_or(crate::reason::Answer::BadRequest);
        Refusal {
            answer,
            reason,
            close: true,
        }
    })
}

/// The body of a guest page POST, read once; `None` when it is larger than a form can
/// be or cannot be read. GET pages have none.
pub async fn read_form(session: &mut Session) -> Option<Vec<u8>> {
    if session.req_header().method != http::Method::POST {
        return Some(Vec::new());
    }
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_FORM {
                    return None;
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Some(body),
            Err(_) => return None,
        }
    }
}
