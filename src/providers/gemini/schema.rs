//! OpenAI tool and answer schemas as the OpenAPI 3.0 subset Gemini takes.

use super::*;

/// A JSON Schema (as OpenAI tools and `json_schema` formats carry it) rewritten as Gemini's
/// Schema object. Keywords Gemini cannot express are refused, not dropped: a dropped
/// constraint would let the model produce output the client's schema forbids. The one
/// exception is `additionalProperties: false`, which OpenAI's strict mode requires on every
/// object and which Gemini already honours, since it generates declared properties only.
#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct Schema<'a> {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub(super) kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) format: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) title: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) description: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(super) nullable: bool,
    #[serde(rename = "enum", skip_serializing_if = "Option::is_none")]
    pub(super) enum_values: Option<Vec<Cow<'a, str>>>,
    #[serde(skip_serializing_if = "Properties::is_empty")]
    pub(super) properties: Properties<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) required: Option<Vec<Cow<'a, str>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) property_ordering: Option<Vec<Cow<'a, str>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) items: Option<Box<Schema<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) any_of: Option<Vec<Schema<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) pattern: Option<Cow<'a, str>>,
    /// Numeric bounds, defaults and examples, copied as written.
    #[serde(flatten)]
    pub(super) verbatim: Verbatim<'a>,
}

#[derive(Default)]
pub(super) struct Verbatim<'a>(pub(super) Vec<(&'static str, &'a RawValue)>);

impl Serialize for Verbatim<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Keywords Gemini's Schema shares with JSON Schema and that pass unchanged.
pub(super) const VERBATIM_KEYWORDS: &[&str] =
    &["minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties", "minimum", "maximum", "default", "example"];

/// `properties` in the client's order, which Gemini uses to order its output.
#[derive(Default)]
pub(super) struct Properties<'a>(pub(super) Vec<(Cow<'a, str>, Schema<'a>)>);

impl Properties<'_> {
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Properties<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl Schema<'_> {
    pub(super) fn is_empty_object(&self) -> bool {
        self.kind == Some("OBJECT") && self.properties.is_empty() && self.any_of.is_none()
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum TypeSpec<'a> {
    One(#[serde(borrow)] Str<'a>),
    Many(#[serde(borrow)] Vec<Str<'a>>),
}

pub(super) fn gemini_type(name: &str) -> Option<&'static str> {
    Some(match name {
        "string" => "STRING",
        "number" => "NUMBER",
        "integer" => "INTEGER",
        "boolean" => "BOOLEAN",
        "array" => "ARRAY",
        "object" => "OBJECT",
        "null" => "NULL",
        _ => return None,
    })
}

/// `"type"` → (Gemini type, nullable). `["T", "null"]` is how JSON Schema spells nullable.
pub(super) fn schema_type<E: de::Error>(spec: TypeSpec) -> Result<(&'static str, bool), E> {
    let unknown = |t: &str| E::custom(format_args!("unknown type `{t}`"));
    match spec {
        TypeSpec::One(t) => gemini_type(&t).map(|g| (g, false)).ok_or_else(|| unknown(&t)),
        TypeSpec::Many(types) => {
            let nullable = types.iter().any(|t| &**t == "null");
            let mut rest = types.iter().filter(|t| &***t != "null");
            match (rest.next(), rest.next()) {
                (None, _) => Ok(("NULL", false)),
                (Some(t), None) => gemini_type(t).map(|g| (g, nullable)).ok_or_else(|| unknown(t)),
                (Some(_), Some(_)) => Err(E::custom("a list of several types cannot be expressed; use `anyOf`")),
            }
        }
    }
}

pub(super) struct SchemaVisitor;

impl<'de> Visitor<'de> for SchemaVisitor {
    type Value = Schema<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON Schema object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut s = Schema::default();
        let strings = |v: Vec<Str<'de>>| v.into_iter().map(|s| s.0).collect::<Vec<_>>();
        while let Some(key) = map.next_key::<Str<'de>>()? {
            match &*key {
                "type" => {
                    let (kind, nullable) = schema_type(map.next_value()?)?;
                    s.kind = Some(kind);
                    s.nullable |= nullable;
                }
                "nullable" => s.nullable |= map.next_value::<bool>()?,
                "format" => s.format = Some(map.next_value::<Str>()?.0),
                "title" => s.title = Some(map.next_value::<Str>()?.0),
                "description" => s.description = Some(map.next_value::<Str>()?.0),
                "pattern" => s.pattern = Some(map.next_value::<Str>()?.0),
                "enum" => s.enum_values = Some(strings(map.next_value()?)),
                "required" => s.required = Some(strings(map.next_value()?)),
                "propertyOrdering" => s.property_ordering = Some(strings(map.next_value()?)),
                "properties" => s.properties = map.next_value()?,
                "items" => s.items = Some(Box::new(map.next_value()?)),
                "anyOf" => s.any_of = Some(map.next_value()?),
                "additionalProperties" => {
                    let value: &RawValue = map.next_value()?;
                    if value.get().trim() != "false" {
                        return Err(de::Error::custom("`additionalProperties` other than `false` cannot be expressed"));
                    }
                }
                // Annotations for schema tooling, not constraints on the output.
                "$schema" | "$id" | "$comment" => {
                    map.next_value::<IgnoredAny>()?;
                }
                other => match VERBATIM_KEYWORDS.iter().find(|k| **k == other) {
                    Some(k) => s.verbatim.0.push((k, map.next_value()?)),
                    None => return Err(de::Error::custom(format_args!("keyword `{other}` is not supported"))),
                },
            }
        }
        Ok(s)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Schema<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(SchemaVisitor)
    }
}

pub(super) struct PropertiesVisitor;

impl<'de> Visitor<'de> for PropertiesVisitor {
    type Value = Properties<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of property schemas")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(key) = map.next_key::<Str<'de>>()? {
            out.push((key.0, map.next_value()?));
        }
        Ok(Properties(out))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Properties<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(PropertiesVisitor)
    }
}

pub(super) fn convert_schema<'r>(raw: &'r RawValue, param: &str) -> Result<Schema<'r>, ApiError> {
    serde_json::from_str(raw.get()).map_err(|e| {
        // Only on the error path: find where the schema went wrong from the error's position.
        let text = raw.get().as_bytes();
        let path = crate::json::path_at(text, crate::json::offset_of(text, e.line(), e.column()));
        let at = if path.is_empty() { String::new() } else { format!(" at `{path}`") };
        ApiError::invalid_param(
            param,
            format!(
                "`{param}` cannot be sent to Gemini{at}: {}. Gemini takes an OpenAPI 3.0 subset of JSON Schema (https://ai.google.dev/api/caching#Schema).",
                strip_position(&e.to_string())
            ),
        )
    })
}
