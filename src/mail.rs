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

/// What an invitation says.
#[derive(Debug, Clone)]
pub struct Invitation<'a> {
    /// The guest.
    pub to: &'a str,
    /// Who shared (staff name or email).
    pub shared_by: &'a str,
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
    /// When the share ends (RFC 3339).
    pub share_expires: &'a str,
    /// What the guest can do (the profile description).
    pub access: &'a str,
    /// A re-sent code rather than the first invitation.
    pub resend: bool,
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
        let msg = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
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

/// Plain-text and HTML bodies.
pub fn render(inv: &Invitation<'_>) -> (String, String) {
    let intro = if inv.resend {
        format!(
            "Here is a new code for case {} (version {}).",
            inv.case, inv.version
        )
    } else {
        format!(
            "{} has shared case {}, version {}, with you.",
            inv.shared_by, inv.case, inv.version
        )
    };
    let text = format!(
        "{intro}\n\n\
         Open this link:\n{link}\n\n\
         and enter this code: {code}\n\n\
         The code works once and expires in {mins} minutes. You can ask for a new one on the page.\n\
         Your access ends {exp}.\n\n\
         What you can do: {access}\n\
         What you cannot do: see other cases or other versions, upload, edit or delete documents \
         (unless the person who shared says otherwise), or see anyone else's data.\n\n\
         If you did not expect this email, ignore it: without the code nobody can open the link.\n",
        link = inv.link,
        code = inv.code,
        mins = inv.code_minutes,
        exp = inv.share_expires,
        access = inv.access,
    );
    let html = format!(
        "<!doctype html><html lang=\"en\"><body style=\"font-family:system-ui,sans-serif;max-width:36rem\">\
         <p>{intro}</p>\
         <p><a href=\"{link}\">Open the shared case</a></p>\
         <p>Your code: <strong style=\"font-size:1.4em;letter-spacing:.15em\">{code}</strong></p>\
         <p>The code works once and expires in {mins} minutes. You can ask for a new one on the page. \
         Your access ends {exp}.</p>\
         <p><strong>What you can do:</strong> {access}<br><strong>What you cannot do:</strong> see other cases \
         or other versions, upload, edit or delete documents (unless the person who shared says otherwise).</p>\
         <p style=\"color:#555\">If you did not expect this email, ignore it: without the code nobody can open the link.</p>\
         </body></html>",
        intro = esc(&intro),
        link = esc(inv.link),
        code = esc(inv.code),
        mins = inv.code_minutes,
        exp = esc(inv.share_expires),
        access = esc(inv.access),
    );
    (text, html)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv() -> Invitation<'static> {
        Invitation {
            to: "g@x.test",
            shared_by: "Ada <b>",
            case: "42",
            version: "3",
            link: "https://cases.example/_guestgate/s/abc",
            code: "123456",
            code_minutes: 10,
            share_expires: "2026-12-01T00:00:00Z",
            access: "Read-only access",
            resend: false,
        }
    }

    #[test]
    fn both_bodies_carry_link_code_scope_and_expiry_and_html_is_escaped() {
        let (text, html) = render(&inv());
        for body in [&text, &html] {
            assert!(body.contains("https://cases.example/_guestgate/s/abc"));
            assert!(body.contains("123456"));
            assert!(body.contains("case 42, version 3"));
            assert!(body.contains("10 minutes"));
            assert!(body.contains("2026-12-01T00:00:00Z"));
        }
        assert!(html.contains("Ada &lt;b&gt;"));
        assert!(!html.contains("Ada <b>"));
    }

    #[tokio::test]
    async fn the_file_transport_writes_one_eml_per_message() {
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
        let files: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(files.len(), 2);
    }
}
