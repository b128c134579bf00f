//! `policy check`, `policy explain` and `policy test`: policy files tried without a running
//! proxy. `explain` and `test` decide through the proxy's own `Gate::decide`, built from
//! the real configuration (`decision::trial`), so they cannot disagree with it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use clap::Subcommand;

use crate::config::Config;
use crate::decision::table;
use crate::decision::trial::{Outcome, ShareState, Trial, TrialGate, TrialShare};
use crate::policy::lint::{self, Level};
use crate::policy::PolicySet;

/// `policy` verbs.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Compile every policy file of a directory, report all errors, and lint the rules
    /// that compile but leak.
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
        /// Fail on warnings too.
        #[arg(long)]
        strict: bool,
    },
    /// Print what the proxy would do with one request, and why.
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
        /// The share's state: active, revoked, expired or pending.
        #[arg(long, default_value = "active")]
        state: String,
        /// A header line, `Name: value` (repeat for several).
        #[arg(long = "header")]
        headers: Vec<String>,
        /// The request carries no guest session.
        #[arg(long)]
        no_session: bool,
        /// Exit 1 unless the decision is this (allow, pass, deny, reject).
        #[arg(long)]
        expect: Option<String>,
        /// Policy directory (default: the one named in the config file).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Config file: its limits, mode, hosts and policy directory (guestgate's defaults
        /// when the file does not exist).
        #[arg(
            long,
            env = "GUESTGATE_CONFIG",
            default_value = "config/guestgate.toml"
        )]
        config: PathBuf,
    },
    /// Run policy test tables (default: the `tests/*.toml` of the policy directory).
    Test {
        /// Table files.
        files: Vec<PathBuf>,
        /// Policy directory (default: the one named in the config file).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Config file: its limits, mode, hosts and policy directory.
        #[arg(
            long,
            env = "GUESTGATE_CONFIG",
            default_value = "config/guestgate.toml"
        )]
        config: PathBuf,
        /// Fail when a rule of a tested profile is allowed by no case.
        #[arg(long)]
        strict: bool,
    },
}

/// The config, when the file exists (a missing default file means guestgate's defaults).
fn load_config(config: &Path) -> anyhow::Result<Option<Config>> {
    if !config.exists() {
        return Ok(None);
    }
    Config::load(config).map(Some).map_err(|e| anyhow!("{e}"))
}

fn policies(dir: Option<&Path>, config: Option<&Config>) -> anyhow::Result<PolicySet> {
    let dir = match (dir, config) {
        (Some(d), _) => d.to_path_buf(),
        (None, Some(c)) => c.policies_dir.clone(),
        (None, None) => bail!("give the policy directory, or a config file that names it"),
    };
    PolicySet::load_dir(&dir).map_err(|e| anyhow!("{e}"))
}

fn gate(dir: Option<&Path>, config: &Path) -> anyhow::Result<TrialGate> {
    let cfg = load_config(config)?;
    let set = policies(dir, cfg.as_ref())?;
    Ok(TrialGate::new(
        cfg.as_ref()
            .map(Config::decision_settings)
            .unwrap_or_default(),
        set,
    ))
}

