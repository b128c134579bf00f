//! guestgate's own HTML pages for guests: the code challenge, the cases this browser
//! holds, messages (invalid link, locked, signed out, ...), and the ways back every page
//! ends with. Small, readable, accessible without JavaScript; every value is escaped.

use std::fmt::Write as _;

use crate::html::{esc, page};

/// `g•••@clinic.example`: enough to recognise one's own address, not to harvest it.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}•••@{domain}")
        }
        None => "•••".into(),
    }
}

pub use crate::shares::Access;

/// A form guestgate shows: where it posts and its anti-forgery token.
#[derive(Debug, Clone)]
pub struct Form<'a> {
    /// The action URL.
    pub action: &'a str,
    /// The anti-forgery token.
    pub token: &'a str,
}

/// Where a guest can go from a page that ends their path: the cases still open to this
/// browser, "My shares", signing out, and the link's own page.
#[derive(Debug, Clone, Default)]
pub struct WaysBack {
    /// Cases still open: (label, href).
    pub open: Vec<(String, String)>,
    /// guestgate's "My shares" page.
    pub my_shares: Option<String>,
    /// The sign-out form.
    pub sign_out: Option<(String, String)>,
    /// The challenge page of the link this request was for.
    pub challenge: Option<String>,
}

impl WaysBack {
    /// The HTML of the ways back (nothing when there are none).
    pub fn html(&self) -> String {
        let mut links = String::new();
        for (label, href) in &self.open {
            let _ = write!(
                links,
                "<li><a href=\"{}\">{}</a></li>",
                esc(href),
                esc(label)
            );
        }
        if let Some(href) = &self.challenge {
            let _ = write!(
                links,
                "<li><a href=\"{}\">Back to the code page</a></li>",
                esc(href)
            );
        }
        if let Some(href) = &self.my_shares {
            let _ = write!(links, "<li><a href=\"{}\">My shares</a></li>", esc(href));
        }
        let mut out = String::new();
        if !links.is_empty() {
            let _ = write!(
                out,
                "<nav aria-label=\"Where to go from here\"><h2>Where to go from here</h2><ul>{links}</ul></nav>"
            );
        }
        if let Some((action, token)) = &self.sign_out {
            out.push_str(&sign_out_form(action, token));
        }
        out
    }
}

fn sign_out_form(action: &str, token: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"{}\" value=\"{}\">\
         <button type=\"submit\">Sign out</button></form>",
        esc(action),
        super::forgery::FIELD,
        esc(token)
    )
}

fn hidden_token(token: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
        super::forgery::FIELD,
        esc(token)
    )
}

/// What the challenge page shows.
pub struct Challenge<'a> {
    /// Masked guest email.
    pub masked_email: &'a str,
    /// Case.
    pub case: &'a str,
    /// Version.
    pub version: &'a str,
    /// Who shared it (display name).
    pub shared_by: &'a str,
    /// What the share lets the guest do.
    pub access: &'a Access,
    /// When the share ends, as people read it.
    pub ends: &'a str,
    /// How long a code lives, in minutes.
    pub code_minutes: u64,
    /// The code form.
    pub verify: Form<'a>,
    /// The "send me a new code" form.
    pub resend: Form<'a>,
    /// An error after a failed try.
    pub error: Option<&'a str>,
    /// A notice (new code sent).
    pub notice: Option<&'a str>,
}

/// The code challenge. An error is announced: the title says so, the message is an
/// alert, and the input (focused on load) is described by it and marked invalid.
pub fn challenge(c: &Challenge<'_>) -> String {
    let error = c
        .error
        .map(|e| {
            format!(
                "<p class=\"error\" role=\"alert\" id=\"code-error\">{}</p>",
                esc(e)
            )
        })
        .unwrap_or_default();
    let notice = c
        .notice
        .map(|n| format!("<p class=\"notice\" role=\"status\">{}</p>", esc(n)))
        .unwrap_or_default();
    let described = if c.error.is_some() {
        " aria-describedby=\"code-error code-hint\" aria-invalid=\"true\""
    } else {
        " aria-describedby=\"code-hint\""
    };
    let title = if c.error.is_some() {
        "Error: enter your code"
    } else {
        "Enter your code"
    };
    page(
        title,
        &format!(
            "<h1>Case {case}, version {version}</h1>\
             <p>{shared_by} shared this case with <strong>{email}</strong>.</p>\
             <p><strong>You can:</strong> {can}.<br><strong>You cannot:</strong> {cannot}.</p>\
             <p class=\"muted\">Your access ends {ends}.</p>\
             {error}{notice}\
             <form method=\"post\" action=\"{verify}\">{verify_token}\
             <label for=\"code\">6-digit code</label>\
             <p class=\"muted\" id=\"code-hint\">It is in the email we sent to {email}, and works for {mins} minutes.</p>\
             <input id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" \
             maxlength=\"9\" required autofocus{described}>\
             <br><button type=\"submit\">Open the case</button></form>\
             <form method=\"post\" action=\"{resend}\">{resend_token}\
             <p class=\"muted\">No email, or the code expired?</p>\
             <button type=\"submit\">Send me a new code</button></form>",
            case = esc(c.case),
            version = esc(c.version),
            shared_by = esc(c.shared_by),
            email = esc(c.masked_email),
            can = esc(&c.access.can),
            cannot = esc(&c.access.cannot),
            ends = esc(c.ends),
            mins = c.code_minutes,
            verify = esc(c.verify.action),
            verify_token = hidden_token(c.verify.token),
            resend = esc(c.resend.action),
            resend_token = hidden_token(c.resend.token),
        ),
    )
}

