//! `policy check` and `policy explain`: policy files, tried without a running proxy.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::anyhow;
use clap::Subcommand;

use crate::config::Config;
use crate::policy::{PolicySet, Scope};
use crate::target::CanonicalTarget;

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

/// Runs a `policy` verb.
pub fn run(command: PolicyCommand) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::Check { dir, config } => policy_check(dir.as_deref(), &config),
        PolicyCommand::Explain {
            method,
            target,
            case,
            version,
            profile,
            dir,
            config,
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
