use super::*;
use serde_json::json;

fn req(body: serde_json::Value) -> Result<ChatRequest<'static>, ApiError> {
    let bytes: &'static [u8] = Box::leak(serde_json::to_vec(&body).unwrap().into_boxed_slice());
    parse(bytes)
}

#[test]
fn items_map_onto_the_representation() {
    let r = req(json!({
        "model": "gpt-5", "instructions": "Be brief.", "stream": true, "store": false,
        "include": ["reasoning.encrypted_content"],
        "input": [
            {"role": "user", "content": "What is the weather?"},
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Use tools."}]},
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAA"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking.", "annotations": []}]},
            {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{\"city\":\"Paris\"}"},
            {"type": "function_call", "call_id": "call_2", "name": "time", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
            {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "noon"}]},
            {"role": "user", "content": [{"type": "input_image", "image_url": "https://x/y.png", "detail": "low"},
                                         {"type": "input_file", "file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}]},
            {"type": "web_search_call", "id": "ws_1", "status": "completed"}
        ],
        "tools": [{"type": "function", "name": "weather", "parameters": {"type": "object"}, "strict": true},
                  {"type": "function", "name": "time"}, {"type": "web_search"}],
        "tool_choice": {"type": "function", "name": "weather"}, "parallel_tool_calls": false,
        "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": true}},
        "reasoning": {"effort": "high", "summary": "auto"},
        "max_output_tokens": 500, "temperature": 0.3, "top_p": 0.8, "metadata": {"a": "b"}, "user": "u-1",
        "previous_response_id": "resp_0"
    }))
    .unwrap();
    let roles: Vec<Role> = r.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::System, Role::User, Role::Developer, Role::Assistant, Role::Tool, Role::Tool, Role::User]);
    let calls = r.messages[3].tool_calls.as_ref().unwrap();
    assert_eq!(
        calls.iter().map(|c| (&*c.id, &*c.function.name)).collect::<Vec<_>>(),
        [("call_1", "weather"), ("call_2", "time")],
        "calls join the assistant turn before them"
    );
    assert_eq!(r.messages[3].content.as_ref().unwrap().text(), "Checking.");
    assert_eq!(r.messages[4].tool_call_id.as_deref(), Some("call_1"));
    assert_eq!(r.messages[5].content.as_ref().unwrap().text(), "noon");
    let Some(Content::Parts(media)) = &r.messages[6].content else { panic!() };
    assert_eq!(media[0].image_url.as_ref().map(|u| (&*u.url, u.detail.as_deref())), Some(("https://x/y.png", Some("low"))));
    assert_eq!(media[1].file.as_ref().and_then(|f| f.filename.as_deref()), Some("a.pdf"));
    assert_eq!(r.left_out, ["input[2]"], "reasoning items are noted");
    assert!(r.extra("input[9]").is_some(), "a built-in tool's item is for OpenAI alone");
    assert!(r.extra("previous_response_id").is_some());
    assert!(r.extra("store").is_none() && r.extra("include").is_none());
    assert_eq!((r.tools.len(), r.tools[2].function.is_none()), (3, true));
    assert_eq!(r.tool_choice, Some(ToolChoice::Function(Str::from("weather"))));
    assert_eq!(r.parallel_tool_calls, Some(false));
    let format = r.response_format.as_ref().unwrap();
    assert_eq!(&*format.kind, "json_schema");
    assert!(format.json_schema.unwrap().get().contains("\"schema\""));
    assert_eq!(r.extra("reasoning_effort").map(RawValue::get), Some("\"high\""));
    assert_eq!((r.max_tokens, r.temperature, r.top_p, r.user.as_deref()), (Some(500), Some(0.3), Some(0.8), Some("u-1")));
    assert_eq!(r.metadata.map(RawValue::get), Some(r#"{"a":"b"}"#));
    assert!(r.stream);
}

#[test]
fn a_string_input_is_one_user_message() {
    let r = req(json!({"model": "m", "input": "hi"})).unwrap();
    assert_eq!((r.messages.len(), r.messages[0].role), (1, Role::User));
}

#[test]
fn bad_requests_name_the_field() {
    let cases = [
        (json!({"input": "x"}), "model"),
        (json!({"model": "m"}), "input"),
        (json!({"model": "m", "input": "x", "max_output_tokens": 0}), "max_output_tokens"),
        (json!({"model": "m", "input": "x", "temperature": 3}), "temperature"),
        (json!({"model": "m", "input": [{"role": "wizard", "content": "x"}]}), "input[0].role"),
        (json!({"model": "m", "input": [{"role": "user"}]}), "input[0].content"),
        (json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_video"}]}]}), "input[0].content[0].type"),
        (json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_text"}]}]}), "input[0].content[0].text"),
        (json!({"model": "m", "input": [{"type": "function_call", "name": "f"}]}), "input[0].call_id"),
        (json!({"model": "m", "input": [{"type": "function_call_output"}]}), "input[0].call_id"),
        (json!({"model": "m", "input": [5]}), "input[0]"),
        (json!({"model": "m", "input": "x", "tools": [{"type": "function"}]}), "tools[0].name"),
        (json!({"model": "m", "input": "x", "tool_choice": "sometimes"}), "tool_choice"),
        (json!({"model": "m", "input": "x", "tool_choice": {"type": "function", "name": "g"}}), "tool_choice"),
        (json!({"model": "m", "input": "x", "text": {"format": {"kind": "x"}}}), "text.format"),
    ];
    for (body, param) in cases {
        let e = req(body.clone()).unwrap_err();
        assert_eq!((e.status, e.param.as_deref()), (400, Some(param)), "{body}: {e:?}");
    }
}

#[test]
fn the_output_limit_is_set_in_max_output_tokens() {
    assert_eq!(with_output_limit(br#"{"model":"m","max_output_tokens":900}"#, 7).unwrap(), br#"{"model":"m","max_output_tokens":7}"#);
}
