//! The OpenAI Chat Completions dialect, inbound: a `POST /v1/chat/completions` body parsed
//! into the gateway's [`ChatRequest`] and validated, errors naming the offending field.
//! Field names follow https://platform.openai.com/docs/api-reference/chat/create.

use crate::conversation::request::{ChatRequest, Content, Message, Role, ToolChoice};
use crate::error::ApiError;

/// Output limit members, in the order OpenAI documents them.
const OUTPUT_LIMITS: [&str; 2] = ["max_tokens", "max_completion_tokens"];

/// The body with its output limit set to `limit`: every output-limit member it names gets the
/// value, and one that names neither gains `max_tokens` (which a model's parameter policy may
/// rename, as OpenAI's reasoning models need).
pub fn with_output_limit(body: &[u8], limit: u64) -> Result<Vec<u8>, ApiError> {
    let members = crate::json::members(body).ok_or_else(|| ApiError::invalid_request("The request body must be a JSON object."))?;
    let value = limit.to_string();
    let named = OUTPUT_LIMITS.iter().filter(|n| members.iter().any(|m| m.key(body) == **n));
    let mut set: Vec<(&str, &[u8])> = named.map(|n| (*n, value.as_bytes())).collect();
    if set.is_empty() {
        set.push(("max_tokens", value.as_bytes()));
    }
    Ok(crate::json::rewrite(body, &members, |k| !OUTPUT_LIMITS.contains(&k), &set))
}

/// Parses and validates a request body. Errors name the offending field in `param`.
pub fn parse(body: &[u8]) -> Result<ChatRequest<'_>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid_request("The request body is empty; send a JSON chat completion request."));
    }
    crate::json::check_depth(body).map_err(|deep| ApiError::nesting_too_deep(&deep))?;
    let request: ChatRequest = match crate::json::from_body(body) {
        Ok(r) => ChatRequest { body_len: body.len(), ..r },
        Err(e) => return Err(describe_parse_error(body, &e)),
    };
    validate(&request)?;
    Ok(request)
}

/// Names the field a parse error points at (found from the error's position, only on the
/// error path).
pub(super) fn describe_parse_error(body: &[u8], e: &serde_json::Error) -> ApiError {
    if e.is_syntax() || e.is_eof() {
        return ApiError::invalid_request(format!("The request body is not valid JSON: {e}. Send a JSON object."));
    }
    let message = crate::json::strip_position(&e.to_string());
    let mut offset = crate::json::offset_of(body, e.line(), e.column());
    // A value read raw first (message content) is refused once read: serde_json then points at
    // the byte after it, which belongs to the enclosing value.
    if message.starts_with("invalid type") && matches!(body.get(offset), Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')) {
        let before = body.get(..offset).unwrap_or_default();
        offset = before.iter().rposition(|b| !b.is_ascii_whitespace()).unwrap_or(offset);
    }
    let path = crate::json::path_at(body, offset);
    let param = match missing_field(&message) {
        Some(field) if path.is_empty() => field,
        Some(field) => format!("{path}.{field}"),
        None => path,
    };
    if param.is_empty() {
        return ApiError::invalid_request(format!("Invalid request: {message}."));
    }
    ApiError::invalid_param(param.clone(), format!("Invalid value for `{param}`: {message}."))
}

fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next().map(str::to_owned)
}

