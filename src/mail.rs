//! Email to guests, through `lettre`: the invitation (and re-sent code) message in
//! plain text and HTML, sent by SMTP (STARTTLS, TLS or plain, with auth and timeouts)
//! or written as one `.eml` file per message into an outbox directory (the default, so
//! a fresh checkout works offline).

use std::path::PathBuf;
use std::time::Duration;

use crate::html::esc;
use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// What an invitation (or a re-sent code) says.
#[derive(Debug, Clone)]
pub struct Invitation<'a> {
    /// The guest.
    pub to: &'a str,
    /// Who shared (display name).
    pub shared_by: &'a str,
    /// How to reach them (an email address), when known.
    pub contact: Option<&'a str>,
    /// Case id.
    pub case: &'a str,
    /// Version id.
    pub version: &'a str,
    /// The link to open.
    pub link: &'a str,
    /// The 6-digit code.
    pub code: &'a str,
    /// Minutes the code lives.
    pub code_minutes: u64,
    /// When the share ends, as people read it.
    pub share_ends: &'a str,
    /// What the guest can do.
    pub can: &'a str,
    /// What the guest cannot do.
    pub cannot: &'a str,
    /// A re-sent code rather than the first invitation.
    pub resend: bool,
}

/// One paragraph of an email, written once for both the text and the HTML part.
enum Para {
    /// Plain text.
    Text(String),
    /// Text, then a link: in HTML a link with this text; in plain text the URL on its own line.
    Link(String, String),
    /// A label and the code, set large in HTML.
    Code(String),
    /// "label: text" lines, the labels bold in HTML.
    Pairs(Vec<(&'static str, String)>),
}

/// Mail failures; the share stays, and the guest can ask for a new code from the link.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// Message could not be built (bad address).
    #[error("cannot build message: {0}")]
    Build(String),
    /// Transport failed.
    #[error("cannot send: {0}")]
    Send(String),
}

/// The mail seam.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends an invitation or a new code.
    async fn send(&self, inv: &Invitation<'_>) -> Result<(), MailError>;
}

/// How SMTP connections are secured (`mail.smtp_security`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Implicit TLS (port 465).
    Tls,
    /// STARTTLS, required (port 587).
    StartTls,
    /// Plain text: only for a local relay or a test listener.
    None,
}

/// Transport settings.
#[derive(Debug, Clone)]
pub enum MailTransport {
    /// `.eml` files in a directory.
    File(PathBuf),
    /// An SMTP server.
    Smtp {
        /// Host name.
        host: String,
        /// Port.
        port: u16,
        /// TLS mode.
        security: SmtpSecurity,
        /// Optional username and password.
        credentials: Option<(String, String)>,
        /// Per-command timeout.
        timeout: Duration,
    },
}

impl MailTransport {
    /// Where mail goes, for `serve --check` (never the password).
    pub fn describe(&self) -> String {
        match self {
            MailTransport::File(dir) => format!("files in {}", dir.display()),
            MailTransport::Smtp {
                host,
                port,
                security,
                credentials,
                ..
            } => {
                let security = match security {
                    SmtpSecurity::Tls => "implicit TLS",
                    SmtpSecurity::StartTls => "STARTTLS",
                    SmtpSecurity::None => "no TLS",
                };
                let login = credentials
                    .as_ref()
                    .map_or(String::new(), |(user, _)| format!(", as {user}"));
                format!("smtp {host}:{port} ({security}{login})")
            }
        }
    }
}

enum Transport {
    File(AsyncFileTransport<Tokio1Executor>),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

/// The lettre-backed mailer.
pub struct LettreMailer {
    from: Mailbox,
    transport: Transport,
}

impl LettreMailer {
    /// Builds the transport; nothing is connected until the first send.
    pub fn new(from: &str, transport: &MailTransport) -> Result<Self, MailError> {
        let from: Mailbox = from
            .parse()
            .map_err(|e| MailError::Build(format!("from: {e}")))?;
        let transport = match transport {
            MailTransport::File(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| MailError::Build(format!("outbox {}: {e}", dir.display())))?;
                Transport::File(AsyncFileTransport::new(dir))
            }
            MailTransport::Smtp {
                host,
                port,
                security,
                credentials,
                timeout,
            } => {
                let builder = match security {
                    SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host),
                    SmtpSecurity::StartTls => {
                        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                    }
                    SmtpSecurity::None => Ok(
                        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str()),
                    ),
                }
                .map_err(|e| MailError::Build(e.to_string()))?;
                let mut builder = builder.port(*port).timeout(Some(*timeout));
                if let Some((user, pass)) = credentials {
                    builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
                }
                Transport::Smtp(builder.build())
            }
        };
        Ok(Self { from, transport })
    }
}

