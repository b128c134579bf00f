//! Command-line verbs: `serve`, `policy check|explain`, `session mint`. Each verb is a
//! small function over the library; `main` only parses and dispatches.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};
use clap::{Parser, Subcommand};

use crate::admin::client::{self, AdminClient};
use crate::config::Config;
use crate::policy::{PolicySet, Scope};
use crate::session::{SessionKeys, ShareGrant};
use crate::stamp::unix_now;
use crate::target::CanonicalTarget;

/// guestgate: share one case, at one version, with an outside guest.
#[derive(Debug, Parser)]
#[command(name = "guestgate", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy (and its admin listener).
    Serve {
        /// Config file.
        #[arg(
            long,
            env = "GUESTGATE_CONFIG",
            default_value = "config/guestgate.toml"
        )]
        config: PathBuf,
        /// Validate config, policies and keys, then exit.
        #[arg(long)]
        check: bool,
        /// Take the listening sockets over from a running guestgate (zero-downtime upgrade):
        /// start this, then send SIGQUIT to the old process. Needs the Redis store.
        #[arg(long)]
        upgrade: bool,
    },
    /// Validate and try out policies.
    Policy {
        /// Policy verb.
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Create, list, show and revoke shares (over the admin API).
    Share {
        /// Admin API access.
        #[command(flatten)]
        admin: AdminArgs,
        /// Share verb.
        #[command(subcommand)]
        command: ShareCommand,
    },
    /// The guest directory (over the admin API; needs an `admin` key).
    Guests {
        /// Admin API access.
        #[command(flatten)]
        admin: AdminArgs,
        /// Guests verb.
        #[command(subcommand)]
        command: GuestsCommand,
    },
    /// Exit 0 if an http:// URL answers 200 (container health checks without curl).
    Probe {
        /// e.g. http://127.0.0.1:9190/readyz
        url: String,
    },
    /// Check and search audit files.
    Audit {
        /// Audit verb.
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Admin API keys.
    Admin {
        /// Admin verb.
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Session tokens signed directly with the key file (demos and tests).
    Session {
        /// Session verb.
        #[command(subcommand)]
        command: SessionCommand,
    },
}

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
}

/// `guests` verbs.
#[derive(Debug, Subcommand)]
pub enum GuestsCommand {
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

/// `audit` verbs.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chain of audit files, given oldest first; reports the first break.
    Verify {
        /// Audit files, oldest first.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the events matching every given filter.
    Search {
        /// Audit files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The deny id a guest quoted.
        #[arg(long)]
        deny_id: Option<String>,
        /// A share id.
        #[arg(long)]
        share: Option<String>,
        /// A guest email.
        #[arg(long)]
        email: Option<String>,
    },
}

/// `admin` verbs.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Generate an API key: prints the key (give it to the caller) and the config lines (hash only).
    NewKey {
        /// Key name (the actor in audit events).
        #[arg(long)]
        name: String,
        /// admin or sharer.
        #[arg(long, default_value = "sharer")]
        role: String,
    },
}

/// `policy` verbs.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Compile every policy file of a directory and report all errors.
    Check {
        /// Policy directory (default: the one named in the config file).
        dir: Option<PathBuf>,
        /// Config file naming the policy directory.
        #[arg(
            long,
            env = "GUESTGATE_CONFIG",
            default_value = "config/guestgate.toml"
        )]
        config: PathBuf,
    },
    /// Print the decision for one request and the rule that made it.
    Explain {
        /// HTTP method, e.g. GET.
        method: String,
        /// Request target as sent, e.g. /api/cases/42/versions/3/documents.
        target: String,
        /// The share's case.
        #[arg(long)]
        case: String,
        /// The share's version.
        #[arg(long)]
        version: String,
        /// Profile (default view-only).
        #[arg(long, default_value = "view-only")]
        profile: String,
        /// Policy directory (default: the one named in the config file).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Config file naming the policy directory.
        #[arg(
            long,
            env = "GUESTGATE_CONFIG",
            default_value = "config/guestgate.toml"
        )]
        config: PathBuf,
    },
}

/// `session` verbs.
#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Mint a session cookie value with the configured key (prints the token).
    Mint {
        /// Config file naming the key file.
        #[arg(
            long,
            env = "GUESTGATE_CONFIG",
            default_value = "config/guestgate.toml"
        )]
        config: PathBuf,
        /// Guest email.
        #[arg(long)]
        email: String,
        /// A share as ID:CASE:VERSION[:PROFILE]; repeat for several.
        #[arg(long = "share", required = true)]
        shares: Vec<String>,
        /// Lifetime, e.g. 30m, 8h.
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
}