/// A page with a title, a message, and the ways back.
pub fn message(title: &str, text: &str, ways: &WaysBack) -> String {
    page(
        title,
        &format!("<h1>{}</h1><p>{}</p>{}", esc(title), esc(text), ways.html()),
    )
}

/// One row of the shares page.
pub struct HeldShare<'a> {
    /// Case.
    pub case: &'a str,
    /// Version.
    pub version: &'a str,
    /// What the share allows, short.
    pub access: &'a str,
    /// Where to open it.
    pub href: String,
    /// When it ends, as people read it.
    pub ends: String,
}

/// The cases shared with this browser's guest, and signing out.
pub fn shares(email: &str, held: &[HeldShare<'_>], sign_out: &Form<'_>) -> String {
    let rows: String = held
        .iter()
        .map(|h| {
            format!(
                "<tr><td><a href=\"{href}\">Case {case}, version {version}</a></td><td>{access}</td><td>{ends}</td></tr>",
                href = esc(&h.href),
                case = esc(h.case),
                version = esc(h.version),
                access = esc(h.access),
                ends = esc(&h.ends),
            )
        })
        .collect();
    let list = if held.is_empty() {
        "<p>No case is shared with you in this browser right now. To open a shared case, use the link in your invitation email.</p>".to_string()
    } else {
        format!(
            "<table><caption>Cases shared with you</caption><thead><tr><th scope=\"col\">Case</th>\
             <th scope=\"col\">Access</th><th scope=\"col\">Ends</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    };
    let who = if email.is_empty() {
        String::new()
    } else {
        format!("<p class=\"muted\">Signed in as {}</p>", esc(email))
    };
    page(
        "My shares",
        &format!(
            "<h1>My shares</h1>{who}{list}{}",
            sign_out_form(sign_out.action, sign_out.token)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> Access {
        Access {
            can: "read the documents".into(),
            cannot: "change anything".into(),
        }
    }

    #[test]
    fn the_challenge_escapes_everything_labels_the_input_and_announces_errors() {
        let a = access();
        let c = Challenge {
            masked_email: "<script>",
            case: "42\"",
            version: "3",
            shared_by: "Ada <b>",
            access: &a,
            ends: "Tuesday 1 December 2026, 14:05 UTC (in 7 days)",
            code_minutes: 10,
            verify: Form {
                action: "/_guestgate/s/abc/verify",
                token: "t1",
            },
            resend: Form {
                action: "/_guestgate/s/abc/resend",
                token: "t1",
            },
            error: Some("That code is not right. 4 tries left."),
            notice: None,
        };
        let p = challenge(&c);
        assert!(!p.contains("<script>") && !p.contains("Ada <b>"));
        assert!(p.contains("&lt;script&gt;") && p.contains("42&quot;"));
        assert!(p.contains("<label for=\"code\">") && p.contains("id=\"code\""));
        assert!(p.contains("<title>Error: enter your code</title>"));
        assert!(p.contains("role=\"alert\"") && p.contains("aria-invalid=\"true\""));
        assert!(
            p.contains("autocomplete=\"one-time-code\"") && p.contains("inputmode=\"numeric\"")
        );
        assert!(p.contains("name=\"form_token\" value=\"t1\""));
        assert!(p.contains("You can:</strong> read the documents.") && p.contains("in 7 days"));
        let ok = challenge(&Challenge { error: None, ..c });
        assert!(ok.contains("<title>Enter your code</title>") && !ok.contains("aria-invalid"));
        assert_eq!(mask_email("guest@clinic.example"), "g•••@clinic.example");
    }

    #[test]
    fn ways_back_list_the_open_cases_and_sign_out() {
        let w = WaysBack {
            open: vec![("Case 42, version 3".into(), "/cases/42/versions/3".into())],
            my_shares: Some("/_guestgate/guest".into()),
            sign_out: Some(("/_guestgate/logout".into(), "tok".into())),
            challenge: None,
        };
        let p = message("Not shared", "Outside.", &w);
        assert!(p.contains("<a href=\"/cases/42/versions/3\">Case 42, version 3</a>"));
        assert!(p.contains("My shares") && p.contains("Sign out") && p.contains("value=\"tok\""));
        assert!(!message("t", "x", &WaysBack::default()).contains("<nav"));
    }
}