#[async_trait]
impl Mailer for LettreMailer {
    async fn send(&self, inv: &Invitation<'_>) -> Result<(), MailError> {
        let to: Mailbox = inv
            .to
            .parse()
            .map_err(|e| MailError::Build(format!("to: {e}")))?;
        let (text, html) = render(inv);
        let subject = if inv.resend {
            format!(
                "Your new code for case {} (version {})",
                inv.case, inv.version
            )
        } else {
            format!(
                "{} shared case {} (version {}) with you",
                inv.shared_by, inv.case, inv.version
            )
        };
        // A Message-ID in the sender's domain (the host name of a container means nothing).
        let domain = self.from.email.domain().to_string();
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .message_id(Some(format!("<{}@{domain}>", crate::stamp::random_hex(16))))
            .date_now()
            .subject(subject);
        if let Some(contact) = inv.contact.and_then(|c| c.parse::<Mailbox>().ok()) {
            builder = builder.reply_to(contact);
        }
        let msg = builder
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| MailError::Build(e.to_string()))?;
        match &self.transport {
            Transport::File(t) => t
                .send(msg)
                .await
                .map(|_| ())
                .map_err(|e| MailError::Send(e.to_string())),
            Transport::Smtp(t) => t
                .send(msg)
                .await
                .map(|_| ())
                .map_err(|e| MailError::Send(e.to_string())),
        }
    }
}

/// The paragraphs of an invitation: who shared what, the link and the code, how long
/// they work, what the guest can and cannot do, how to reach the sharer.
fn paragraphs(inv: &Invitation<'_>) -> Vec<Para> {
    let intro = if inv.resend {
        format!(
            "Here is a new code for case {}, version {}, which {} shared with you.",
            inv.case, inv.version, inv.shared_by
        )
    } else {
        format!(
            "{} has shared case {}, version {}, with you.",
            inv.shared_by, inv.case, inv.version
        )
    };
    let contact = match inv.contact {
        Some(c) => format!(
            "Questions about this share? Write to {} at {c}.",
            inv.shared_by
        ),
        None => format!(
            "Questions about this share? Ask {}, who shared it.",
            inv.shared_by
        ),
    };
    vec![
        Para::Text(intro),
        Para::Link("Open the shared case:".into(), inv.link.to_string()),
        Para::Code(inv.code.to_string()),
        Para::Text(format!(
            "The code works once, for {} minutes; the page can send you a new one. Your access ends {}.",
            inv.code_minutes, inv.share_ends
        )),
        Para::Pairs(vec![
            ("You can", format!("{}.", inv.can)),
            ("You cannot", format!("{}.", inv.cannot)),
        ]),
        Para::Text(contact),
        Para::Text(
            "If you did not expect this email, ignore it: without the code nobody can open the link."
                .into(),
        ),
    ]
}