fn policies_from(dir: Option<&Path>, config: &Path) -> anyhow::Result<PolicySet> {
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => {
            Config::load(config)
                .map_err(|e| anyhow!("{e}"))?
                .policies_dir
        }
    };
    PolicySet::load_dir(&dir).map_err(|e| anyhow!("{e}"))
}

/// `policy check`.
pub fn policy_check(dir: Option<&Path>, config: &Path) -> anyhow::Result<ExitCode> {
    let set = policies_from(dir, config)?;
    for p in set.profiles() {
        println!("{}: {} rule(s) ({})", p.name, p.rules.len(), p.file);
        for r in &p.rules {
            let bound = if r.binds_case || !r.query.require.is_empty() {
                ""
            } else {
                "  [note: not bound to the share's case]"
            };
            println!(
                "  {:<20} {:<12} {}{}",
                r.name,
                r.methods.join(","),
                r.pattern_source,
                bound
            );
        }
    }
    println!("ok");
    Ok(ExitCode::SUCCESS)
}

/// `policy explain`: the same canonicalisation and evaluation the proxy applies.
pub fn policy_explain(
    method: &str,
    target: &str,
    scope: Scope<'_>,
    profile: &str,
    set: &PolicySet,
) -> anyhow::Result<String> {
    let p = set
        .get(profile)
        .ok_or_else(|| anyhow!("no profile named `{profile}`"))?;
    let t = match CanonicalTarget::parse(target.as_bytes(), 65536) {
        Ok(t) => t,
        Err(e) => {
            let reason = crate::reason::Reason::from(e);
            return Ok(format!(
                "decision: reject ({})\nreason:   {}\n",
                reason.answer().map_or(400, |a| a.status()),
                reason.label()
            ));
        }
    };
    if t.has_method_override_key() {
        return Ok("decision: deny\nreason:   method_override\n".into());
    }
    Ok(match p.evaluate(method, &t, scope) {
        Ok(a) => {
            let rule = &p.rules[a.rule];
            let fwd = t.to_target_with_path(a.rewritten_path.as_deref().unwrap_or(&t.path));
            format!(
                "decision: allow\nprofile:  {}\nrule:     {} ({} {})\nforwards: {method} {fwd}\n",
                p.name,
                rule.name,
                rule.methods.join(","),
                rule.pattern_source
            )
        }
        Err(reason) => format!(
            "decision: deny\nprofile:  {}\nreason:   {}\n",
            p.name,
            crate::reason::Reason::from(reason).label()
        ),
    })
}

/// `session mint`.
pub fn session_mint(
    config: &Path,
    email: &str,
    shares: &[String],
    ttl: &str,
) -> anyhow::Result<String> {
    let cfg = Config::load(config).map_err(|e| anyhow!("{e}"))?;
    let keys = SessionKeys::from_config(&cfg.session)?;
    let ttl = humantime::parse_duration(ttl).context("--ttl")?;
    let ttl = ttl.min(cfg.session.max_lifetime).as_secs();
    let mut grants = Vec::new();
    for s in shares {
        let parts: Vec<&str> = s.split(':').collect();
        let (id, case, version, profile) = match parts.as_slice() {
            [i, c, v] => (*i, *c, *v, "view-only"),
            [i, c, v, p] => (*i, *c, *v, *p),
            _ => bail!("--share `{s}`: expected ID:CASE:VERSION[:PROFILE]"),
        };
        grants.push(ShareGrant {
            id: id.into(),
            case: case.into(),
            version: version.into(),
            profile: profile.into(),
            exp: unix_now() + ttl,
        });
    }
    keys.mint(&email.trim().to_ascii_lowercase(), grants, ttl)
        .map_err(|e| anyhow!("{e}"))
}

