//! Strict, path-aware reading of JSON request bodies, shared by the provider
//! modules. Each failure names the offending field, so a test that trips one
//! points straight at the translation bug.

use std::fmt;
use std::ops::RangeInclusive;

use serde_json::{Map, Value};

/// A request field that failed validation. `field` is a dotted path such as
/// `messages.1.content.0.text`, empty for the body itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub message: String,
    /// The message already names the field, because the provider words this
    /// error that way; it is then shown without the `field: ` prefix.
    standalone: bool,
}

impl Invalid {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid { field: field.into(), message: message.into(), standalone: false }
    }

    pub fn standalone(field: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid { standalone: true, ..Invalid::new(field, message) }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.standalone || self.field.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.field, self.message) }
    }
}

pub type Checked<T> = Result<T, Invalid>;

/// Appends an object key or array index to a path.
pub fn join(path: &str, key: impl fmt::Display) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

/// A JSON object being validated, remembering where it sits in the body.
///
/// Optional fields treat an explicit `null` like an absent field, as both
/// OpenAI and Anthropic do.
#[derive(Debug, Clone)]
pub struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Obj<'a> {
    pub fn new(value: &'a Value, path: impl Into<String>) -> Checked<Self> {
        let path = path.into();
        match value {
            Value::Object(map) => Ok(Obj { map, path }),
            _ => Err(Invalid::new(path, "Input should be an object")),
        }
    }

    pub fn path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// Rejects fields outside `allowed`, the way Anthropic rejects fields an
    /// OpenAI request would leak through.
    pub fn only(&self, allowed: &[&str]) -> Checked<()> {
        match self.map.keys().find(|key| !allowed.contains(&key.as_str())) {
            Some(extra) => Err(Invalid::new(self.path(extra), "Extra inputs are not permitted")),
            None => Ok(()),
        }
    }

    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|value| !value.is_null())
    }

    pub fn required(&self, key: &str) -> Checked<&'a Value> {
        self.get(key).ok_or_else(|| Invalid::new(self.path(key), "Field required"))
    }

    pub fn object(&self, key: &str) -> Checked<Obj<'a>> {
        Obj::new(self.required(key)?, self.path(key))
    }

    pub fn string(&self, key: &str) -> Checked<&'a str> {
        string(self.required(key)?, &self.path(key))
    }

    pub fn non_empty_string(&self, key: &str) -> Checked<&'a str> {
        non_empty_string(self.required(key)?, &self.path(key))
    }

    pub fn opt_string(&self, key: &str) -> Checked<Option<&'a str>> {
        self.get(key).map(|value| string(value, &self.path(key))).transpose()
    }

    pub fn opt_bool(&self, key: &str) -> Checked<Option<bool>> {
        self.get(key)
            .map(|value| value.as_bool().ok_or_else(|| Invalid::new(self.path(key), "Input should be a valid boolean")))
            .transpose()
    }

    pub fn opt_number(&self, key: &str, range: RangeInclusive<f64>) -> Checked<Option<f64>> {
        self.get(key)
            .map(|value| match value.as_f64() {
                Some(number) if range.contains(&number) => Ok(number),
                _ => Err(Invalid::new(self.path(key), format!("Input should be a number between {} and {}", range.start(), range.end()))),
            })
            .transpose()
    }

    pub fn opt_positive_int(&self, key: &str) -> Checked<Option<u64>> {
        self.get(key)
            .map(|value| match value.as_u64() {
                Some(number) if number > 0 => Ok(number),
                _ => Err(Invalid::new(self.path(key), "Input should be a positive integer")),
            })
            .transpose()
    }

    pub fn positive_int(&self, key: &str) -> Checked<u64> {
        self.required(key)?;
        self.opt_positive_int(key).map(|number| number.unwrap_or_default())
    }

    pub fn opt_array(&self, key: &str) -> Checked<Option<&'a [Value]>> {
        self.get(key).map(|value| array(value, &self.path(key))).transpose()
    }

    pub fn non_empty_array(&self, key: &str) -> Checked<&'a [Value]> {
        let items = array(self.required(key)?, &self.path(key))?;
        if items.is_empty() {
            return Err(Invalid::new(self.path(key), "List should have at least 1 item"));
        }
        Ok(items)
    }
}

pub fn string<'a>(value: &'a Value, path: &str) -> Checked<&'a str> {
    value.as_str().ok_or_else(|| Invalid::new(path, "Input should be a valid string"))
}

pub fn non_empty_string<'a>(value: &'a Value, path: &str) -> Checked<&'a str> {
    match string(value, path)? {
        "" => Err(Invalid::new(path, "String should have at least 1 character")),
        text => Ok(text),
    }
}

pub fn array<'a>(value: &'a Value, path: &str) -> Checked<&'a [Value]> {
    value.as_array().map(Vec::as_slice).ok_or_else(|| Invalid::new(path, "Input should be a valid list"))
}

/// A tool name as both providers constrain it: `^[a-zA-Z0-9_-]{1,max}$`.
pub fn tool_name<'a>(value: &'a Value, path: &str, max: usize) -> Checked<&'a str> {
    let name = string(value, path)?;
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    if (1..=max).contains(&name.len()) && name.bytes().all(allowed) {
        Ok(name)
    } else {
        Err(Invalid::new(path, format!("String should match pattern '^[a-zA-Z0-9_-]{{1,{max}}}$'")))
    }
}

/// Parses a request body that must be a JSON object.
pub fn parse_body(raw: &[u8]) -> Checked<Value> {
    let value: Value =
        serde_json::from_slice(raw).map_err(|error| Invalid::new("", format!("The request body is not valid JSON: {error}")))?;
    Obj::new(&value, "")?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_the_failing_field() {
        let body = json!({"a": {"b": 5, "n": null}});
        let outer = Obj::new(&body, "").unwrap();
        let inner = Obj::new(outer.required("a").unwrap(), outer.path("a")).unwrap();
        assert_eq!(inner.string("b").unwrap_err().field, "a.b");
        assert_eq!(inner.required("n").unwrap_err().to_string(), "a.n: Field required");
        assert_eq!(inner.opt_bool("n"), Ok(None));
        assert_eq!(inner.only(&["b"]).unwrap_err().field, "a.n");
        assert_eq!(inner.opt_number("b", 0.0..=1.0).unwrap_err().field, "a.b");
        assert_eq!(inner.positive_int("b"), Ok(5));
    }

    #[test]
    fn bodies_must_be_json_objects() {
        assert!(parse_body(b"[]").is_err());
        assert!(parse_body(b"{").is_err());
        assert!(parse_body(b"{}").is_ok());
    }
}
