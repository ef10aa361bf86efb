//! Dollar amounts as users write them: kept as decimal text, parsed exactly by `accounting::money`.

/// A JSON number or string holding a decimal, read from its text (never through f64).
pub fn deserialize_usd<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    use serde::Deserialize;
    let raw = <&serde_json::value::RawValue>::deserialize(d)?;
    let text = raw.get();
    Ok(text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text).to_owned())
}

pub fn deserialize_optional_usd<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    deserialize_usd(d).map(Some)
}