fn admin_call(
    admin: &AdminArgs,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> anyhow::Result<ExitCode> {
    let client = AdminClient::new(&admin.admin_url, &admin.token)?;
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

fn share_verb(admin: &AdminArgs, command: ShareCommand) -> anyhow::Result<ExitCode> {
    match command {
        ShareCommand::Create {
            email,
            case,
            version,
            profile,
            expires_in,
            no_notify,
            created_by,
        } => {
            let expires_in = expires_in
                .map(|d| humantime::parse_duration(&d).map(|d| d.as_secs()))
                .transpose()
                .context("--expires-in")?;
            let body = serde_json::json!({
                "email": email, "case": case, "version": version, "profile": profile,
                "expires_in": expires_in, "notify": !no_notify, "created_by": created_by,
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
    }
}

fn guests_verb(admin: &AdminArgs, command: GuestsCommand) -> anyhow::Result<ExitCode> {
    match command {
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

/// GET `url` (http only); true on a 200.
fn probe(url: &str) -> bool {
    use std::io::{Read, Write};
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let Ok(mut s) = std::net::TcpStream::connect(host) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(3)));
    if s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

fn read_all(files: &[PathBuf]) -> anyhow::Result<Vec<(String, String)>> {
    files
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .with_context(|| format!("cannot read {}", f.display()))
                .map(|t| (f.display().to_string(), t))
        })
        .collect()
}

/// `admin new-key`: a 256-bit key and the config lines holding only its hash.
pub fn new_key(name: &str, role: &str) -> anyhow::Result<String> {
    if role != "admin" && role != "sharer" {
        bail!("--role must be admin or sharer");
    }
    let key = format!("gg_{}", crate::stamp::random_hex(32));
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(key.as_bytes()));
    Ok(format!(
        "API key (give it to the caller; it is not stored anywhere):\n  {key}\n\nAdd to guestgate.toml:\n[[admin.keys]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{hash}\"\n"
    ))
}

/// Runs a non-serve verb.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Share { admin, command } => share_verb(&admin, command),
        Command::Probe { url } => Ok(if probe(&url) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        }),
        Command::Guests { admin, command } => guests_verb(&admin, command),
        Command::Audit {
            command: AuditCommand::Verify { files },
        } => {
            let texts = read_all(&files)?;
            match crate::audit::verify_files(&texts) {
                Ok(n) => {
                    println!("ok: {n} lines, chain intact");
                    Ok(ExitCode::SUCCESS)
                }
                Err(b) => {
                    println!("{}:{}: {}", b.file, b.line, b.problem);
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Audit {
            command:
                AuditCommand::Search {
                    files,
                    deny_id,
                    share,
                    email,
                },
        } => {
            if deny_id.is_none() && share.is_none() && email.is_none() {
                bail!("give --deny-id, --share or --email");
            }
            let email = email.map(|e| e.trim().to_ascii_lowercase());
            let mut found = 0;
            for (_, text) in read_all(&files)? {
                for event in crate::audit::search(
                    &text,
                    deny_id.as_deref(),
                    share.as_deref(),
                    email.as_deref(),
                ) {
                    println!("{event}");
                    found += 1;
                }
            }
            Ok(if found > 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Admin {
            command: AdminCommand::NewKey { name, role },
        } => {
            print!("{}", new_key(&name, &role)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { .. } => bail!("serve is run by main"),
        Command::Policy {
            command: PolicyCommand::Check { dir, config },
        } => policy_check(dir.as_deref(), &config),
        Command::Policy {
            command:
                PolicyCommand::Explain {
                    method,
                    target,
                    case,
                    version,
                    profile,
                    dir,
                    config,
                },
        } => {
            let set = policies_from(dir.as_deref(), &config)?;
            let scope = Scope {
                case: &case,
                version: &version,
            };
            print!(
                "{}",
                policy_explain(&method, &target, scope, &profile, &set)?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Session {
            command:
                SessionCommand::Mint {
                    config,
                    email,
                    shares,
                    ttl,
                },
        } => {
            println!("{}", session_mint(&config, &email, &shares, &ttl)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explain_prints_decision_rule_and_reason() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let set = PolicySet::load_dir(&dir).unwrap();
        let scope = Scope {
            case: "42",
            version: "3",
        };
        let out = policy_explain(
            "GET",
            "/api/cases/42/versions/3/documents/7",
            scope,
            "view-only",
            &set,
        )
        .unwrap();
        assert!(
            out.contains("decision: allow") && out.contains("rule:     document "),
            "{out}"
        );
        let out = policy_explain(
            "DELETE",
            "/api/cases/42/versions/3/documents/7",
            scope,
            "view-only",
            &set,
        )
        .unwrap();
        assert!(out.contains("reason:   method_not_allowed"), "{out}");
        let out = policy_explain(
            "GET",
            "/api/cases/43/versions/3/documents",
            scope,
            "view-only",
            &set,
        )
        .unwrap();
        assert!(out.contains("reason:   scope_mismatch"), "{out}");
        let out = policy_explain("GET", "/api/cases/42/../43", scope, "view-only", &set).unwrap();
        assert!(
            out.contains("reject (400)") && out.contains("target_dot_segment"),
            "{out}"
        );
        assert!(policy_explain("GET", "/", scope, "nope", &set).is_err());
    }
}
