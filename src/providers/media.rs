//! The media a content part points to: a base64 data URL or an http(s) URL.

use crate::error::ApiError;
use serde::Serialize;

/// Where a part's media is. Serialized, it is Anthropic's `source` object.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Source<'r> {
    Base64 { media_type: &'r str, data: &'r str },
    Url { url: &'r str },
}

/// `data:<type>;base64,<data>` → base64 source; `http(s)://` → url source.
pub(super) fn media_source<'r>(url: &'r str, param: &str) -> Result<Source<'r>, ApiError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let parsed = rest.split_once(',').and_then(|(meta, data)| Some((meta.strip_suffix(";base64")?, data)));
        return match parsed {
            Some((media_type, data)) if !media_type.is_empty() && !data.is_empty() => Ok(Source::Base64 { media_type, data }),
            _ => Err(ApiError::invalid_param(param, "Data URLs must look like `data:<media type>;base64,<data>`.")),
        };
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(Source::Url { url });
    }
    Err(ApiError::invalid_param(param, "The URL must be an http(s) URL or a base64 data URL."))
}
