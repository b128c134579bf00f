//! The environment layer: `GUESTGATE_SECTION__KEY=value` overrides `[section] key` of
//! the file (`GUESTGATE_MODE` a top-level key). Values are read as TOML when they parse
//! as one (`true`, `1024`, `["a","b"]`), as a plain string otherwise.

use super::raw::RawConfig;
use crate::toml_source::{Source, SourceError};

const PREFIX: &str = "GUESTGATE_";
/// Variables with the prefix that name the config file or the CLI's admin target rather
/// than a key.
const RESERVED: &[&str] = &[
    "GUESTGATE_CONFIG",
    "GUESTGATE_ADMIN_URL",
    "GUESTGATE_ADMIN_TOKEN",
];

/// One override.
#[derive(Debug, Clone)]
pub struct Override {
    /// The variable, for error messages.
    pub var: String,
    /// Dotted key it sets (`session.key_file`).
    pub key: String,
    value: toml::Value,
}

/// Picks the overrides out of an environment, in a stable order.
pub fn overrides(vars: impl IntoIterator<Item = (String, String)>) -> Vec<Override> {
    let mut out: Vec<Override> = vars
        .into_iter()
        .filter(|(k, _)| k.starts_with(PREFIX) && !RESERVED.contains(&k.as_str()))
        .map(|(var, raw)| {
            let key = var[PREFIX.len()..]
                .split("__")
                .map(str::to_ascii_lowercase)
                .collect::<Vec<_>>()
                .join(".");
            Override {
                var,
                key,
                value: parse_value(&raw),
            }
        })
        .collect();
    out.sort_by(|a, b| a.var.cmp(&b.var));
    out
}

fn parse_value(raw: &str) -> toml::Value {
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(t) if t.len() == 1 => t.get("v").cloned().unwrap_or_else(|| raw.into()),
        _ => toml::Value::String(raw.to_string()),
    }
}

/// Applies the overrides on top of the file and deserializes; an error names the
/// variable that caused it.
pub fn apply(src: &Source, overrides: &[Override]) -> Result<RawConfig, SourceError> {
    let base: toml::Table = toml::from_str(src.text()).map_err(|e| SourceError {
        origin: src.path().display().to_string(),
        line: None,
        key: None,
        message: e.message().to_string(),
        help: None,
    })?;
    let merged = merge(base.clone(), overrides);
    match toml::Value::Table(merged).try_into::<RawConfig>() {
        Ok(raw) => Ok(raw),
        Err(_) => {
            // Find the first variable that breaks it on its own, to name it.
            for o in overrides {
                if let Err(e) = toml::Value::Table(merge(base.clone(), std::slice::from_ref(o)))
                    .try_into::<RawConfig>()
                {
                    return Err(SourceError {
                        origin: format!("environment ({})", o.var),
                        line: None,
                        key: Some(o.key.clone()),
                        message: e.message().trim().to_string(),
                        help: Some(
                            "strings that look like numbers or booleans need quotes: VAR='\"123\"'"
                                .into(),
                        ),
                    });
                }
            }
            Err(SourceError {
                origin: "environment".into(),
                line: None,
                key: None,
                message: "the GUESTGATE_* overrides do not fit together".into(),
                help: None,
            })
        }
    }
}

fn merge(mut table: toml::Table, overrides: &[Override]) -> toml::Table {
    for o in overrides {
        let parts: Vec<&str> = o.key.split('.').collect();
        let mut cur = &mut table;
        for part in &parts[..parts.len() - 1] {
            let entry = cur
                .entry(part.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            let Some(t) = entry.as_table_mut() else {
                // Cannot happen: the entry was made a table just above.
                return table;
            };
            cur = t;
        }
        if let Some(last) = parts.last() {
            cur.insert(last.to_string(), o.value.clone());
        }
    }
    table
}
