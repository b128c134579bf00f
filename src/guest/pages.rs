//! guestgate's own HTML pages for guests: the code challenge, messages (invalid link,
//! locked, signed out, ...) and the list of shares this browser holds. Small, readable,
//! accessible without JavaScript; every value is escaped.

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

/// What the challenge page shows.
pub struct Challenge<'a> {
    /// Masked guest email.
    pub masked_email: &'a str,
    /// Case.
    pub case: &'a str,
    /// Version.
    pub version: &'a str,
    /// What the share allows, in words ("viewing only", or the profile's description).
    pub access: &'a str,
    /// Form action for the code.
    pub verify_action: &'a str,
    /// Form action for a new code.
    pub resend_action: &'a str,
    /// An error after a failed try.
    pub error: Option<&'a str>,
    /// A notice (new code sent).
    pub notice: Option<&'a str>,
}

/// The code challenge.
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
        " aria-describedby=\"code-error\" aria-invalid=\"true\""
    } else {
        ""
    };
    page(
        "Enter your code",
        &format!(
            "<h1>Case {case}, version {version}</h1>\
             <p>This case was shared with <strong>{email}</strong> for <strong>{access}</strong>. \
             To open it, enter the 6-digit code from the email we sent to that address.</p>\
             {error}{notice}\
             <form method=\"post\" action=\"{verify}\">\
             <label for=\"code\">6-digit code</label>\
             <input id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" \
             maxlength=\"9\" required autofocus{described}>\
             <br><button type=\"submit\">Open the case</button></form>\
             <form method=\"post\" action=\"{resend}\">\
             <p class=\"muted\">No email, or the code expired?</p>\
             <button type=\"submit\">Send me a new code</button></form>",
            case = esc(c.case),
            version = esc(c.version),
            email = esc(c.masked_email),
            access = esc(c.access),
            verify = esc(c.verify_action),
            resend = esc(c.resend_action),
        ),
    )
}

/// A page with a title and a message.
pub fn message(title: &str, text: &str) -> String {
    page(
        title,
        &format!("<h1>{}</h1><p>{}</p>", esc(title), esc(text)),
    )
}

/// One row of the shares page.
pub struct HeldShare<'a> {
    /// Case.
    pub case: &'a str,
    /// Version.
    pub version: &'a str,
    /// Profile name.
    pub profile: &'a str,
    /// Where to open it.
    pub href: String,
    /// Expiry (RFC 3339).
    pub expires: String,
}

/// The shares this browser holds.
pub fn shares(email: &str, held: &[HeldShare<'_>], logout_action: &str) -> String {
    let rows: String = held
        .iter()
        .map(|h| {
            format!(
                "<tr><td><a href=\"{href}\">Case {case}, version {version}</a></td><td>{profile}</td><td>until {exp}</td></tr>",
                href = esc(&h.href),
                case = esc(h.case),
                version = esc(h.version),
                profile = esc(h.profile),
                exp = esc(&h.expires),
            )
        })
        .collect();
    let list = if held.is_empty() {
        "<p>No case is shared with you in this browser right now.</p>".to_string()
    } else {
        format!("<table><thead><tr><th>Shared with you</th><th>Access</th><th>Expires</th></tr></thead><tbody>{rows}</tbody></table>")
    };
    page(
        "Cases shared with you",
        &format!(
            "<h1>Cases shared with you</h1><p class=\"muted\">Signed in as {}</p>{list}\
             <form method=\"post\" action=\"{}\"><button type=\"submit\">Sign out</button></form>",
            esc(email),
            esc(logout_action)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_everything_and_label_the_input() {
        let p = challenge(&Challenge {
            masked_email: "<script>",
            case: "42\"",
            version: "3",
            access: "viewing only",
            verify_action: "/_guestgate/s/abc/verify",
            resend_action: "/_guestgate/s/abc/resend",
            error: Some("That code is not right. 4 tries left."),
            notice: None,
        });
        assert!(!p.contains("<script>"));
        assert!(p.contains("&lt;script&gt;") && p.contains("42&quot;"));
        assert!(p.contains("<label for=\"code\">") && p.contains("id=\"code\""));
        assert!(p.contains("role=\"alert\"") && p.contains("aria-invalid=\"true\""));
        assert!(p.contains("viewing only"));
        assert_eq!(mask_email("guest@clinic.example"), "g•••@clinic.example");
    }
}
