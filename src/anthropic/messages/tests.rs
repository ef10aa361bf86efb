use super::*;
use serde_json::json;

fn req(body: serde_json::Value) -> Result<ChatRequest<'static>, ApiError> {
    let bytes: &'static [u8] = Box::leak(serde_json::to_vec(&body).unwrap().into_boxed_slice());
    parse(bytes)
}

fn err(body: serde_json::Value) -> ApiError {
    req(body).unwrap_err()
}

#[test]
fn a_conversation_maps_onto_the_representation() {
    let r = req(json!({
        "model": "claude-sonnet-4-5", "max_tokens": 100, "stream": true,
        "system": [{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral"}}],
        "messages": [
            {"role":"user","content":[
                {"type":"text","text":"What is in this picture?"},
                {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBOR"}},
                {"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBE"},"title":"a.pdf"}]},
            {"role":"assistant","content":[
                {"type":"thinking","thinking":"Look closer.","signature":"sig1"},
                {"type":"text","text":"Let me check."},
                {"type":"tool_use","id":"toolu_1","name":"zoom","input":{"factor":2}}]},
            {"role":"user","content":[
                {"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"a cat"}],"is_error":false},
                {"type":"tool_result","tool_use_id":"toolu_2","content":"failed","is_error":true},
                {"type":"text","text":"And now?"}]}
        ],
        "stop_sequences": ["END"], "temperature": 0.5, "top_p": 0.9, "top_k": 5,
        "metadata": {"user_id": "u-1"},
        "tools": [{"name":"zoom","description":"Zooms.","input_schema":{"type":"object"},"cache_control":{"type":"ephemeral"}},
                  {"type":"web_search_20250305","name":"web_search"}],
        "tool_choice": {"type":"any","disable_parallel_tool_use":true},
        "thinking": {"type":"enabled","budget_tokens":4000},
        "service_tier": "auto"
    }))
    .unwrap();
    assert_eq!((&*r.model, r.stream, r.max_tokens, r.temperature, r.top_p), ("claude-sonnet-4-5", true, Some(100), Some(0.5), Some(0.9)));
    assert_eq!(r.stop, vec![Str::from("END")]);
    assert_eq!(r.user.as_deref(), Some("u-1"));
    let roles: Vec<Role> = r.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::System, Role::User, Role::Assistant, Role::Tool, Role::Tool, Role::User]);
    let Some(Content::Parts(system)) = &r.messages[0].content else { panic!() };
    assert_eq!(
        (system[0].text.as_deref(), system[0].cache_control.map(RawValue::get)),
        (Some("Be brief."), Some(r#"{"type":"ephemeral"}"#))
    );
    let Some(Content::Parts(user)) = &r.messages[1].content else { panic!() };
    assert_eq!(user[1].image_url.as_ref().map(|u| &*u.url), Some("data:image/png;base64,iVBOR"));
    let file = user[2].file.as_ref().unwrap();
    assert_eq!((file.file_data.as_deref(), file.filename.as_deref()), (Some("data:application/pdf;base64,JVBE"), Some("a.pdf")));
    let assistant = &r.messages[2];
    let Some(Content::Parts(parts)) = &assistant.content else { panic!() };
    assert_eq!(
        (&*parts[0].kind, parts[0].thinking.as_deref(), parts[0].signature.as_deref()),
        ("thinking", Some("Look closer."), Some("sig1"))
    );
    let call = &assistant.tool_calls.as_ref().unwrap()[0];
    assert_eq!((&*call.id, &*call.function.name, &*call.function.arguments), ("toolu_1", "zoom", r#"{"factor":2}"#));
    assert_eq!((r.messages[3].tool_call_id.as_deref(), r.messages[3].is_error), (Some("toolu_1"), false));
    assert_eq!((r.messages[4].tool_call_id.as_deref(), r.messages[4].is_error), (Some("toolu_2"), true));
    assert_eq!(r.tools[0].function.as_ref().map(|f| &*f.name), Some("zoom"));
    assert!(r.tools[0].cache_control.is_some());
    assert_eq!((&*r.tools[1].kind, r.tools[1].function.is_none()), ("web_search_20250305", true), "a server tool stays itself");
    assert_eq!(r.tool_choice, Some(ToolChoice::Mode(Str::from("required"))));
    assert_eq!(r.parallel_tool_calls, Some(false));
    assert_eq!(r.extra("reasoning_effort").map(RawValue::get), Some("\"medium\""));
    assert_eq!(r.extra("top_k").map(RawValue::get), Some("5"));
    assert!(r.extra("service_tier").is_none(), "changes nothing");
    assert!(r.has_thinking());
}

#[test]
fn tool_choices_and_thinking_budgets() {
    let base = json!({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],
        "tools":[{"name":"f","input_schema":{"type":"object"}}]});
    let choice = |c: serde_json::Value| {
        let mut b = base.clone();
        b["tool_choice"] = c;
        let r = req(b).unwrap();
        (r.tool_choice, r.parallel_tool_calls)
    };
    assert_eq!(choice(json!({"type":"auto"})), (Some(ToolChoice::Mode(Str::from("auto"))), None));
    assert_eq!(choice(json!({"type":"none"})), (Some(ToolChoice::Mode(Str::from("none"))), None));
    assert_eq!(choice(json!({"type":"tool","name":"f"})), (Some(ToolChoice::Function(Str::from("f"))), None));
    assert_eq!(choice(json!({"type":"auto","disable_parallel_tool_use":false})).1, Some(true));
    let effort = |t: serde_json::Value| {
        let mut b = base.clone();
        b["thinking"] = t;
        req(b).unwrap().extra("reasoning_effort").map(|v| v.get().to_owned())
    };
    assert_eq!(effort(json!({"type":"enabled","budget_tokens":1024})).as_deref(), Some("\"minimal\""));
    assert_eq!(effort(json!({"type":"enabled","budget_tokens":2048})).as_deref(), Some("\"low\""));
    assert_eq!(effort(json!({"type":"enabled","budget_tokens":16384})).as_deref(), Some("\"high\""));
    assert_eq!(effort(json!({"type":"enabled","budget_tokens":32000})).as_deref(), Some("\"xhigh\""));
    assert_eq!(effort(json!({"type":"adaptive"})).as_deref(), Some("\"medium\""));
    assert_eq!(effort(json!({"type":"disabled"})), None);
}

#[test]
fn bad_requests_name_the_field_as_the_client_wrote_it() {
    let user = json!([{"role":"user","content":"x"}]);
    let cases = [
        (json!({"max_tokens":5,"messages":user}), "model"),
        (json!({"model":"m","messages":user}), "max_tokens"),
        (json!({"model":"m","max_tokens":0,"messages":user}), "max_tokens"),
        (json!({"model":"m","max_tokens":5}), "messages"),
        (json!({"model":"m","max_tokens":5,"messages":[]}), "messages"),
        (json!({"model":"m","max_tokens":5,"messages":[{"role":"system","content":"x"}]}), "messages.0.role"),
        (json!({"model":"m","max_tokens":5,"messages":user,"temperature":1.5}), "temperature"),
        (json!({"model":"m","max_tokens":5,"messages":user,"system":[{"type":"image"}]}), "system.0.type"),
        (
            json!({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_result"}]}]}),
            "messages.0.content.0.tool_use_id",
        ),
        (
            json!({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64"}}]}]}),
            "messages.0.content.0.source",
        ),
        (
            json!({"model":"m","max_tokens":5,"messages":[{"role":"assistant","content":[{"type":"tool_use","name":"f"}]}]}),
            "messages.0.content.0",
        ),
        (json!({"model":"m","max_tokens":5,"messages":user,"tools":[{"name":"","input_schema":{}}]}), "tools.0.name"),
        (json!({"model":"m","max_tokens":5,"messages":user,"tool_choice":{"type":"tool","name":"g"}}), "tool_choice.name"),
        (json!({"model":"m","max_tokens":5,"messages":user,"tool_choice":{"type":"maybe"}}), "tool_choice.type"),
        (json!({"model":"m","max_tokens":5,"messages":user,"thinking":{"type":"enabled"}}), "thinking.budget_tokens"),
        (json!({"model":"m","max_tokens":5,"messages":[{"role":"user","content":5}]}), "messages[0].content"),
    ];
    for (body, param) in cases {
        let e = err(body.clone());
        assert_eq!((e.status, e.param.as_deref()), (400, Some(param)), "{body}: {e:?}");
    }
    assert!(parse(b"").is_err());
    assert!(parse(b"{\"model\":").unwrap_err().message.contains("not valid JSON"));
    let deep = format!("{{\"model\":\"m\",\"max_tokens\":5,\"messages\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
    assert_eq!(parse(deep.as_bytes()).unwrap_err().code.as_deref(), Some("nesting_too_deep"));
}

#[test]
fn count_tokens_needs_no_max_tokens() {
    let body = br#"{"model":"m","messages":[{"role":"user","content":"count me"}]}"#;
    assert!(parse(body).is_err());
    let r = parse_count_tokens(body).unwrap();
    assert_eq!((r.max_tokens, r.text_bytes()), (None, 8));
}

#[test]
fn the_output_limit_is_set_in_max_tokens_only() {
    let limited = with_output_limit(br#"{"model":"m","max_tokens":900,"stream":true}"#, 7).unwrap();
    assert_eq!(limited, br#"{"model":"m","stream":true,"max_tokens":7}"#);
}

#[test]
fn fields_of_the_representation_are_named_as_messages_clients_write_them() {
    use crate::client::{Dialect, field_name, in_client_terms};
    let m = Dialect::AnthropicMessages;
    assert_eq!(field_name(m, "stop"), "stop_sequences");
    assert_eq!(field_name(m, "reasoning_effort"), "thinking");
    assert_eq!(field_name(m, "tools[3].function.strict"), "tools[3].strict");
    assert_eq!(field_name(m, "top_k"), "top_k");
    assert_eq!(field_name(Dialect::OpenAiChat, "stop"), "stop", "chat's names are the representation's");
    assert_eq!(field_name(Dialect::OpenAiResponses, "max_tokens"), "max_output_tokens");
    let e = in_client_terms(m, ApiError::invalid_param("stop", "Parameter `stop` is not supported by provider `p`."));
    assert_eq!(
        (e.param.as_deref(), e.message.as_str()),
        (Some("stop_sequences"), "Parameter `stop_sequences` is not supported by provider `p`.")
    );
}
