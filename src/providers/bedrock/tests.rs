use super::super::test_support::{self, body_of, chunks_of, content_of, finish_reasons, last_event, tool_call_deltas, user};
use super::*;
use crate::config::Config;
use crate::openai::embeddings as openai_embeddings;
use crate::stream::Decoder;
use crate::stream::eventstream::tests::{event, frame};
use serde_json::{Value, json};

const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const MODEL: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";
/// 2015-08-30T12:36:00Z, the SigV4 test suite's time.
const NOW_MS: u64 = 1_440_938_160_000;

fn env(name: &str) -> Option<String> {
    match name {
        "AWS_ACCESS_KEY_ID" | "MY_KEY" => Some(AKID.into()),
        "AWS_SECRET_ACCESS_KEY" | "MY_SECRET" => Some(format!(" {SECRET}\n")),
        "MY_TOKEN" => Some("session-token-1".into()),
        _ => None,
    }
}

fn compile_with(extra: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, crate::schema::ConfigError> {
    let json = format!(
        r#"{{"providers":{{"bedrock":{{"kind":"bedrock","cluster":"c","region":"us-east-1"{extra}}}}},
            "models":{{"claude":{{"provider":"bedrock","model":"{MODEL}"}}}}}}"#
    );
    Config::from_json(json.as_bytes(), env, 0)
}

fn config(extra: &str) -> Config {
    compile_with(extra, &env).unwrap()
}

fn settings(c: &Config) -> &Settings {
    match &c.providers[0].settings {
        super::super::KindSettings::Bedrock(s) => s,
        _ => panic!(),
    }
}

fn build_with(c: &Config, body: &Value) -> Result<(Value, UpstreamRequest, Edits), ApiError> {
    test_support::build(body, |req, edits| build_request(&c.providers[0], settings(c), req, MODEL, NOW_MS, edits))
}

fn translate(body: Value) -> Value {
    build_with(&config(""), &body).unwrap().0
}

fn translate_err(body: Value) -> ApiError {
    build_with(&config(""), &body).err().unwrap()
}

fn header<'b>(built: &'b UpstreamRequest, name: &str) -> Option<&'b str> {
    built.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
}

// ---- configuration -----------------------------------------------------------------------------

#[test]
fn compiles_host_paths_and_credentials_from_the_environment() {
    let c = config("");
    let p = &c.providers[0];
    assert_eq!(p.authority, "bedrock-runtime.us-east-1.amazonaws.com");
    assert_eq!(p.base_path, "");
    assert!(p.auth.is_none());
    assert_eq!(p.headers, vec![("content-type", "application/json".to_string())]);
    assert!(p.missing_key_env.is_none());
    let creds = settings(&c).credentials.as_ref().unwrap();
    assert_eq!((creds.access_key_id.expose(), creds.secret_access_key.expose()), (AKID, SECRET), "values are trimmed");
    assert!(creds.session_token.is_none(), "AWS_SESSION_TOKEN is optional");
    let c = config(
        r#","host":"vpce.example.com","aws_access_key_id_env":"MY_KEY","aws_secret_access_key_env":"MY_SECRET","aws_session_token_env":"MY_TOKEN""#,
    );
    assert_eq!(c.providers[0].authority, "vpce.example.com");
    assert_eq!(settings(&c).credentials.as_ref().unwrap().session_token.as_ref().unwrap().expose(), "session-token-1");
    let dump = format!("{c:?}");
    assert!(!dump.contains(SECRET) && !dump.contains(AKID) && !dump.contains("session-token-1"), "{dump}");
}

