//! guestgate: a pingora reverse-proxy sidecar that lets an outside guest see one case,
//! at one version, of an existing web app — and nothing else.
//!
//! The request's path through the code: [`proxy`] (pingora phases) asks
//! [`decision::Gate`] for a verdict, which applies [`framing`], [`session`],
//! [`target`] and [`policy`] in that order; [`audit`] records the outcome.

pub mod admin;
pub mod assertion;
pub mod audit;
pub mod banner;
pub mod cli;
pub mod client_addr;
pub mod config;
pub mod decision;
pub mod framing;
pub mod guest;
pub mod header_names;
pub mod html;
pub mod key_file;
pub mod mail;
pub mod metrics;
pub mod otp;
pub mod policy;
pub mod proxy;
pub mod reason;
pub mod refusal;
pub mod reload;
pub mod reply;
pub mod server;
pub mod session;
pub mod shares;
pub mod split;
pub mod stamp;
pub mod store;
pub mod target;
pub mod tls;
pub mod toml_source;
