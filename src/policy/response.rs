//! What a profile does to the app's responses to its guests: guestgate's defaults
//! (`Cache-Control: no-store`, so documents stay neither on a guest's machine nor in a
//! shared cache; `X-Content-Type-Options: nosniff`), the profile's own `[response]`
//! edits on top, and the words of the banner (`[banner]`).

use http::{HeaderName, HeaderValue};

use super::parse::{RawBanner, RawResponse};
use crate::header_names::is_managed_response;
use crate::toml_source::{Source, SourceError};

/// The headers every guest response gets unless the profile says otherwise.
pub const DEFAULT_RESPONSE_HEADERS: &[(&str, &str)] = &[
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
];

/// Longest banner label or sentence: it is a strip at the top of a page, not a notice.
const MAX_BANNER_TEXT: usize = 200;

/// A profile's response edits, resolved: remove these, then set those.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponsePlan {
    /// Removed from the app's response.
    pub remove_headers: Vec<HeaderName>,
    /// Set (replacing the app's): guestgate's defaults not overridden, then the profile's.
    pub set_headers: Vec<(HeaderName, HeaderValue)>,
    /// The banner's words; `None` when the profile turns it off.
    pub banner: Option<BannerWords>,
}

/// What the banner says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BannerWords {
    /// The short label: "View-only".
    pub label: String,
    /// The sentence after the case and version: "You can read the documents ...".
    pub text: String,
}

/// Compiles `[response]` and `[banner]`. `read_only`: every rule allows only GET/HEAD
/// (the default label says "View-only" only then). `can` completes the default sentence.
pub fn compile_response(
    raw: RawResponse,
    banner: RawBanner,
    read_only: bool,
    can: &str,
    src: &Source,
) -> Result<ResponsePlan, Vec<SourceError>> {
    let mut errors = Vec::new();
    let mut remove_headers = Vec::new();
    for (i, name) in raw.remove_headers.iter().enumerate() {
        match response_header(name) {
            Ok(h) => remove_headers.push(h),
            Err(msg) => errors.push(src.error_at(&format!("response.remove_headers[{i}]"), msg)),
        }
    }
    let mut set_headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
    for (name, value) in &raw.set_headers {
        let key = format!("response.set_headers.{name}");
        let header = match response_header(name) {
            Ok(h) if h == http::header::SET_COOKIE => {
                errors.push(src.error_at(
                    &key,
                    "a profile may remove the app's Set-Cookie, not set cookies of its own",
                ));
                continue;
            }
            Ok(h) => h,
            Err(msg) => {
                errors.push(src.error_at(&key, msg));
                continue;
            }
        };
        match HeaderValue::from_str(value) {
            Ok(v) => set_headers.push((header, v)),
            Err(_) => {
                errors.push(src.error_at(&key, "value has characters not allowed in a header"))
            }
        }
    }
    // Defaults first, unless the profile removes or sets the same header.
    let mut resolved: Vec<(HeaderName, HeaderValue)> = DEFAULT_RESPONSE_HEADERS
        .iter()
        .map(|(n, v)| (HeaderName::from_static(n), HeaderValue::from_static(v)))
        .filter(|(n, _)| !remove_headers.contains(n) && !set_headers.iter().any(|(s, _)| s == n))
        .collect();
    resolved.extend(set_headers);

    let words = |key: &str, value: Option<String>, default: String, errors: &mut Vec<_>| {
        let v = value.unwrap_or(default);
        if v.trim().is_empty()
            || v.chars().count() > MAX_BANNER_TEXT
            || v.chars().any(char::is_control)
        {
            errors.push(src.error_at(
                key,
                format!("banner text must be 1 to {MAX_BANNER_TEXT} characters, on one line"),
            ));
        }
        v
    };
    let label_default = if read_only {
        "View-only"
    } else {
        "Guest access"
    };
    let label = words(
        "banner.label",
        banner.label,
        label_default.into(),
        &mut errors,
    );
    let text = words(
        "banner.text",
        banner.text,
        format!("You can {can}."),
        &mut errors,
    );
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ResponsePlan {
        remove_headers,
        set_headers: resolved,
        banner: banner
            .show
            .unwrap_or(true)
            .then_some(BannerWords { label, text }),
    })
}

fn response_header(name: &str) -> Result<HeaderName, String> {
    let h = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("`{name}` is not a valid header name"))?;
    // Length, coding and connection headers describe the bytes guestgate sends.
    if is_managed_response(h.as_str()) {
        return Err(format!(
            "header `{name}` is managed by guestgate and cannot be set or removed by a profile"
        ));
    }
    Ok(h)
}