#[test]
fn missing_credentials_load_with_warnings_and_fail_requests() {
    let c = compile_with("", &|_| None).unwrap();
    let p = &c.providers[0];
    assert_eq!(p.missing_key_env.as_deref(), Some("AWS_ACCESS_KEY_ID"));
    assert!(c.warnings.iter().any(|w| w.contains("AWS_ACCESS_KEY_ID")), "{:?}", c.warnings);
    assert!(c.warnings.iter().any(|w| w.contains("AWS_SECRET_ACCESS_KEY")), "{:?}", c.warnings);
    // an explicitly named session token variable is required
    let c = config(r#","aws_session_token_env":"NOT_SET""#);
    assert_eq!(c.providers[0].missing_key_env.as_deref(), Some("NOT_SET"));
}

#[test]
fn config_errors_name_the_field() {
    let err = |json: &str| Config::from_json(json.as_bytes(), &env, 0).unwrap_err();
    let models = r#""models":{"m":{"provider":"b"}}"#;
    for (provider, field) in [
        (r#"{"kind":"bedrock","cluster":"c"}"#, "providers.b.region"),
        (r#"{"kind":"bedrock","cluster":"c","region":"US East"}"#, "providers.b.region"),
        (r#"{"kind":"bedrock","cluster":"c","region":"us-east-1","api_key_env":"K"}"#, "providers.b.api_key_env"),
        (r#"{"kind":"bedrock","cluster":"c","region":"us-east-1","api_version":"v"}"#, "providers.b.api_version"),
        (r#"{"kind":"bedrock","cluster":"c","region":"us-east-1","project":"p"}"#, "providers.b.project"),
        (r#"{"kind":"bedrock","cluster":"c","region":"us-east-1","aws_access_key_id_env":" "}"#, "providers.b.aws_access_key_id_env"),
        (r#"{"kind":"anthropic","cluster":"c","api_key_env":"K","region":"us-east-1"}"#, "providers.b.region"),
    ] {
        let e = err(&format!(r#"{{"providers":{{"b":{provider}}},{models}}}"#));
        assert_eq!(e.field, field, "{provider}: {e}");
    }
}

// ---- signing -----------------------------------------------------------------------------------

#[test]
fn requests_are_signed_over_the_final_body() {
    let (_, built, _) = build_with(&config(""), &json!({"model":"claude","messages":[user("hi")]})).unwrap();
    let body = built.body.as_ref().unwrap();
    assert_eq!(built.path.as_deref(), Some("/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"));
    let names: Vec<&str> = built.headers.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["x-amz-date", "x-amz-content-sha256", "authorization"]);
    assert_eq!(header(&built, "x-amz-date"), Some("20150830T123600Z"));
    assert_eq!(header(&built, "x-amz-content-sha256"), Some(sigv4::sha256_hex(body).as_str()));
    // recomputed the way the service does, from what is sent
    let headers = [
        ("host", "bedrock-runtime.us-east-1.amazonaws.com"),
        ("x-amz-content-sha256", header(&built, "x-amz-content-sha256").unwrap()),
        ("x-amz-date", "20150830T123600Z"),
    ];
    let scope = sigv4::Scope {
        access_key_id: AKID,
        secret_access_key: SECRET,
        region: "us-east-1",
        service: "bedrock",
        amz_date: "20150830T123600Z",
    };
    let expected = sigv4::sign(
        &scope,
        &sigv4::Request {
            method: "POST",
            path: built.path.as_deref().unwrap(),
            headers: &headers,
            payload_sha256: &sigv4::sha256_hex(body),
        },
    )
    .unwrap();
    assert!(expected.canonical_request.contains("\n/model/anthropic.claude-3-5-sonnet-20240620-v1%253A0/converse\n"));
    assert_eq!(header(&built, "authorization"), Some(expected.authorization.as_str()));
    assert!(
        expected.authorization.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature="
        )
    );
    let dump = format!("{built:?}");
    assert!(!dump.contains("Signature=") && !dump.contains(SECRET), "{dump}");
}

#[test]
fn session_tokens_are_sent_and_signed() {
    let c = config(r#","aws_access_key_id_env":"MY_KEY","aws_secret_access_key_env":"MY_SECRET","aws_session_token_env":"MY_TOKEN""#);
    let (_, built, _) = build_with(&c, &json!({"model":"claude","messages":[user("hi")],"stream":true})).unwrap();
    assert_eq!(built.path.as_deref(), Some("/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"));
    assert_eq!(header(&built, "x-amz-security-token"), Some("session-token-1"));
    assert!(header(&built, "authorization").unwrap().contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,"));
    let dump = format!("{built:?}");
    assert!(!dump.contains("session-token-1"), "{dump}");
}

// ---- requests ----------------------------------------------------------------------------------

#[test]
fn system_messages_inference_config_and_stream_path() {
    let out = translate(json!({"model":"claude","messages":[
        {"role":"system","content":"Be brief."},
        {"role":"developer","content":[{"type":"text","text":"Use French.","cache_control":{"type":"ephemeral"}}]},
        user("Hi")],
        "max_tokens":77,"max_completion_tokens":55,"temperature":0.3,"top_p":0.8,"stop":"END","user":"u-1","store":true}));
    assert_eq!(
        out,
        json!({
            "system":[{"text":"Be brief."},{"text":"Use French."},{"cachePoint":{"type":"default"}}],
            "messages":[{"role":"user","content":[{"text":"Hi"}]}],
            "inferenceConfig":{"maxTokens":55,"temperature":0.3,"topP":0.8,"stopSequences":["END"]}
        })
    );
    let out = translate(json!({"model":"claude","messages":[user("x")]}));
    assert_eq!(out, json!({"messages":[{"role":"user","content":[{"text":"x"}]}]}), "no empty members");
}

#[test]
fn images_become_inline_image_blocks() {
    let out = translate(json!({"model":"claude","messages":[{"role":"user","content":[
        {"type":"text","text":"What is this?"},
        {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},
        {"type":"image_url","image_url":{"url":"data:image/jpeg;base64,/9j/4AAQ"},"cache_control":{"type":"ephemeral"}},
        {"type":"image_url","image_url":{"url":"data:image/webp;base64,UklGR"}},
        {"type":"image_url","image_url":{"url":"data:image/gif;base64,R0lGOD"}}]}]}));
    assert_eq!(
        out["messages"][0]["content"],
        json!([
            {"text":"What is this?"},
            {"image":{"format":"png","source":{"bytes":"iVBORw0KGgo="}}},
            {"image":{"format":"jpeg","source":{"bytes":"/9j/4AAQ"}}},
            {"cachePoint":{"type":"default"}},
            {"image":{"format":"webp","source":{"bytes":"UklGR"}}},
            {"image":{"format":"gif","source":{"bytes":"R0lGOD"}}}
        ])
    );
}

#[test]
fn unusable_media_is_a_clear_400() {
    for (part, words) in [
        (json!({"type":"image_url","image_url":{"url":"https://example.com/cat.jpg"}}), "inline only"),
        (json!({"type":"image_url","image_url":{"url":"data:image/png,abc"}}), "Data URLs"),
        (json!({"type":"image_url","image_url":{"url":"data:image/bmp;base64,Qk0="}}), "not supported by Bedrock"),
        (json!({"type":"file","file":{"file_data":"data:application/pdf;base64,JVBERi0="}}), "`file`"),
        (json!({"type":"input_audio","input_audio":{"data":"x","format":"wav"}}), "`input_audio`"),
    ] {
        let e = translate_err(json!({"model":"claude","messages":[{"role":"user","content":[part]}]}));
        assert_eq!((e.status, e.param.as_deref()), (400, Some("messages[0].content[0]")), "{e:?}");
        assert!(e.message.contains(words), "{}", e.message);
    }
}

const WEATHER: &str = r#"{"type":"function","function":{"name":"get_weather","description":"Weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}"#;

fn weather() -> Value {
    serde_json::from_str(WEATHER).unwrap()
}

#[test]
fn tools_round_trip_with_merged_tool_results() {
    let out = translate(json!({"model":"claude",
    "tools":[weather(), {"type":"function","function":{"name":"now"}}],
    "tool_choice":"required",
    "messages":[
        user("Weather in Paris and time?"),
        {"role":"assistant","content":"Checking.","tool_calls":[
            {"id":"tooluse_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
            {"id":"tooluse_2","type":"function","function":{"name":"now","arguments":""}}]},
        {"role":"tool","tool_call_id":"tooluse_1","content":"{\"temp\": 18}"},
        {"role":"tool","tool_call_id":"tooluse_2","content":[{"type":"text","text":"noon"}]},
        user("Thanks"),
    ]}));
    assert_eq!(
        out["toolConfig"],
        json!({"tools":[
            {"toolSpec":{"name":"get_weather","description":"Weather","inputSchema":{"json":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}},
            {"toolSpec":{"name":"now","inputSchema":{"json":{"type":"object","properties":{}}}}}],
        "toolChoice":{"any":{}}})
    );
    assert_eq!(
        out["messages"],
        json!([
        {"role":"user","content":[{"text":"Weather in Paris and time?"}]},
        {"role":"assistant","content":[
            {"text":"Checking."},
            {"toolUse":{"toolUseId":"tooluse_1","name":"get_weather","input":{"city":"Paris"}}},
            {"toolUse":{"toolUseId":"tooluse_2","name":"now","input":{}}}]},
        {"role":"user","content":[
            {"toolResult":{"toolUseId":"tooluse_1","content":[{"json":{"temp":18}}]}},
            {"toolResult":{"toolUseId":"tooluse_2","content":[{"text":"noon"}]}},
            {"text":"Thanks"}]}])
    );
}

#[test]
fn tool_results_open_the_user_turn_and_are_never_empty() {
    let out = translate(json!({"model":"claude","tools":[weather()],"messages":[
        user("go"),
        {"role":"assistant","content":null,"tool_calls":[{"id":"t1","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},
        user("first"),
        {"role":"tool","tool_call_id":"t1","content":""}]}));
    assert_eq!(out["messages"][2]["content"], json!([{"toolResult":{"toolUseId":"t1","content":[{"text":"(empty)"}]}},{"text":"first"}]));
    let out = translate(json!({"model":"claude","tools":[weather()],"messages":[
        user("go"),
        {"role":"assistant","tool_calls":[{"id":"t1","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},
        {"role":"tool","tool_call_id":"t1","content":[{"type":"text","text":"[1, 2]"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBO"}}]}]}));
    assert_eq!(
        out["messages"][2]["content"][0]["toolResult"]["content"],
        json!([{"text":"[1, 2]"},{"image":{"format":"png","source":{"bytes":"iVBO"}}}])
    );
}

#[test]
fn consecutive_same_role_messages_merge_and_the_first_turn_is_the_users() {
    let out = translate(
        json!({"model":"claude","messages":[user("a"),user("b"),{"role":"assistant","content":"c"},{"role":"assistant","content":""},{"role":"assistant","content":"d"}]}),
    );
    assert_eq!(
        out["messages"],
        json!([{"role":"user","content":[{"text":"a"},{"text":"b"}]},{"role":"assistant","content":[{"text":"c"},{"text":"d"}]}])
    );
    let e =
        translate_err(json!({"model":"claude","messages":[{"role":"system","content":"s"},{"role":"assistant","content":"hi"},user("x")]}));
    assert_eq!((e.status, e.param.as_deref()), (400, Some("messages[1].role")));
}

#[test]
fn tool_choice_variants() {
    let cases = [
        (json!("auto"), json!({"auto":{}})),
        (json!("required"), json!({"any":{}})),
        (json!({"type":"function","function":{"name":"get_weather"}}), json!({"tool":{"name":"get_weather"}})),
        (Value::Null, Value::Null),
    ];
    for (choice, expected) in cases {
        let mut body = json!({"model":"claude","messages":[user("x")],"tools":[weather()]});
        if !choice.is_null() {
            body["tool_choice"] = choice.clone();
        }
        let out = translate(body);
        assert_eq!(out["toolConfig"].get("toolChoice").cloned().unwrap_or(Value::Null), expected, "{choice}");
        assert_eq!(out["toolConfig"]["tools"][0]["toolSpec"]["name"], "get_weather");
    }
    // parallel calls cannot be limited
    let e = translate_err(json!({"model":"claude","messages":[user("x")],"tools":[weather()],"parallel_tool_calls":false}));
    assert_eq!(e.param.as_deref(), Some("parallel_tool_calls"));
    translate(json!({"model":"claude","messages":[user("x")],"tools":[weather()],"parallel_tool_calls":true}));
}

#[test]
fn tool_choice_none_withholds_the_tools_unless_the_history_needs_them() {
    let out = translate(json!({"model":"claude","messages":[user("x")],"tools":[weather()],"tool_choice":"none"}));
    assert!(out.get("toolConfig").is_none(), "{out}");
    let history = json!([
        user("go"),
        {"role":"assistant","tool_calls":[{"id":"t1","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},
        {"role":"tool","tool_call_id":"t1","content":"sunny"}]);
    let body = json!({"model":"claude","messages":history,"tools":[weather()],"tool_choice":"none"});
    let e = translate_err(body.clone());
    assert_eq!((e.status, e.param.as_deref(), e.code.as_deref()), (400, Some("tool_choice"), Some("unsupported_parameter")));
    let (out, _, edits) = build_with(&config(r#","drop_unsupported":true"#), &body).unwrap();
    assert_eq!(edits.dropped, vec!["tool_choice"]);
    assert_eq!(
        out["toolConfig"],
        json!({"tools":[{"toolSpec":{"name":"get_weather","description":"Weather","inputSchema":{"json":weather()["function"]["parameters"]}}}]})
    );
}

#[test]
fn unsupported_parameters_are_400_or_dropped_by_config() {
    let params = vec![
        ("n", json!(2)),
        ("logprobs", json!(true)),
        ("presence_penalty", json!(0.5)),
        ("frequency_penalty", json!(1)),
        ("response_format", json!({"type":"json_object"})),
        ("seed", json!(1)),
        ("logit_bias", json!({"1":2})),
        ("reasoning_effort", json!("low")),
    ];
    test_support::assert_refused_or_dropped(&json!({"model":"claude","messages":[user("x")]}), params, |body, drop| {
        let (sent, _, edits) = build_with(&config(if drop { r#","drop_unsupported":true"# } else { "" }), body)?;
        Ok((sent, edits))
    });
    translate(
        json!({"model":"claude","messages":[user("x")],"n":1,"logprobs":false,"presence_penalty":0,"response_format":{"type":"text"}}),
    );
}

#[test]
fn invalid_input_for_bedrock_is_400_with_param() {
    let cases = [
        (json!({"model":"claude","messages":[user("x")],"temperature":1.5}), "temperature"),
        (
            json!({"model":"claude","messages":[user("x"),{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"[1]"}}]}]}),
            "messages[1].tool_calls[0].function.arguments",
        ),
        (json!({"model":"claude","messages":[{"role":"function","name":"f","content":"x"}]}), "messages[0].role"),
        (json!({"model":"claude","messages":[user("")]}), "messages[0].content"),
        (json!({"model":"claude","messages":[{"role":"system","content":"only system"}]}), "messages"),
        (
            json!({"model":"claude","messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AA"}}]},user("x")]}),
            "messages[0].content[0]",
        ),
    ];
    for (body, param) in cases {
        let e = translate_err(body.clone());
        assert_eq!((e.status, e.param.as_deref()), (400, Some(param)), "{body}: {e:?}");
    }
}

// ---- responses -----------------------------------------------------------------------------------

const TEXT_RESPONSE: &str = r#"{"output":{"message":{"role":"assistant","content":[{"text":"Hello"},{"text":" w\u00f6rld"}]}},
    "stopReason":"end_turn","usage":{"inputTokens":12,"outputTokens":6,"totalTokens":41,"cacheReadInputTokens":20,"cacheWriteInputTokens":3},
    "metrics":{"latencyMs":321}}"#;

const TOOL_RESPONSE: &str = r#"{"output":{"message":{"role":"assistant","content":[
    {"reasoningContent":{"reasoningText":{"text":"Need weather.","signature":"sig"}}},
    {"text":"Let me check."},
    {"toolUse":{"toolUseId":"tooluse_9","name":"get_weather","input":{"city":"Paris"}}}]}},
    "stopReason":"tool_use","usage":{"inputTokens":30,"outputTokens":9,"totalTokens":39},"metrics":{"latencyMs":1}}"#;

fn ctx() -> ResponseContext {
    ResponseContext { created: 1_750_000_000, model: MODEL.into(), ..Default::default() }
}

#[test]
fn text_response_translates_with_cached_usage() {
    let t = translate_response(&ctx(), TEXT_RESPONSE.as_bytes()).unwrap();
    let mut v = body_of(&t);
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-bedrock-"));
    v["id"] = json!("x");
    assert_eq!(
        v,
        json!({"id":"x","object":"chat.completion","created":1_750_000_000u64,"model":MODEL,
        "choices":[{"index":0,"message":{"role":"assistant","content":"Hello w\u{f6}rld","refusal":null},"logprobs":null,"finish_reason":"stop"}],
        "usage":{"prompt_tokens":35,"completion_tokens":6,"total_tokens":41,"prompt_tokens_details":{"cached_tokens":20,"cache_write_tokens":3},
                 "completion_tokens_details":{"reasoning_tokens":0}}})
    );
    assert_eq!(
        t.usage.unwrap(),
        Usage { input_tokens: 12, cache_read_tokens: 20, cache_write_tokens: 3, output_tokens: 6, reasoning_tokens: 0 }
    );
    let other = body_of(&translate_response(&ctx(), TEXT_RESPONSE.as_bytes()).unwrap());
    assert_ne!(other["id"], body_of(&t)["id"], "every completion gets its own id");
}

#[test]
fn tool_use_response_translates_to_tool_calls() {
    let t = translate_response(&ctx(), TOOL_RESPONSE.as_bytes()).unwrap();
    let v = body_of(&t);
    let msg = &v["choices"][0]["message"];
    assert_eq!(msg["content"], "Let me check.");
    assert_eq!(msg["reasoning_content"], "Need weather.");
    assert_eq!(
        msg["tool_calls"],
        json!([{"id":"tooluse_9","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}])
    );
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let only_tool = r#"{"output":{"message":{"role":"assistant","content":[{"toolUse":{"toolUseId":"t","name":"f","input":{}}}]}},"stopReason":"tool_use"}"#;
    let v = body_of(&translate_response(&ctx(), only_tool.as_bytes()).unwrap());
    assert_eq!(v["choices"][0]["message"]["content"], Value::Null);
}

#[test]
fn finish_reasons_map() {
    for (stop, finish) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
        ("something_new", "stop"),
    ] {
        assert_eq!(crate::openai::chat_answer::finish_reason(finish_reason(stop)), finish);
    }
}

#[test]
fn garbage_or_wrong_shape_is_502() {
    for body in [
        &b"not json"[..],
        br#"{"stopReason":"end_turn"}"#,
        br#"{"output":{"message":{"content":[{"toolUse":{"name":"f"}}]}},"stopReason":"tool_use"}"#,
    ] {
        let e = translate_response(&ctx(), body).unwrap_err();
        assert_eq!((e.status, e.code.as_deref()), (502, Some("bad_upstream_response")), "{}", String::from_utf8_lossy(body));
    }
}

#[test]
fn errors_map_type_and_status() {
    let cases = [
        (400, "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/", 400, "invalid_request_error", "invalid_request"),
        (403, "AccessDeniedException", 403, "permission_error", "access_denied"),
        (403, "InvalidSignatureException", 403, "authentication_error", "invalid_credentials"),
        (403, "UnrecognizedClientException", 403, "authentication_error", "invalid_credentials"),
        (404, "ResourceNotFoundException", 404, "invalid_request_error", "model_not_found"),
        (408, "ModelTimeoutException", 408, "api_error", "model_timeout"),
        (424, "ModelErrorException", 502, "api_error", "model_error"),
        (429, "ThrottlingException", 429, "rate_limit_error", "rate_limit_exceeded"),
        (429, "ModelNotReadyException", 429, "api_error", "model_not_ready"),
        (500, "InternalServerException", 500, "api_error", "internal_error"),
        (503, "ServiceUnavailableException", 503, "api_error", "service_unavailable"),
    ];
    for (status, kind, want_status, want_kind, want_code) in cases {
        let e = translate_error(status, Some(kind), br#"{"message":"it went wrong"}"#);
        assert_eq!((e.status, &*e.kind, e.code.as_deref()), (want_status, want_kind, Some(want_code)), "{kind}");
        assert_eq!(e.message, format!("{}: it went wrong", error_name(kind)));
    }
    // the type can also come in the body, the message capitalised
    let e = translate_error(429, None, br#"{"__type":"com.amazon.coral.availability#ThrottlingException","Message":"Rate exceeded"}"#);
    assert_eq!((e.status, e.code.as_deref(), e.message.as_str()), (429, Some("rate_limit_exceeded"), "ThrottlingException: Rate exceeded"));
    let e = translate_error(502, None, b"<html>upstream connect error</html>");
    assert_eq!((e.status, &*e.kind), (502, "api_error"));
    assert!(e.message.contains("upstream connect error"));
    let signature = json!({"message": "The request signature we calculated does not match the signature you provided.\n\nThe Canonical String for this request should have been\n'POST\n/\n\nx-amz-security-token:SECRET-TOKEN\n'"});
    let e = translate_error(403, Some("InvalidSignatureException"), signature.to_string().as_bytes());
    assert_eq!(e.message, "InvalidSignatureException: The request signature we calculated does not match the signature you provided.");
    let e = translate_error(418, Some("TeapotException"), b"");
    assert_eq!((e.status, e.code.as_deref()), (418, Some("TeapotException")));
    assert_eq!(translate_error(503, None, b"").message, "The provider answered HTTP 503.");
}

// ---- embeddings --------------------------------------------------------------------------------

fn embeddings_config() -> Config {
    let json = r#"{"providers":{"b":{"kind":"bedrock","cluster":"c","region":"eu-west-1"}},
        "models":{"titan":{"provider":"b","model":"amazon.titan-embed-text-v2:0"},
                  "cohere":{"provider":"b","model":"us.cohere.embed-english-v3"},
                  "claude":{"provider":"b","model":"anthropic.claude-3-haiku-20240307-v1:0"}}}"#;
    Config::from_json(json.as_bytes(), &env, 0).unwrap()
}

fn embed(model: &str, body: Value) -> Result<(Value, UpstreamRequest), ApiError> {
    let c = embeddings_config();
    let bytes = serde_json::to_vec(&body).unwrap();
    let req = openai_embeddings::parse(&bytes)?;
    let upstream = c.resolve(model).unwrap().upstream_model.into_owned();
    let built = build_embeddings(&c.providers[0], settings(&c), &req, &upstream, NOW_MS)?;
    Ok((serde_json::from_slice(built.body.as_ref().unwrap()).unwrap(), built))
}

#[test]
fn titan_embeds_one_text_per_call() {
    let (sent, built) = embed("titan", json!({"model":"titan","input":"hello","dimensions":256})).unwrap();
    assert_eq!(sent, json!({"inputText":"hello","dimensions":256}));
    assert_eq!(built.path.as_deref(), Some("/model/amazon.titan-embed-text-v2%3A0/invoke"));
    assert!(header(&built, "authorization").unwrap().contains("/20150830/eu-west-1/bedrock/aws4_request"));
    let (sent, _) = embed("titan", json!({"model":"titan","input":["only one"]})).unwrap();
    assert_eq!(sent, json!({"inputText":"only one"}));
    let e = embed("titan", json!({"model":"titan","input":["a","b"]})).unwrap_err();
    assert_eq!((e.status, e.param.as_deref()), (400, Some("input")));
    assert!(e.message.contains("one text per request"), "{}", e.message);
}

#[test]
fn cohere_embeds_a_batch_as_documents() {
    let (sent, built) = embed("cohere", json!({"model":"cohere","input":["a","b"]})).unwrap();
    assert_eq!(sent, json!({"texts":["a","b"],"input_type":"search_document"}));
    assert_eq!(built.path.as_deref(), Some("/model/us.cohere.embed-english-v3/invoke"));
    let e = embed("cohere", json!({"model":"cohere","input":"a","dimensions":256})).unwrap_err();
    assert_eq!(e.param.as_deref(), Some("dimensions"));
    let many: Vec<String> = (0..97).map(|i| i.to_string()).collect();
    assert_eq!(embed("cohere", json!({"model":"cohere","input":many})).unwrap_err().param.as_deref(), Some("input"));
}

#[test]
fn embeddings_refuse_token_ids_and_chat_models() {
    let e = embed("titan", json!({"model":"titan","input":[1,2,3]})).unwrap_err();
    assert_eq!((e.status, e.param.as_deref()), (400, Some("input")));
    let e = embed("claude", json!({"model":"claude","input":"x"})).unwrap_err();
    assert_eq!((e.status, e.param.as_deref()), (400, Some("model")));
}

fn embeddings_ctx(model: &str, base64: bool) -> ResponseContext {
    ResponseContext { operation: super::super::Operation::Embeddings, model: model.into(), base64, ..Default::default() }
}

#[test]
fn embedding_responses_become_openai_lists() {
    let titan = br#"{"embedding":[0.5,-0.25],"embeddingsByType":{"float":[0.5,-0.25]},"inputTextTokenCount":4}"#;
    let t = translate_embeddings(&embeddings_ctx("amazon.titan-embed-text-v2:0", false), titan).unwrap();
    assert_eq!(
        body_of(&t),
        json!({"object":"list","model":"amazon.titan-embed-text-v2:0","usage":{"prompt_tokens":4,"total_tokens":4},
               "data":[{"object":"embedding","index":0,"embedding":[0.5,-0.25]}]})
    );
    assert_eq!(t.usage.unwrap().input_tokens, 4);
    let t = translate_embeddings(&embeddings_ctx("amazon.titan-embed-text-v2:0", true), titan).unwrap();
    assert_eq!(body_of(&t)["data"][0]["embedding"], "AAAAPwAAgL4=");

    let cohere = br#"{"embeddings":[[0.1,0.2],[0.3,0.4]],"id":"e1","response_type":"embeddings_floats","texts":["a","b"]}"#;
    let t = translate_embeddings(&embeddings_ctx("cohere.embed-english-v3", false), cohere).unwrap();
    let v = body_of(&t);
    assert_eq!(v["data"][1], json!({"object":"embedding","index":1,"embedding":[0.3,0.4]}));
    assert!(t.usage.is_none(), "Cohere on Bedrock reports no token count here");
    let by_type = br#"{"embeddings":{"float":[[1.0]]},"meta":{"billed_units":{"input_tokens":7}},"response_type":"embeddings_by_type"}"#;
    let t = translate_embeddings(&embeddings_ctx("cohere.embed-v4:0", false), by_type).unwrap();
    assert_eq!((body_of(&t)["data"][0]["embedding"].clone(), t.usage.unwrap().input_tokens), (json!([1.0]), 7));
    let e = translate_embeddings(&embeddings_ctx("cohere.embed-v4:0", false), br#"{"embeddings":"nope"}"#).unwrap_err();
    assert_eq!(e.status, 502);
    let e = translate_embeddings(&embeddings_ctx("amazon.titan-embed-text-v2:0", false), b"{}").unwrap_err();
    assert_eq!(e.status, 502);
}

// ---- streaming -------------------------------------------------------------------------------

fn text_stream() -> Vec<u8> {
    let mut body = event("messageStart", r#"{"p":"abcdefghijklmnopqrstu","role":"assistant"}"#);
    body.extend(event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":"Hello"},"p":"abcdef"}"#));
    body.extend(event("contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"text\":\" w\u{f6}rld\"},\"p\":\"abcdefghij\"}"));
    body.extend(event("contentBlockStop", r#"{"contentBlockIndex":0,"p":"abcdefghijklmn"}"#));
    body.extend(event("messageStop", r#"{"p":"abcdefgh","stopReason":"end_turn"}"#));
    body.extend(event(
        "metadata",
        r#"{"metrics":{"latencyMs":321},"p":"abc","usage":{"cacheReadInputTokens":20,"cacheWriteInputTokens":3,"inputTokens":12,"outputTokens":6,"totalTokens":41}}"#,
    ));
    body
}

fn tool_stream() -> Vec<u8> {
    let mut body = event("messageStart", r#"{"role":"assistant"}"#);
    body.extend(event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"reasoningContent":{"text":"Need weather."}}}"#));
    body.extend(event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"reasoningContent":{"signature":"sig"}}}"#));
    body.extend(event("contentBlockStop", r#"{"contentBlockIndex":0}"#));
    body.extend(event("contentBlockDelta", r#"{"contentBlockIndex":1,"delta":{"text":"Let me check."}}"#));
    body.extend(event("contentBlockStop", r#"{"contentBlockIndex":1}"#));
    body.extend(event(
        "contentBlockStart",
        r#"{"contentBlockIndex":2,"start":{"toolUse":{"toolUseId":"tooluse_9","name":"get_weather"}}}"#,
    ));
    body.extend(event("contentBlockDelta", r#"{"contentBlockIndex":2,"delta":{"toolUse":{"input":""}}}"#));
    body.extend(event("contentBlockDelta", r#"{"contentBlockIndex":2,"delta":{"toolUse":{"input":"{\"city\": \"Par"}}}"#));
    body.extend(event("contentBlockDelta", r#"{"contentBlockIndex":2,"delta":{"toolUse":{"input":"is\"}"}}}"#));
    body.extend(event("contentBlockStop", r#"{"contentBlockIndex":2}"#));
    body.extend(event("messageStop", r#"{"stopReason":"tool_use"}"#));
    body.extend(event("metadata", r#"{"usage":{"inputTokens":30,"outputTokens":9,"totalTokens":39},"metrics":{"latencyMs":1}}"#));
    body
}

/// The per-stream id is replaced so runs can be compared.
fn run(chunks: &[&[u8]], wants_usage: bool) -> (String, ConverseStream) {
    let mut s = ConverseStream::new(&test_support::stream_ctx(MODEL, wants_usage));
    let out =
        test_support::translate_stream(&mut s, Decoder::event_stream(1 << 16), chunks, ConverseStream::on_event, ConverseStream::finish);
    let id = out.split("\"id\":\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap_or("none").to_owned();
    (out.replace(&id, "chatcmpl-x"), s)
}

#[test]
fn text_stream_translates_to_openai_chunks() {
    let (out, s) = run(&[&text_stream()], true);
    assert!(out.ends_with("data: [DONE]\n\n"));
    let chunks = chunks_of(&out);
    test_support::assert_chunk_headers(&chunks, "chatcmpl-x", MODEL);
    assert_eq!(chunks[0]["choices"][0]["delta"], json!({"role":"assistant","content":""}));
    assert_eq!(content_of(&chunks), "Hello w\u{f6}rld");
    assert_eq!(finish_reasons(&chunks), ["stop"]);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(
        last["usage"],
        json!({"prompt_tokens":35,"completion_tokens":6,"total_tokens":41,"prompt_tokens_details":{"cached_tokens":20,"cache_write_tokens":3},"completion_tokens_details":{"reasoning_tokens":0}})
    );
    assert!(s.completed());
    assert!(!out.contains("\"p\""));
}

#[test]
fn usage_chunk_only_when_asked() {
    let (out, s) = run(&[&text_stream()], false);
    assert!(!out.contains("\"usage\""));
    assert!(out.ends_with("data: [DONE]\n\n"));
    assert_eq!(s.usage().unwrap().output_tokens, 6, "usage is still recorded");
}

#[test]
fn stream_and_non_stream_agree_on_usage_and_finish_reason() {
    for (stream, whole) in [(text_stream(), TEXT_RESPONSE), (tool_stream(), TOOL_RESPONSE)] {
        let (out, s) = run(&[&stream], true);
        let t = translate_response(&ctx(), whole.as_bytes()).unwrap();
        assert_eq!(s.usage(), t.usage);
        let v = body_of(&t);
        let chunks = chunks_of(&out);
        assert_eq!(finish_reasons(&chunks), [v["choices"][0]["finish_reason"].as_str().unwrap()]);
        assert_eq!(chunks.last().unwrap()["usage"], v["usage"]);
    }
}

#[test]
fn tool_stream_yields_openai_tool_call_deltas() {
    let (out, _) = run(&[&tool_stream()], false);
    let chunks = chunks_of(&out);
    let calls = tool_call_deltas(&chunks);
    assert_eq!(calls[0], &json!([{"index":0,"id":"tooluse_9","type":"function","function":{"name":"get_weather","arguments":""}}]));
    let args: String = calls.iter().map(|c| c[0]["function"]["arguments"].as_str().unwrap()).collect();
    assert_eq!(serde_json::from_str::<Value>(&args).unwrap(), json!({"city":"Paris"}));
    assert!(calls[1..].iter().all(|c| c[0]["index"] == 0 && c[0].get("id").is_none()));
    assert_eq!(content_of(&chunks), "Let me check.");
    let reasoning: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["reasoning_content"].as_str()).collect();
    assert_eq!(reasoning, "Need weather.");
}

#[test]
fn every_split_position_gives_identical_output() {
    for body in [text_stream(), tool_stream()] {
        test_support::assert_any_split_gives_the_same_output(&body, |chunks| run(chunks, true), ConverseStream::completed);
    }
}

#[test]
fn exceptions_become_openai_errors_and_end_the_stream() {
    let mut body = event("messageStart", r#"{"role":"assistant"}"#);
    body.extend(event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#));
    body.extend(frame(
        &[(":exception-type", "throttlingException"), (":content-type", "application/json"), (":message-type", "exception")],
        br#"{"message":"Too many tokens, please wait before trying again."}"#,
    ));
    let (out, s) = run(&[&body], true);
    let v = last_event(&out);
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    assert_eq!(v["error"]["message"], "Too many tokens, please wait before trying again.");
    assert!(!out.contains("[DONE]") && !s.completed());
}

#[test]
fn truncated_stream_ends_with_error_and_keeps_partial_usage() {
    let mut body = text_stream();
    // cut inside the metadata message: messageStop came, the usage did not
    let metadata_len = event("metadata", "").len();
    body.truncate(body.len() - metadata_len);
    let (out, s) = run(&[&body], true);
    assert!(out.contains("stream_truncated"), "{out}");
    assert!(out.contains("\"finish_reason\":\"stop\""));
    assert!(!out.contains("[DONE]") && !s.completed());
    // the usage arrived, the stop did not
    let mut body = event("messageStart", r#"{"role":"assistant"}"#);
    body.extend(event("metadata", r#"{"usage":{"inputTokens":5,"outputTokens":1}}"#));
    let (out, s) = run(&[&body], true);
    assert!(out.contains("stream_truncated") && !s.completed());
    assert_eq!(s.usage().unwrap().input_tokens, 5);
}

#[test]
fn malformed_event_is_reported_not_forwarded() {
    let (out, s) = run(&[&event("contentBlockDelta", "{not json")], false);
    assert!(out.contains("bad_upstream_response"), "{out}");
    assert_eq!(out.matches("data: ").count(), 1);
    assert!(!s.completed());
    let (out, _) = run(&[&event("contentBlockDelta", r#"{"contentBlockIndex":0}"#)], false);
    assert!(out.contains("bad_upstream_response"), "a delta without `delta` is malformed: {out}");
}

#[test]
fn unknown_events_are_ignored() {
    let mut body = event("somethingNew", r#"{"x":1}"#);
    body.extend(text_stream());
    assert_eq!(run(&[&body], true).0, run(&[&text_stream()], true).0);
}

// ---- reasoning_effort ------------------------------------------------------------------------

fn translate_for(model: &str, body: Value) -> Result<(Value, Edits), ApiError> {
    let c = config("");
    let (sent, _, edits) =
        test_support::build(&body, |req, edits| build_request(&c.providers[0], settings(&c), req, model, NOW_MS, edits))?;
    Ok((sent, edits))
}

#[test]
fn reasoning_effort_becomes_claude_thinking_in_additional_model_request_fields() {
    let (out, _) = translate_for(
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        json!({"model":"claude","messages":[user("x")],"reasoning_effort":"low"}),
    )
    .unwrap();
    assert_eq!(out["additionalModelRequestFields"], json!({"thinking":{"type":"enabled","budget_tokens":2048}}));
    assert_eq!(out["inferenceConfig"]["maxTokens"], 2048 + 4096, "above the budget, as Claude requires");
    let (out, _) = translate_for(
        "anthropic.claude-opus-4-6-v1",
        json!({"model":"claude","messages":[user("x")],"reasoning_effort":"high","max_tokens":2000}),
    )
    .unwrap();
    assert_eq!(out["additionalModelRequestFields"], json!({"thinking":{"type":"adaptive"},"output_config":{"effort":"high"}}));
    assert_eq!(out["inferenceConfig"]["maxTokens"], 2000);
    let e = translate_for(
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
        json!({"model":"claude","messages":[user("x")],"reasoning_effort":"low","temperature":0.3}),
    )
    .unwrap_err();
    assert_eq!(e.param.as_deref(), Some("temperature"), "Claude does not sample while it thinks");
}

#[test]
fn reasoning_effort_becomes_nova_reasoning_config_and_is_unsupported_elsewhere() {
    let (out, _) =
        translate_for("us.amazon.nova-2-lite-v1:0", json!({"model":"claude","messages":[user("x")],"reasoning_effort":"minimal"})).unwrap();
    assert_eq!(out["additionalModelRequestFields"], json!({"reasoningConfig":{"type":"enabled","maxReasoningEffort":"low"}}));
    let (out, _) =
        translate_for("us.amazon.nova-2-lite-v1:0", json!({"model":"claude","messages":[user("x")],"reasoning_effort":"none"})).unwrap();
    assert!(out.get("additionalModelRequestFields").is_none());
    for model in ["meta.llama3-70b-instruct-v1:0", MODEL] {
        let e = translate_for(model, json!({"model":"claude","messages":[user("x")],"reasoning_effort":"high"})).unwrap_err();
        assert_eq!((e.param.as_deref(), e.code.as_deref()), (Some("reasoning_effort"), Some("unsupported_parameter")), "{model}");
    }
}

// ---- json_schema, strict tools, metadata ------------------------------------------------------

const SONNET_4_5: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

fn schema_format() -> Value {
    json!({"type":"json_schema","json_schema":{"name":"get_weather","schema":{"type":"object","properties":{"city":{"type":"string"}}}}})
}

#[test]
fn json_schema_becomes_output_config_text_format_where_the_model_has_structured_outputs() {
    let c = config("");
    let body = json!({"model":"claude","messages":[user("x")],"response_format":schema_format()});
    let (sent, built, _) =
        test_support::build(&body, |req, edits| build_request(&c.providers[0], settings(&c), req, SONNET_4_5, NOW_MS, edits)).unwrap();
    let schema = serde_json::to_string(&schema_format()["json_schema"]["schema"]).unwrap();
    assert_eq!(
        sent["outputConfig"],
        json!({"textFormat":{"type":"json_schema","structure":{"jsonSchema":{"schema":schema,"name":"get_weather"}}}})
    );
    assert!(sent.get("toolConfig").is_none() && built.answer_tool.is_none());
}

#[test]
fn json_schema_becomes_a_forced_tool_elsewhere_and_its_input_the_answer() {
    let (sent, built, _) =
        build_with(&config(""), &json!({"model":"claude","messages":[user("x")],"response_format":schema_format()})).unwrap();
    assert_eq!(
        sent["toolConfig"],
        json!({"tools":[{"toolSpec":{"name":"get_weather","inputSchema":{"json":schema_format()["json_schema"]["schema"]}}}],"toolChoice":{"tool":{"name":"get_weather"}}})
    );
    assert_eq!(built.answer_tool.as_deref(), Some("get_weather"));
    let ctx = ResponseContext { answer_tool: Some("get_weather".into()), ..ctx() };
    let v = body_of(&translate_response(&ctx, TOOL_RESPONSE.as_bytes()).unwrap());
    let message = &v["choices"][0]["message"];
    assert_eq!((&message["content"], &v["choices"][0]["finish_reason"]), (&json!(r#"Let me check.{"city":"Paris"}"#), &json!("stop")));
    assert!(message.get("tool_calls").is_none());
    let mut s = ConverseStream::new(&ResponseContext { answer_tool: Some("get_weather".into()), ..test_support::stream_ctx(MODEL, false) });
    let out = test_support::translate_stream(
        &mut s,
        Decoder::event_stream(1 << 16),
        &[&tool_stream()],
        ConverseStream::on_event,
        ConverseStream::finish,
    );
    let chunks = chunks_of(&out);
    assert_eq!(content_of(&chunks), r#"Let me check.{"city": "Paris"}"#);
    assert!(tool_call_deltas(&chunks).is_empty());
    assert_eq!(finish_reasons(&chunks), ["stop"]);
}

#[test]
fn strict_tools_map_to_tool_specification_strict_where_the_model_has_it() {
    let tools = json!([{"type":"function","function":{"name":"f","strict":true,"parameters":{"type":"object"}}}]);
    let body = json!({"model":"claude","messages":[user("x")],"tools":tools});
    let (out, _) = translate_for(SONNET_4_5, body.clone()).unwrap();
    assert_eq!(out["toolConfig"]["tools"][0]["toolSpec"]["strict"], true);
    let e = translate_for(MODEL, body.clone()).unwrap_err();
    assert_eq!((e.param.as_deref(), e.code.as_deref()), (Some("tools[0].function.strict"), Some("unsupported_parameter")));
    let (out, edits) = build_with(&config(r#","drop_unsupported":true"#), &body).map(|(v, _, e)| (v, e)).unwrap();
    assert!(out["toolConfig"]["tools"][0]["toolSpec"].get("strict").is_none());
    assert_eq!(edits.dropped, vec!["tools[0].function.strict"]);
}

#[test]
fn openai_metadata_is_dropped_and_said_so() {
    let (_, _, edits) = build_with(&config(""), &json!({"model":"claude","messages":[user("x")],"metadata":{"a":"b"}})).unwrap();
    assert_eq!(edits.dropped, vec!["metadata"]);
}

#[test]
fn tool_use_ids_converse_would_refuse_are_sent_as_digests_matching_their_results() {
    let long = format!("call_0_tsig_{}", "A".repeat(200));
    let body = json!({"model":"claude","tools":[weather()],"messages":[user("x"),
        {"role":"assistant","tool_calls":[{"id":long,"type":"function","function":{"name":"get_weather","arguments":"{}"}},
                                          {"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},
        {"role":"tool","tool_call_id":long,"content":"sunny"},{"role":"tool","tool_call_id":"call_1","content":"rain"}]});
    let out = translate(body);
    let sent_id = out["messages"][1]["content"][0]["toolUse"]["toolUseId"].as_str().unwrap();
    assert!(sent_id.len() <= 64 && sent_id.starts_with("tooluse_"), "{sent_id}");
    assert_eq!(out["messages"][2]["content"][0]["toolResult"]["toolUseId"], sent_id);
    assert_eq!(out["messages"][1]["content"][1]["toolUse"]["toolUseId"], "call_1", "valid ids pass as they are");
}

#[test]
fn a_messages_client_gets_the_stream_in_anthropics_event_grammar() {
    let run = |chunks: &[&[u8]]| {
        let mut s = ConverseStream::new(&test_support::messages_stream_ctx(MODEL));
        let out = test_support::translate_stream(
            &mut s,
            Decoder::event_stream(1 << 16),
            chunks,
            ConverseStream::on_event,
            ConverseStream::finish,
        );
        // Converse streams carry no id: each run mints its own.
        let id = out.split("\"id\":\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap_or("none").to_owned();
        (out.replace(&id, "msg_x"), s)
    };
    let (out, s) = run(&[&tool_stream()]);
    let (_, calls, stop) = test_support::messages_stream(&out);
    assert_eq!(stop, "tool_use");
    assert_eq!(calls, vec![("toolu_tooluse_9".into(), "get_weather".into(), "{\"city\": \"Paris\"}".into())]);
    assert!(s.completed());
    let (out, _) = run(&[&text_stream()]);
    assert_eq!(test_support::messages_stream(&out).2, "end_turn");
    test_support::assert_any_split_gives_the_same_output(&tool_stream(), run, ConverseStream::completed);
}

#[test]
fn claudes_signed_thinking_goes_back_to_it_and_comes_from_it() {
    let c = config(r#","drop_unsupported":true"#);
    let body = br#"{"model":"claude","max_tokens":100,"thinking":{"type":"enabled","budget_tokens":2048},"messages":[
        {"role":"user","content":"Weather?"},
        {"role":"assistant","content":[{"type":"thinking","thinking":"Need a tool.","signature":"c2ln"},{"type":"redacted_thinking","data":"ZW5j"},
            {"type":"thinking","thinking":"unsigned, from another provider","signature":""},
            {"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}}]},
        {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"sunny"}]}]}"#;
    // A Messages client's request goes to InvokeModel (see `invoke_tests`); through Converse
    // come the other clients' turns, the unsigned thinking forgotten as `build_chat` does.
    let mut req = crate::anthropic::messages::parse(body).unwrap();
    req.forget_thinking(true);
    let built = build_request(&c.providers[0], settings(&c), &req, MODEL, NOW_MS, &mut Edits::default()).unwrap();
    let sent: Value = serde_json::from_slice(built.body.as_ref().unwrap()).unwrap();
    assert_eq!(
        sent["messages"][1]["content"],
        json!([{"reasoningContent":{"reasoningText":{"text":"Need a tool.","signature":"c2ln"}}},{"reasoningContent":{"redactedContent":"ZW5j"}},
               {"toolUse":{"toolUseId":"toolu_1","name":"get_weather","input":{"city":"Paris"}}}])
    );
    // The signature of a streamed answer's thinking reaches a Messages client.
    let mut s = ConverseStream::new(&test_support::messages_stream_ctx(MODEL));
    let out = test_support::translate_stream(
        &mut s,
        Decoder::event_stream(1 << 16),
        &[&tool_stream()],
        ConverseStream::on_event,
        ConverseStream::finish,
    );
    assert!(out.contains(r#"{"type":"signature_delta","signature":"sig"}"#), "{out}");
    let answer = json!({"output":{"message":{"role":"assistant","content":[
        {"reasoningContent":{"reasoningText":{"text":"Hm.","signature":"c2ln"}}},{"text":"Sunny."}]}},
        "stopReason":"end_turn","usage":{"inputTokens":3,"outputTokens":2,"totalTokens":5}});
    let ctx = ResponseContext { stream: false, ..test_support::messages_stream_ctx(MODEL) };
    let v = body_of(&translate_response(&ctx, answer.to_string().as_bytes()).unwrap());
    assert_eq!(v["content"][0], json!({"type":"thinking","thinking":"Hm.","signature":"c2ln"}));
}
