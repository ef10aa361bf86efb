//! `response_format: {"type": "json_schema", …}`
//! (https://platform.openai.com/docs/guides/structured-outputs) for providers that answer in a
//! schema natively on some models and otherwise through a tool the model must call, whose input
//! then becomes the answer's content (Anthropic and Bedrock).

use super::Unsupported;
use crate::conversation::request::ChatRequest;
use crate::error::ApiError;
use crate::schema::JsonSchemaForm;
use serde::Deserialize;
use serde_json::value::RawValue;

/// The client's `json_schema`, and how the model is made to answer in it.
pub struct SchemaAnswer<'r> {
    pub name: &'r str,
    pub description: Option<&'r str>,
    pub schema: &'r RawValue,
    pub form: JsonSchemaForm,
}

#[derive(Deserialize)]
struct JsonSchemaSpec<'a> {
    #[serde(borrow)]
    name: &'a str,
    #[serde(borrow, default)]
    description: Option<&'a str>,
    #[serde(borrow)]
    schema: &'a RawValue,
}

/// The request's JSON schema answer, if it asks for one. `native` says whether the model has
/// structured outputs (the shipped default; a model's policy, `form`, overrides it). A forced
/// tool cannot coexist with the client's own tools: such a request is unsupported.
pub fn requested<'r>(
    req: &'r ChatRequest,
    form: Option<JsonSchemaForm>,
    native: bool,
    unsupported: &mut Unsupported,
) -> Result<Option<SchemaAnswer<'r>>, ApiError> {
    let Some(format) = req.response_format.as_ref().filter(|f| &*f.kind == "json_schema") else { return Ok(None) };
    let spec = format.json_schema.and_then(|raw| serde_json::from_str::<JsonSchemaSpec>(raw.get()).ok()).ok_or_else(|| {
        ApiError::invalid_param(
            "response_format.json_schema",
            "`response_format.json_schema` must be an object with a `name` and a `schema`.",
        )
    })?;
    let form = form.unwrap_or(if native { JsonSchemaForm::Native } else { JsonSchemaForm::Tool });
    if form == JsonSchemaForm::Tool && !req.tools.is_empty() {
        unsupported.add("response_format");
        return Ok(None);
    }
    Ok(Some(SchemaAnswer { name: spec.name, description: spec.description, schema: spec.schema, form }))
}

/// The tool whose input is the answer, when the schema is answered through one.
pub fn answer_tool(answer: Option<&SchemaAnswer>) -> Option<String> {
    answer.filter(|a| a.form == JsonSchemaForm::Tool).map(|a| a.name.to_owned())
}

/// Claude models with structured outputs
/// (https://platform.claude.com/docs/en/build-with-claude/structured-outputs: Claude Opus 4.1,
/// Sonnet 4.5, Haiku 4.5, Opus 4.5 and later); Bedrock ids hold the same names.
const NATIVE_CLAUDE: &[&str] = &[
    "claude-opus-4-1",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
    "claude-opus-4-5",
    "claude-opus-4-6",
    "claude-sonnet-4-6",
    "claude-opus-4-7",
    "claude-opus-4-8",
    "claude-opus-5",
    "claude-sonnet-5",
    "claude-haiku-5",
    "claude-mythos",
    "claude-fable",
];

pub fn claude_native(model: &str) -> bool {
    NATIVE_CLAUDE.iter().any(|m| model.contains(m))
}