/// `policy check`: errors, then the linter's findings.
pub fn policy_check(dir: Option<&Path>, config: &Path, strict: bool) -> anyhow::Result<ExitCode> {
    let cfg = match dir {
        Some(_) => None,
        None => load_config(config)?,
    };
    let set = policies(dir, cfg.as_ref())?;
    for p in set.profiles() {
        println!("{}: {} rule(s) ({})", p.name, p.rules.len(), p.file);
        for r in &p.rules {
            println!(
                "  {:<20} {:<12} {}",
                r.name,
                r.methods.join(","),
                r.pattern_source
            );
        }
    }
    let findings = lint::lint(&set);
    for f in &findings {
        println!("{f}");
    }
    let warnings = findings
        .iter()
        .filter(|f| f.level == Level::Warning)
        .count();
    let notes = findings.len() - warnings;
    println!("ok: compiled; {warnings} warning(s), {notes} note(s)");
    Ok(if strict && warnings > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The report `policy explain` prints.
pub fn describe(trial: &Trial, profile: &str, o: &Outcome) -> String {
    let mut out = match o.status {
        0 => format!("decision: {}\n", o.decision),
        s => format!("decision: {} ({s})\n", o.decision),
    };
    if trial.share.is_some() {
        out.push_str(&format!("profile:  {profile}\n"));
    }
    match (&o.rule, &o.forwards) {
        (Some(rule), Some(fwd)) => out.push_str(&format!(
            "rule:     {rule}\nforwards: {} {fwd}\n",
            trial.method
        )),
        (None, Some(fwd)) => out.push_str(&format!(
            "reason:   {}\nforwards: {} {fwd} (not a guest request)\n",
            o.reason, trial.method
        )),
        _ => {
            out.push_str(&format!("reason:   {}\n", o.reason));
            if let Some(d) = &o.detail {
                out.push_str(&format!("why:      {d}\n"));
            }
        }
    }
    out
}

fn state(s: &str) -> anyhow::Result<ShareState> {
    Ok(match s {
        "active" => ShareState::Active,
        "revoked" => ShareState::Revoked,
        "expired" => ShareState::Expired,
        "pending" => ShareState::Pending,
        other => bail!("--state `{other}`: active, revoked, expired or pending"),
    })
}

/// `policy test`.
pub fn policy_test(
    files: &[PathBuf],
    dir: Option<&Path>,
    config: &Path,
    strict: bool,
) -> anyhow::Result<ExitCode> {
    let cfg = load_config(config)?;
    let set = policies(dir, cfg.as_ref())?;
    let files: Vec<PathBuf> = if files.is_empty() {
        let tests = match (dir, &cfg) {
            (Some(d), _) => d.join("tests"),
            (None, Some(c)) => c.policies_dir.join("tests"),
            (None, None) => bail!("give table files, or a policy directory with tests/"),
        };
        let mut found: Vec<PathBuf> = std::fs::read_dir(&tests)
            .map_err(|e| anyhow!("{}: {e}", tests.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        found.sort();
        found
    } else {
        files.to_vec()
    };
    let cases = table::load(&files).map_err(|errors| {
        anyhow!(
            "{}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    let gate = TrialGate::new(
        cfg.as_ref()
            .map(Config::decision_settings)
            .unwrap_or_default(),
        set,
    );
    let (failures, coverage) = table::run(&gate, &cases);
    for f in &failures {
        println!("FAIL {f}");
    }
    let missing = coverage.missing_rules(&gate);
    for (profile, rule) in &missing {
        println!("not covered: no case allows rule `{rule}` of profile `{profile}`");
    }
    println!(
        "{} case(s) in {} file(s): {} passed, {} failed; refusals covered: {}",
        cases.len(),
        files.len(),
        cases.len() - failures.len(),
        failures.len(),
        coverage
            .refusals
            .iter()
            .copied()
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(if !failures.is_empty() || (strict && !missing.is_empty()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Runs a `policy` verb.
pub fn run(command: PolicyCommand) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::Check {
            dir,
            config,
            strict,
        } => policy_check(dir.as_deref(), &config, strict),
        PolicyCommand::Explain {
            method,
            target,
            case,
            version,
            profile,
            state: share_state,
            headers,
            no_session,
            expect,
            dir,
            config,
        } => {
            let gate = gate(dir.as_deref(), &config)?;
            if !no_session && gate.policies().set.get(&profile).is_none() {
                bail!("no profile named `{profile}`");
            }
            let share_state = state(&share_state)?;
            for h in &headers {
                crate::decision::trial::check_header_line(h)
                    .map_err(|e| anyhow!("--header: {e}"))?;
            }
            let trial = Trial {
                method,
                target,
                headers,
                share: (!no_session).then(|| TrialShare {
                    case,
                    version,
                    profile: profile.clone(),
                    state: share_state,
                }),
            };
            let outcome = gate.decide(&trial);
            print!("{}", describe(&trial, &profile, &outcome));
            Ok(match expect {
                Some(want) if want != outcome.decision => {
                    eprintln!("expected {want}, got {}", outcome.decision);
                    ExitCode::from(1)
                }
                _ => ExitCode::SUCCESS,
            })
        }
        PolicyCommand::Test {
            files,
            dir,
            config,
            strict,
        } => policy_test(&files, dir.as_deref(), &config, strict),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explain(method: &str, target: &str, headers: &[&str]) -> String {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let gate = TrialGate::new(
            crate::decision::Settings::default(),
            PolicySet::load_dir(&dir).unwrap(),
        );
        let trial = Trial {
            method: method.into(),
            target: target.into(),
            headers: headers.iter().map(ToString::to_string).collect(),
            share: Some(TrialShare {
                case: "42".into(),
                version: "3".into(),
                profile: "view-only".into(),
                state: ShareState::Active,
            }),
        };
        describe(&trial, "view-only", &gate.decide(&trial))
    }

    #[test]
    fn explain_prints_decision_rule_and_why() {
        let out = explain("GET", "/api/cases/42/versions/3/documents/7", &[]);
        assert!(
            out.contains("decision: allow") && out.contains("rule:     document\n"),
            "{out}"
        );
        assert!(
            out.contains("forwards: GET /api/cases/42/versions/3/documents/7"),
            "{out}"
        );
        let out = explain("DELETE", "/api/cases/42/versions/3/documents/7", &[]);
        assert!(out.contains("reason:   method_not_allowed"), "{out}");
        assert!(
            out.contains(
                "why:      profile `view-only`, rule `document`: allows GET, HEAD, not DELETE"
            ),
            "{out}"
        );
        let out = explain("GET", "/api/cases/43/versions/3/documents", &[]);
        assert!(
            out.contains("the path names case 43, the share is for case 42"),
            "{out}"
        );
        let out = explain("GET", "/api/cases/42/../43", &[]);
        assert!(
            out.contains("reject (400)") && out.contains("target_dot_segment"),
            "{out}"
        );
        // Headers count, as they do in the proxy.
        let out = explain(
            "GET",
            "/api/cases/42/versions/3/documents",
            &["X-HTTP-Method-Override: DELETE"],
        );
        assert!(out.contains("reason:   method_override"), "{out}");
        // Limits are the configured ones: the proxy's 4096 by default, not 65536.
        let long = format!("/api/cases/42/versions/3/documents/{}", "a".repeat(5000));
        assert!(explain("GET", &long, &[]).contains("reject (414)"));
    }
}
