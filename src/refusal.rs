//! The one place a refusal becomes a response: a small accessible HTML page for browsers,
//! or JSON `{error, reason, deny_id}` for API calls, with the status the reason's answer
//! carries and the connection closed when the request cannot be trusted to end where it
//! says. Pure: the proxy only writes the [`Reply`].

use crate::guest::pages::WaysBack;
use crate::html::{esc, page};
use crate::reason::{Answer, Reason};
use crate::reply::Reply;

/// A refused request: how it is answered, why, and whether the connection closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// Status and page.
    pub answer: Answer,
    /// The fixed reason (audit, metrics, JSON).
    pub reason: Reason,
    /// Close the connection after answering.
    pub close: bool,
}

/// Whether the client asked for HTML (a browser navigation).
pub fn wants_html(accept: Option<&[u8]>) -> bool {
    accept.is_some_and(|a| a.windows(9).any(|w| w.eq_ignore_ascii_case(b"text/html")))
}

/// Title and text of the page a refusal gets.
fn words(answer: Answer) -> (&'static str, &'static str) {
    match answer {
        Answer::NoSession => (
            "Open your invitation link",
            "This address is only for people a case has been shared with. Open the link in the invitation email you received, and enter the code from that email.",
        ),
        Answer::Forbidden => (
            "This is not part of what was shared with you",
            "Your access covers one case, at one version, read-only. The page or action you asked for is outside it, so it was not sent on. If you need more access, ask the person who shared the case with you.",
        ),
        Answer::AccessEnded => (
            "Your access has ended",
            "The case shared with you is no longer available to you: the share has expired or was withdrawn. To get back in, open the link in your invitation email again and enter the new code it sends you, or ask the person who shared the case to share it again.",
        ),
        Answer::SessionInvalid => (
            "Your sign-in could not be read",
            "This browser holds a guest sign-in that is not valid here, so nothing was sent on. Sign out below, then open the link in your invitation email again.",
        ),
        Answer::LengthRequired => (
            "That upload could not be sent on",
            "The request did not say how large it is, and this service needs to know. Try again from the page.",
        ),
        Answer::TooLarge => (
            "That upload is too large",
            "The request is larger than this service accepts, so it was not sent on.",
        ),
        Answer::Misdirected => (
            "Wrong address",
            "Shared cases are opened from the address in your invitation email. Open that link again.",
        ),
        Answer::NotImplemented => (
            "That request could not be understood",
            "The request used an encoding this service does not accept, so it was not sent on.",
        ),
        Answer::TooLong => (
            "That address is too long",
            "The address you asked for is longer than this service accepts. Go back and follow a link from the shared case instead.",
        ),
        Answer::Unavailable => (
            "Temporarily unavailable",
            "We cannot confirm your access right now, so nothing was sent on. Nothing was lost; please try again in a minute.",
        ),
        Answer::BadRequest => (
            "That request could not be understood",
            "The address or request was malformed, so it was not sent on. Go back and follow a link from the shared case instead.",
        ),
    }
}

/// What a refusal page knows about the guest: where they can go from here, and which
/// shares of theirs have ended.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Links and forms onward.
    pub ways: WaysBack,
    /// The shares of the session that have ended ("case 42, version 3").
    pub ended: Vec<String>,
}

impl Refusal {
    /// The response: HTML when the client asked for it, JSON otherwise; the deny id in a
    /// header and in the body so a guest can quote it. A page never ends the guest's path:
    /// it names what ended and offers the ways back.
    pub fn reply(&self, html: bool, deny_id: &str, ctx: &Context) -> Reply {
        let status = self.answer.status();
        let mut reply = if html {
            let (title, text) = words(self.answer);
            let text = match self.answer {
                Answer::AccessEnded if !ctx.ended.is_empty() => format!(
                    "Your access to {} has ended: the share expired or was withdrawn. To get back in, open the link in your invitation email again and enter the new code it sends you, or ask the person who shared the case to share it again.",
                    ctx.ended.join(" and ")
                ),
                _ => text.to_string(),
            };
            Reply::html(
                status,
                page(
                    title,
                    &format!(
                        "<h1>{}</h1><p>{}</p>\
                         <p>If you contact support, quote this reference: <code>{}</code></p>{}",
                        esc(title),
                        esc(&text),
                        esc(deny_id),
                        ctx.ways.html()
                    ),
                ),
            )
        } else {
            Reply::json(
                status,
                &serde_json::json!({
                    "error": self.answer.error(),
                    "reason": self.reason.label(),
                    "deny_id": deny_id,
                }),
            )
        }
        .with_header("x-guestgate-deny-id", deny_id)
        .closing(self.close);
        if self.answer == Answer::Unavailable {
            reply = reply.with_header("retry-after", "5");
        }
        reply
    }
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
        let r = Refusal {
            answer: Answer::Forbidden,
            reason: Reason::ScopeMismatch,
            close: false,
        };
        let none = Context::default();
        let json = r.reply(false, "d1", &none);
        assert_eq!((json.status, json.content_type), (403, "application/json"));
        assert_eq!(
            json.text(),
            r#"{"deny_id":"d1","error":"forbidden","reason":"scope_mismatch"}"#
        );
        let html = r.reply(true, "d<1>", &none);
        assert!(
            html.text().contains("not part of what was shared")
                && html.text().contains("d&lt;1&gt;")
        );
        assert_eq!(html.header("x-guestgate-deny-id"), Some("d<1>"));
        let unavailable = Refusal {
            answer: Answer::Unavailable,
            reason: Reason::StoreStale,
            close: true,
        }
        .reply(false, "d2", &none);
        assert_eq!(unavailable.header("retry-after"), Some("5"));
        assert!(unavailable.close);
        let ended = Refusal {
            answer: Answer::AccessEnded,
            reason: Reason::ShareInactive,
            close: false,
        }
        .reply(
            true,
            "d3",
            &Context {
                ways: WaysBack {
                    my_shares: Some("/_guestgate/guest".into()),
                    ..WaysBack::default()
                },
                ended: vec!["case 42, version 3".into()],
            },
        )
        .text();
        assert!(
            ended.contains("Your access to case 42, version 3 has ended"),
            "{ended}"
        );
        assert!(ended.contains("My shares"), "{ended}");
    }
}