fn validate(r: &ChatRequest) -> Result<(), ApiError> {
    if r.model.is_empty() {
        return Err(ApiError::invalid_param("model", "`model` must not be empty."));
    }
    if r.messages.is_empty() {
        return Err(ApiError::invalid_param("messages", "`messages` must contain at least one message."));
    }
    for (i, m) in r.messages.iter().enumerate() {
        validate_message(i, m)?;
    }
    if let Some(n) = r.n
        && n == 0
    {
        return Err(ApiError::invalid_param("n", "`n` must be at least 1."));
    }
    if let Some(t) = r.temperature
        && !(0.0..=2.0).contains(&t)
    {
        return Err(ApiError::invalid_param("temperature", format!("`temperature` must be between 0 and 2, got {t}.")));
    }
    if let Some(p) = r.top_p
        && !(0.0..=1.0).contains(&p)
    {
        return Err(ApiError::invalid_param("top_p", format!("`top_p` must be between 0 and 1, got {p}.")));
    }
    for (name, value) in [("max_tokens", r.max_tokens), ("max_completion_tokens", r.max_completion_tokens)] {
        if value == Some(0) {
            return Err(ApiError::invalid_param(name, format!("`{name}` must be at least 1.")));
        }
    }
    for (i, t) in r.tools.iter().enumerate() {
        if &*t.kind != "function" {
            return Err(ApiError::invalid_param(
                format!("tools[{i}].type"),
                format!("Tool type `{}` is not supported; use \"function\".", &*t.kind),
            ));
        }
        match &t.function {
            Some(f) if !f.name.is_empty() => {}
            _ => {
                return Err(ApiError::invalid_param(
                    format!("tools[{i}].function.name"),
                    "Every function tool needs a non-empty `function.name`.",
                ));
            }
        }
    }
    match &r.tool_choice {
        Some(ToolChoice::Mode(mode)) if !matches!(&**mode, "auto" | "none" | "required") => {
            return Err(ApiError::invalid_param(
                "tool_choice",
                format!("`tool_choice` must be \"auto\", \"none\", \"required\" or a named function, got \"{}\".", &**mode),
            ));
        }
        Some(ToolChoice::Function(name)) if !r.tools.iter().any(|t| t.function.as_ref().is_some_and(|f| f.name == *name)) => {
            return Err(ApiError::invalid_param(
                "tool_choice",
                format!("`tool_choice` names function `{}`, which is not in `tools`.", &**name),
            ));
        }
        Some(_) if r.tools.is_empty() => {
            return Err(ApiError::invalid_param("tool_choice", "`tool_choice` is only allowed when `tools` are specified."));
        }
        _ => {}
    }
    Ok(())
}