/// Plain-text and HTML bodies: the same paragraphs, so both parts say the same things.
pub fn render(inv: &Invitation<'_>) -> (String, String) {
    let mut text = String::new();
    let mut html = String::from(
        "<!doctype html><html lang=\"en\"><body style=\"font-family:system-ui,sans-serif;max-width:36rem\">",
    );
    for p in paragraphs(inv) {
        match p {
            Para::Text(t) => {
                text.push_str(&format!("{t}\n\n"));
                html.push_str(&format!("<p>{}</p>", esc(&t)));
            }
            Para::Link(label, url) => {
                text.push_str(&format!("{label}\n{url}\n\n"));
                html.push_str(&format!(
                    "<p>{} <a href=\"{}\">{}</a></p>",
                    esc(&label),
                    esc(&url),
                    esc(&url)
                ));
            }
            Para::Code(code) => {
                text.push_str(&format!("Then enter this code: {code}\n\n"));
                html.push_str(&format!(
                    "<p>Then enter this code: <strong style=\"font-size:1.4em;letter-spacing:.15em\">{}</strong></p>",
                    esc(&code)
                ));
            }
            Para::Pairs(pairs) => {
                html.push_str("<p>");
                for (i, (k, v)) in pairs.iter().enumerate() {
                    text.push_str(&format!("{k}: {v}\n"));
                    if i > 0 {
                        html.push_str("<br>");
                    }
                    html.push_str(&format!("<strong>{k}:</strong> {}", esc(v)));
                }
                text.push('\n');
                html.push_str("</p>");
            }
        }
    }
    html.push_str("</body></html>");
    (text.trim_end().to_string() + "\n", html)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv() -> Invitation<'static> {
        Invitation {
            to: "g@x.test",
            shared_by: "Ada <b>",
            contact: Some("ada@firm.example"),
            case: "42",
            version: "3",
            link: "https://cases.example/_guestgate/s/abc",
            code: "123456",
            code_minutes: 10,
            share_ends: "Tuesday 1 December 2026, 14:05 UTC (in 7 days)",
            can: "read the documents of this case version",
            cannot: "change, upload or delete anything, or see other cases or other versions",
            resend: false,
        }
    }

    /// The text of an HTML part, tags removed and entities decoded, words only.
    fn words(html: &str) -> String {
        let mut out = String::new();
        let mut in_tag = false;
        for c in html.chars() {
            match c {
                '<' => {
                    in_tag = true;
                    out.push(' ');
                }
                '>' => in_tag = false,
                c if !in_tag => out.push(c),
                _ => {}
            }
        }
        out.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn both_parts_say_the_same_things_and_html_is_escaped() {
        let (text, html) = render(&inv());
        let text_words = text.split_whitespace().collect::<Vec<_>>().join(" ");
        // every sentence of the text part is in the HTML part, and the other way round
        for sentence in text_words.split(". ").filter(|s| s.len() > 3) {
            assert!(
                words(&html).contains(sentence.trim_end_matches('.')),
                "HTML lacks {sentence:?}"
            );
        }
        for sentence in words(&html).split(". ").filter(|s| s.len() > 3) {
            assert!(
                text_words.contains(sentence.trim_end_matches('.')),
                "text lacks {sentence:?}"
            );
        }
        for needle in [
            "https://cases.example/_guestgate/s/abc",
            "123456",
            "case 42, version 3",
            "10 minutes",
            "in 7 days",
            "You can: read the documents",
            "You cannot: change, upload or delete anything",
            "ada@firm.example",
        ] {
            assert!(text.contains(needle), "text lacks {needle:?}:\n{text}");
        }
        assert!(!text.contains("unless"), "no hedging: {text}");
        assert!(html.contains("Ada &lt;b&gt;") && !html.contains("Ada <b>"));
    }

    #[tokio::test]
    async fn the_file_transport_writes_one_eml_per_message_with_date_and_message_id() {
        let d = tempfile::tempdir().unwrap();
        let m = LettreMailer::new(
            "guestgate <no-reply@x.test>",
            &MailTransport::File(d.path().into()),
        )
        .unwrap();
        m.send(&inv()).await.unwrap();
        m.send(&Invitation {
            resend: true,
            ..inv()
        })
        .await
        .unwrap();
        let files: Vec<_> = std::fs::read_dir(d.path()).unwrap().flatten().collect();
        assert_eq!(files.len(), 2);
        for f in files {
            let eml = std::fs::read_to_string(f.path()).unwrap();
            assert!(eml.contains("\r\nDate: "), "{eml}");
            assert!(
                eml.contains("\r\nMessage-ID: <") && eml.contains("@x.test>"),
                "{eml}"
            );
            assert!(eml.contains("\r\nReply-To: ada@firm.example"), "{eml}");
        }
    }
}
