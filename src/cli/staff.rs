//! `share` and `guests`: the staff verbs, each one call to the admin API.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::admin::client::{self, AdminClient};

/// Where the admin API is and which key to use.
#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// Admin API base URL.
    #[arg(
        long,
        env = "GUESTGATE_ADMIN_URL",
        default_value = "http://127.0.0.1:9190",
        global = true
    )]
    pub admin_url: String,
    /// API key (prefer the environment variable over the command line).
    #[arg(
        long,
        env = "GUESTGATE_ADMIN_TOKEN",
        default_value = "",
        hide_env_values = true,
        global = true
    )]
    pub token: String,
    /// The staff member a key that acts for staff works for (`X-Guestgate-Staff`).
    #[arg(long, env = "GUESTGATE_STAFF", global = true)]
    pub staff: Option<String>,
}

/// `share` verbs.
#[derive(Debug, Subcommand)]
pub enum ShareCommand {
    /// Share a case version with a guest; prints the link (the code goes only to the guest).
    Create {
        /// Guest email.
        #[arg(long)]
        email: String,
        /// Case id.
        #[arg(long)]
        case: String,
        /// Version id.
        #[arg(long)]
        version: String,
        /// Profile (default view-only).
        #[arg(long)]
        profile: Option<String>,
        /// Lifetime, e.g. 7d, 48h.
        #[arg(long)]
        expires_in: Option<String>,
        /// Do not email the guest (staff will send the link; the guest asks for a code on the page).
        #[arg(long)]
        no_notify: bool,
        /// Who is sharing (shown to the guest).
        #[arg(long)]
        created_by: Option<String>,
        /// How the guest reaches the sharer: an email address (shown to the guest, and the
        /// invitation's Reply-To).
        #[arg(long)]
        contact: Option<String>,
    },
    /// List shares.
    List {
        /// Only this case.
        #[arg(long)]
        case: Option<String>,
        /// Only this version.
        #[arg(long)]
        version: Option<String>,
        /// Only this guest.
        #[arg(long)]
        email: Option<String>,
        /// Only this status (pending, active, revoked, expired).
        #[arg(long)]
        status: Option<String>,
    },
    /// Show one share.
    Show {
        /// Share id.
        id: String,
    },
    /// Revoke one share (effective on the next request).
    Revoke {
        /// Share id.
        id: String,
    },
    /// Review stale access: usable shares not used for a while, or never accepted.
    Stale {
        /// How long unused, e.g. 30d.
        #[arg(long)]
        unused_for: String,
        /// Revoke every share listed.
        #[arg(long)]
        revoke: bool,
    },
}

/// `guests` verbs.
#[derive(Debug, Subcommand)]
pub enum GuestsCommand {
    /// Create a guest account (invited until their first verified code).
    Create {
        /// Email.
        #[arg(long)]
        email: String,
        /// First name.
        #[arg(long)]
        first_name: String,
        /// Last name.
        #[arg(long)]
        last_name: String,
    },
    /// Every guest with share counts and last access.
    List,
    /// The cases shared with one guest.
    Shares {
        /// Guest email.
        email: String,
    },
    /// Revoke every share of one guest.
    Revoke {
        /// Guest email.
        email: String,
    },
}

/// One admin API call; prints the JSON answer, or the error and reason.
fn admin_call(
    admin: &AdminArgs,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> anyhow::Result<ExitCode> {
    let client =
        AdminClient::new(&admin.admin_url, &admin.token)?.acting_for(admin.staff.as_deref())?;
    let (status, json) = client.call(method, path, body)?;
    if status >= 400 {
        eprintln!(
            "guestgate: {status} {}: {}",
            json["error"].as_str().unwrap_or("error"),
            json["reason"].as_str().unwrap_or("")
        );
        return Ok(ExitCode::from(1));
    }
    if !json.is_null() {
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        println!("ok");
    }
    Ok(ExitCode::SUCCESS)
}

/// `share …`.
pub fn share(admin: &AdminArgs, command: ShareCommand) -> anyhow::Result<ExitCode> {
    match command {
        ShareCommand::Create {
            email,
            case,
            version,
            profile,
            expires_in,
            no_notify,
            created_by,
            contact,
        } => {
            let expires_in = expires_in
                .map(|d| humantime::parse_duration(&d).map(|d| d.as_secs()))
                .transpose()
                .context("--expires-in")?;
            let body = serde_json::json!({
                "email": email, "case": case, "version": version, "profile": profile,
                "expires_in": expires_in, "notify": !no_notify, "created_by": created_by,
                "contact": contact,
            });
            admin_call(admin, "POST", "/admin/v1/shares", Some(&body))
        }
        ShareCommand::List {
            case,
            version,
            email,
            status,
        } => {
            let query: Vec<String> = [
                ("case", case),
                ("version", version),
                ("email", email),
                ("status", status),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| format!("{k}={}", client::segment(&v))))
            .collect();
            let path = if query.is_empty() {
                "/admin/v1/shares".to_string()
            } else {
                format!("/admin/v1/shares?{}", query.join("&"))
            };
            admin_call(admin, "GET", &path, None)
        }
        ShareCommand::Show { id } => admin_call(
            admin,
            "GET",
            &format!("/admin/v1/shares/{}", client::segment(&id)),
            None,
        ),
        ShareCommand::Revoke { id } => admin_call(
            admin,
            "DELETE",
            &format!("/admin/v1/shares/{}", client::segment(&id)),
            None,
        ),
        ShareCommand::Stale { unused_for, revoke } => {
            if revoke {
                let body = serde_json::json!({ "unused_for": unused_for });
                admin_call(admin, "POST", "/admin/v1/shares/stale/revoke", Some(&body))
            } else {
                let path = format!(
                    "/admin/v1/shares/stale?unused_for={}",
                    client::segment(&unused_for)
                );
                admin_call(admin, "GET", &path, None)
            }
        }
    }
}

/// `guests …`.
pub fn guests(admin: &AdminArgs, command: GuestsCommand) -> anyhow::Result<ExitCode> {
    match command {
        GuestsCommand::Create {
            email,
            first_name,
            last_name,
        } => {
            let body = serde_json::json!({
                "email": email, "first_name": first_name, "last_name": last_name,
            });
            admin_call(admin, "POST", "/admin/v1/guests", Some(&body))
        }
        GuestsCommand::List => admin_call(admin, "GET", "/admin/v1/guests", None),
        GuestsCommand::Shares { email } => admin_call(
            admin,
            "GET",
            &format!("/admin/v1/guests/{}/shares", client::segment(&email)),
            None,
        ),
        GuestsCommand::Revoke { email } => admin_call(
            admin,
            "DELETE",
            &format!("/admin/v1/guests/{}", client::segment(&email)),
            None,
        ),
    }
}
