//! Live policies: the compiled policy set and the header rules derived from it, swapped
//! atomically on reload (SIGHUP or `POST /admin/v1/reload`). A request sees either the
//! old set or the new one, never a mix; an invalid new set is refused and the old one
//! stays in force, with the error reported to the caller, the log and a metric.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::HeaderName;

use crate::header_names::OwnedHeaders;
use crate::metrics;
use crate::policy::PolicySet;
use crate::toml_source::SourceErrors;

/// One consistent generation of policies.
pub struct Loaded {
    /// Compiled profiles.
    pub set: PolicySet,
    /// The headers guestgate owns under them (every header a profile sets, plus the
    /// configured extras) and its cookie.
    pub owned: OwnedHeaders,
}

/// The policies in force.
pub struct LivePolicies {
    dir: PathBuf,
    extra_owned: Vec<HeaderName>,
    cookie: String,
    current: ArcSwap<Loaded>,
}

impl LivePolicies {
    fn build(&self, set: PolicySet) -> Loaded {
        Self::assemble(set, &self.extra_owned, &self.cookie)
    }

    fn assemble(set: PolicySet, extra_owned: &[HeaderName], cookie: &str) -> Loaded {
        let owned = OwnedHeaders::new(
            set.owned_headers()
                .iter()
                .chain(extra_owned)
                .map(HeaderName::as_str),
            cookie,
        );
        Loaded { set, owned }
    }

    /// Serves `set` (compiled from `dir` at start) and reloads from `dir` later.
    pub fn new(set: PolicySet, dir: PathBuf, extra_owned: Vec<HeaderName>, cookie: String) -> Self {
        let first = Self::assemble(set, &extra_owned, &cookie);
        Self {
            dir,
            extra_owned,
            cookie,
            current: ArcSwap::from_pointee(first),
        }
    }

    /// Wraps an already compiled set (tests, benches).
    pub fn fixed(set: PolicySet, cookie: &str) -> Self {
        Self {
            dir: PathBuf::new(),
            extra_owned: Vec::new(),
            cookie: cookie.to_string(),
            current: ArcSwap::from_pointee(Self::assemble(set, &[], cookie)),
        }
    }

    /// The generation in force (cheap: one atomic load).
    pub fn current(&self) -> Arc<Loaded> {
        self.current.load_full()
    }

    /// Re-reads the directory; swaps only if every file compiles.
    pub fn reload(&self) -> Result<usize, SourceErrors> {
        match PolicySet::load_dir(&self.dir) {
            Ok(set) => {
                let n = set.profiles().count();
                self.current.store(Arc::new(self.build(set)));
                metrics::get()
                    .policy_reloads
                    .with_label_values(&["ok"])
                    .inc();
                tracing::info!(profiles = n, "policies reloaded");
                Ok(n)
            }
            Err(e) => {
                metrics::get()
                    .policy_reloads
                    .with_label_values(&["failed"])
                    .inc();
                tracing::error!(errors = %e, "policy reload refused; the previous policies stay in force");
                Err(e)
            }
        }
    }
}

/// Runs `actions` on every SIGHUP, from a thread of its own (pingora does not handle
/// SIGHUP, and by default it would end the process).
pub fn on_sighup(actions: Vec<Box<dyn Fn() + Send + Sync>>) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Registered before returning, so a SIGHUP right after start is already handled.
    let mut hup = rt.block_on(async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    })?;
    std::thread::Builder::new()
        .name("guestgate-sighup".into())
        .spawn(move || {
            rt.block_on(async move {
                while hup.recv().await.is_some() {
                    for action in &actions {
                        action();
                    }
                }
            })
        })?;
    Ok(())
}