fn validate_message(i: usize, m: &Message) -> Result<(), ApiError> {
    let has_tool_calls = m.tool_calls.as_ref().is_some_and(|c| !c.is_empty());
    match m.role {
        Role::Assistant if m.content.is_none() && !has_tool_calls => {
            return Err(ApiError::invalid_param(
                format!("messages[{i}].content"),
                format!("messages[{i}]: an assistant message needs `content` or `tool_calls`."),
            ));
        }
        Role::Tool if m.tool_call_id.is_none() => {
            return Err(ApiError::invalid_param(
                format!("messages[{i}].tool_call_id"),
                format!("messages[{i}]: a tool message needs `tool_call_id`."),
            ));
        }
        Role::System | Role::Developer | Role::User | Role::Tool if m.content.is_none() => {
            return Err(ApiError::invalid_param(
                format!("messages[{i}].content"),
                format!("messages[{i}]: a {} message needs `content`.", m.role.as_str()),
            ));
        }
        _ => {}
    }
    if let Some(Content::Parts(parts)) = &m.content {
        for (j, p) in parts.iter().enumerate() {
            let param = || format!("messages[{i}].content[{j}]");
            match &*p.kind {
                "text" if p.text.is_none() => {
                    return Err(ApiError::invalid_param(param(), format!("{}: a text part needs `text`.", param())));
                }
                "image_url" if p.image_url.is_none() => {
                    return Err(ApiError::invalid_param(param(), format!("{}: an image_url part needs `image_url.url`.", param())));
                }
                "file" if p.file.is_none() => {
                    return Err(ApiError::invalid_param(param(), format!("{}: a file part needs `file`.", param())));
                }
                "text" | "image_url" | "file" | "input_audio" | "refusal" => {}
                other => {
                    return Err(ApiError::invalid_param(
                        format!("{}.type", param()),
                        format!("{}: unknown content part type `{other}`.", param()),
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::Str;
    use std::borrow::Cow;

    fn err(body: &str) -> ApiError {
        parse(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn parses_minimal_request_borrowing_strings() {
        let body = br#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
        let r = parse(body).unwrap();
        assert_eq!(&*r.model, "gpt-4o");
        assert!(matches!(r.model.0, Cow::Borrowed(_)));
        assert_eq!(r.messages.len(), 1);
        assert_eq!(r.messages[0].role, Role::User);
        assert!(!r.stream);
    }

    #[test]
    fn parses_every_typed_field() {
        let body = br#"{"model":"m","messages":[{"role":"system","content":"s"},
            {"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAA="}}]},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"x\":1}"}}]},
            {"role":"tool","tool_call_id":"c1","content":"r"}],
            "stream":true,"stream_options":{"include_usage":true},"max_tokens":10,"max_completion_tokens":20,
            "temperature":0.5,"top_p":0.9,"stop":"END","tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],
            "tool_choice":{"type":"function","function":{"name":"f"}},"parallel_tool_calls":false,"user":"u1","n":1,
            "logprobs":false,"presence_penalty":0,"frequency_penalty":0.0,"response_format":{"type":"text"},"metadata":{"a":"b"},
            "seed":7,"store":null}"#;
        let r = parse(body).unwrap();
        assert!(r.stream);
        assert_eq!(r.include_usage, Some(true));
        assert_eq!(r.output_limit(), Some(20));
        assert_eq!(r.temperature, Some(0.5));
        assert_eq!(r.stop, vec![Str::from("END")]);
        assert_eq!(r.tools.len(), 1);
        assert_eq!(r.tool_choice, Some(ToolChoice::Function(Str::from("f"))));
        assert_eq!(r.parallel_tool_calls, Some(false));
        assert_eq!(r.user.as_deref(), Some("u1"));
        assert_eq!(r.metadata.unwrap().get(), r#"{"a":"b"}"#);
        // null members are absent, unknown ones kept raw
        assert_eq!(r.extra.len(), 1);
        assert_eq!(r.extra("seed").unwrap().get(), "7");
        let tc = r.messages[2].tool_calls.as_ref().unwrap();
        assert_eq!(&*tc[0].function.arguments, "{\"x\":1}");
    }

    #[test]
    fn stop_accepts_list_and_null() {
        let r = parse(br#"{"model":"m","messages":[{"role":"user","content":"x"}],"stop":["a","b"]}"#).unwrap();
        assert_eq!(r.stop.len(), 2);
        let r = parse(br#"{"model":"m","messages":[{"role":"user","content":"x"}],"stop":null}"#).unwrap();
        assert!(r.stop.is_empty());
    }

    #[test]
    fn escaped_strings_are_owned_and_decoded() {
        let r = parse(br#"{"model":"m","messages":[{"role":"user","content":"a\nb \u00e9"}]}"#).unwrap();
        match &r.messages[0].content {
            Some(Content::Text(s)) => assert_eq!(&**s, "a\nb é"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn empty_body_and_bad_json() {
        assert!(err("").message.contains("empty"));
        let e = err("{\"model\":");
        assert_eq!(e.status, 400);
        assert!(e.message.contains("not valid JSON"), "{}", e.message);
        let e = err("[1,2]");
        assert!(e.message.contains("chat completion request object"), "{}", e.message);
        let e = err("\"hello\"");
        assert_eq!(e.status, 400);
    }

    #[test]
    fn missing_fields_name_the_param() {
        let e = err(r#"{"messages":[{"role":"user","content":"x"}]}"#);
        assert_eq!(e.param.as_deref(), Some("model"));
        let e = err(r#"{"model":"m"}"#);
        assert_eq!(e.param.as_deref(), Some("messages"));
        let e = err(r#"{"model":"m","messages":[]}"#);
        assert_eq!(e.param.as_deref(), Some("messages"));
        let e = err(r#"{"model":"","messages":[{"role":"user","content":"x"}]}"#);
        assert_eq!(e.param.as_deref(), Some("model"));
    }

    #[test]
    fn wrong_types_name_the_path() {
        let e = err(r#"{"model":"m","messages":[{"role":"user","content":"x"},{"role":"user","content":5}]}"#);
        assert_eq!(e.param.as_deref(), Some("messages[1].content"), "{e:?}");
        for content in ["5 ", "{}", "true\n", "{\"a\":[1]} "] {
            let e = err(&format!(r#"{{"model":"m","messages":[{{"role":"user","content":{content}}}, {{"role":"user","content":"x"}}]}}"#));
            assert_eq!(e.param.as_deref(), Some("messages[0].content"), "{content}: {e:?}");
        }
        let e = err(r#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#);
        assert_eq!(e.param.as_deref(), Some("messages[0].role"), "{e:?}");
        let e = err(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#);
        assert_eq!(e.param.as_deref(), Some("temperature"), "{e:?}");
        let e = err(r#"{"model":7,"messages":[{"role":"user","content":"x"}]}"#);
        assert_eq!(e.param.as_deref(), Some("model"), "{e:?}");
        let e = err(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"web"}}"#);
        assert_eq!(e.param.as_deref(), Some("tool_choice.function"), "{e:?}");
        let e = err(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"web","function":{"name":"f"}}}"#);
        assert_eq!(e.param.as_deref(), Some("tool_choice"), "{e:?}");
        let e = err(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"seed":"x","stop":[1]}"#);
        assert_eq!(e.param.as_deref(), Some("stop[0]"), "{e:?}");
    }

    #[test]
    fn semantic_validation() {
        let cases = [
            (r#"{"model":"m","messages":[{"role":"assistant"}]}"#, "messages[0].content"),
            (r#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#, "messages[0].tool_call_id"),
            (r#"{"model":"m","messages":[{"role":"user"}]}"#, "messages[0].content"),
            (r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text"}]}]}"#, "messages[0].content[0]"),
            (r#"{"model":"m","messages":[{"role":"user","content":[{"type":"video"}]}]}"#, "messages[0].content[0].type"),
            (r#"{"model":"m","messages":[{"role":"user","content":"x"}],"n":0}"#, "n"),
            (r#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":3}"#, "temperature"),
            (r#"{"model":"m","messages":[{"role":"user","content":"x"}],"top_p":1.5}"#, "top_p"),
            (r#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0}"#, "max_tokens"),
            (r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"custom"}]}"#, "tools[0].type"),
            (r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]}"#, "tools[0].function.name"),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"maybe","tools":[{"type":"function","function":{"name":"f"}}]}"#,
                "tool_choice",
            ),
            (r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"auto"}"#, "tool_choice"),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"function","function":{"name":"g"}},"tools":[{"type":"function","function":{"name":"f"}}]}"#,
                "tool_choice",
            ),
        ];
        for (body, param) in cases {
            let e = err(body);
            assert_eq!(e.status, 400, "{body}");
            assert_eq!(e.param.as_deref(), Some(param), "{body}: {e:?}");
        }
    }

    #[test]
    fn params_can_be_queried_and_removed() {
        let mut r = parse(br#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":1,"seed":3}"#).unwrap();
        assert!(r.has_param("temperature"));
        assert!(r.has_param("seed"));
        assert!(!r.has_param("top_p"));
        r.remove_param("temperature");
        r.remove_param("seed");
        assert!(!r.has_param("temperature"));
        assert!(!r.has_param("seed"));
    }

    #[test]
    fn json_nested_too_deep_is_a_400_naming_the_field_in_every_position() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let deep_object = format!("{}1{}", r#"{"a":"#.repeat(100_000), "}".repeat(100_000));
        let user = r#"[{"role":"user","content":"x"}]"#;
        for d in [&deep, &deep_object] {
            let cases = [
                (format!(r#"{{"model":{d},"messages":{user}}}"#), "model"),
                (format!(r#"{{"model":"m","messages":{d}}}"#), "messages"),
                (format!(r#"{{"model":"m","messages":[{d}]}}"#), "messages"),
                (format!(r#"{{"model":"m","messages":[{{"role":"user","content":{d}}}]}}"#), "messages[0].content"),
                (
                    format!(
                        r#"{{"model":"m","messages":{user},"tools":[{{"type":"function","function":{{"name":"f","parameters":{d}}}}}]}}"#
                    ),
                    "tools[0].function.parameters",
                ),
                (
                    format!(
                        r#"{{"model":"m","messages":{user},"response_format":{{"type":"json_schema","json_schema":{{"schema":{d}}}}}}}"#
                    ),
                    "response_format.json_schema.schema",
                ),
                (format!(r#"{{"model":"m","messages":{user},"metadata":{d}}}"#), "metadata"),
                (format!(r#"{{"model":"m","messages":{user},"stop":{d}}}"#), "stop"),
                (format!(r#"{{"model":"m","messages":{user},"tool_choice":{d}}}"#), "tool_choice"),
                (format!(r#"{{"model":"m","messages":{user},"unknown_extra":{d}}}"#), "unknown_extra"),
            ];
            for (body, param) in cases {
                let e = parse(body.as_bytes()).unwrap_err();
                assert_eq!((e.status, e.code.as_deref()), (400, Some("nesting_too_deep")), "{param}");
                assert!(e.param.as_deref().unwrap().starts_with(param), "{param}: {e:?}");
            }
        }
        let e = parse(deep.as_bytes()).unwrap_err();
        assert_eq!((e.code.as_deref(), e.param.as_deref()), (Some("nesting_too_deep"), None));
        assert!(e.message.contains("64 levels"), "{}", e.message);
    }

    #[test]
    fn json_nested_up_to_the_limit_is_accepted() {
        // The body, `tools`, `[0]`, `function` and `parameters` take five levels.
        let depth = crate::json::MAX_DEPTH - 5;
        let schema = format!("{}{{}}{}", r#"{"type":"object","properties":{"a":"#.repeat(depth / 2), "}}".repeat(depth / 2));
        let body = format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"x"}}],"tools":[{{"type":"function","function":{{"name":"f","parameters":{schema}}}}}]}}"#
        );
        assert!(parse(body.as_bytes()).is_ok());
    }

    #[test]
    fn content_text_joins_parts() {
        let r = parse(br#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}"#)
            .unwrap();
        assert_eq!(r.messages[0].content.as_ref().unwrap().text(), "a\nb");
    }

    #[test]
    fn output_limit_is_set_where_the_client_named_it_or_added() {
        let limited = |body: &str| String::from_utf8(with_output_limit(body.as_bytes(), 7).unwrap()).unwrap();
        assert_eq!(limited(r#"{"model":"m","max_tokens":900,"n":1}"#), r#"{"model":"m","n":1,"max_tokens":7}"#);
        assert_eq!(limited(r#"{"max_completion_tokens":9,"model":"m"}"#), r#"{"model":"m","max_completion_tokens":7}"#);
        assert_eq!(
            limited(r#"{"max_tokens":9,"max_completion_tokens":9,"max_tokens":1}"#),
            r#"{"max_tokens":7,"max_completion_tokens":7}"#,
            "duplicates go too: no provider may read another value"
        );
        assert_eq!(limited(r#"{"model":"m","max\u005ftokens":9}"#), r#"{"model":"m","max_tokens":7}"#, "spelt with an escape");
        let r = parse(limited(r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#).as_bytes()).unwrap().output_limit();
        assert_eq!(r, Some(7));
        assert!(with_output_limit(b"[1]", 7).is_err());
    }

    #[test]
    fn media_parts_are_counted() {
        let body = r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"https://x/y.png"}},
            {"type":"file","file":{"file_id":"f"}}]},{"role":"user","content":"plain"}]}"#;
        assert_eq!(parse(body.as_bytes()).unwrap().media_parts(), 2);
    }
}
