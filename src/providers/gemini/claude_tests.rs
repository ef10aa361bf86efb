use super::*;
use crate::config::Config;
use crate::providers::{Operation, StreamTranslator, test_support};
use crate::stream::Decoder;
use serde_json::{Value, json};

const CLAUDE: &str = "claude-sonnet-4-5@20250929";
const MODELS: &str = "/v1/projects/my-proj/locations/us-east5/publishers/anthropic/models";

fn config(kind: &str) -> Config {
    let extra = if kind == "vertex" { r#","project":"my-proj","location":"us-east5""# } else { "" };
    let json = format!(
        r#"{{"providers":{{"g":{{"kind":"{kind}","cluster":"c","api_key_env":"K"{extra}}}}},
            "models":{{"claude":{{"provider":"g","model":"{CLAUDE}"}}}}}}"#
    );
    Config::from_json(json.as_bytes(), &|_| Some("token".into()), 0).unwrap()
}

fn build(c: &Config, dialect: Dialect, body: &str, headers: &[(String, String)]) -> UpstreamRequest {
    let client = ClientBody { dialect, bytes: body.as_bytes(), headers };
    let req = crate::client::parse_chat(client).unwrap();
    let to = BuildContext { model: CLAUDE, now_ms: 0 };
    crate::providers::build_chat(&c.providers[0], &req, client, &to, &mut Edits::default()).unwrap()
}

#[test]
fn claude_models_of_a_vertex_provider_are_the_anthropic_publishers() {
    let c = config("vertex");
    let api = c.providers[0].settings.api();
    assert!(api.speaks(Dialect::AnthropicMessages, CLAUDE));
    assert!(!api.speaks(Dialect::AnthropicMessages, "gemini-2.5-flash") && !api.speaks(Dialect::OpenAiChat, CLAUDE));
    assert!(!config("gemini").providers[0].settings.api().speaks(Dialect::AnthropicMessages, CLAUDE), "the Gemini API serves no Claude");
    assert_eq!(c.providers[0].authority, "us-east5-aiplatform.googleapis.com");
}

#[test]
fn a_messages_request_goes_to_raw_predict_as_it_came_but_for_the_model() {
    let c = config("vertex");
    let body = r#"{"model":"claude","max_tokens":50,"stream":true,"system":[{"type":"text","text":"S","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"hi"}]}"#;
    let betas = vec![("anthropic-beta".to_owned(), "context-1m-2025-08-07".to_owned())];
    let built = build(&c, Dialect::AnthropicMessages, body, &betas);
    assert_eq!(built.path.as_deref(), Some(&*format!("{MODELS}/{CLAUDE}:streamRawPredict")));
    let sent = String::from_utf8(built.body.unwrap()).unwrap();
    assert_eq!(
        sent,
        r#"{"max_tokens":50,"stream":true,"system":[{"type":"text","text":"S","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"hi"}],"anthropic_version":"vertex-2023-10-16"}"#,
        "the betas stay in their header, which reaches Vertex as it reaches Anthropic"
    );
    let whole = build(&c, Dialect::AnthropicMessages, &body.replace(r#""stream":true,"#, ""), &[]);
    assert_eq!(whole.path.as_deref(), Some(&*format!("{MODELS}/{CLAUDE}:rawPredict")));
}

#[test]
fn a_chat_request_is_rendered_as_anthropics_and_its_answer_translated() {
    let c = config("vertex");
    let built = build(
        &c,
        Dialect::OpenAiChat,
        r#"{"model":"claude","stream":true,"messages":[{"role":"system","content":"S"},{"role":"user","content":"hi"}]}"#,
        &[],
    );
    assert_eq!(built.path.as_deref(), Some(&*format!("{MODELS}/{CLAUDE}:streamRawPredict")));
    let sent: Value = serde_json::from_slice(&built.body.unwrap()).unwrap();
    assert_eq!(
        sent,
        json!({"max_tokens":4096,"system":[{"type":"text","text":"S"}],"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],
               "stream":true,"anthropic_version":"vertex-2023-10-16"})
    );
    let api = c.providers[0].settings.api();
    let answer = br#"{"id":"msg_vrtx_1","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":"Hello"}],
        "stop_reason":"end_turn","usage":{"input_tokens":3,"cache_read_input_tokens":2,"output_tokens":1}}"#;
    let ctx = ResponseContext { created: 7, model: CLAUDE.into(), ..Default::default() };
    let t = api.translate_chat(&ctx, answer).unwrap();
    let v = test_support::body_of(&t);
    assert_eq!((v["object"].as_str(), v["choices"][0]["message"]["content"].as_str()), (Some("chat.completion"), Some("Hello")));
    assert_eq!(t.usage.map(|u| (u.input_tokens, u.cache_read_tokens)), Some((3, 2)));
    // A Messages client gets it as it came.
    let native = ResponseContext { dialect: Dialect::AnthropicMessages, native: true, ..ctx.clone() };
    assert!(api.translate_chat(&native, answer).unwrap().body.is_none());

    // The stream is Anthropic's, read by the Anthropic rules.
    let stream_ctx = ResponseContext { stream: true, ..ctx };
    let mut s = StreamTranslator::new(&c.providers[0], &stream_ctx);
    assert!(matches!(s, StreamTranslator::Anthropic(_)));
    let events = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"m\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n\
        event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
        event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n\
        event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n\
        event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    let out = test_support::translate_stream(
        &mut s,
        Decoder::sse(1 << 16),
        &[events.as_bytes()],
        |s, e, out| {
            s.on_event(e, out);
        },
        |s, out| s.finish(out),
    );
    assert_eq!(test_support::content_of(&test_support::chunks_of(&out)), "Hello");
    assert!(s.completed() && s.usage().is_some_and(|u| u.output_tokens == 2));
    // Gemini models of the same provider stream Gemini's events.
    let gemini_ctx = ResponseContext { model: "gemini-2.5-flash".into(), ..stream_ctx };
    assert!(matches!(StreamTranslator::new(&c.providers[0], &gemini_ctx), StreamTranslator::Gemini(_)));
}

#[test]
fn claudes_errors_are_anthropics_and_vertexs_are_googles() {
    let c = &config("vertex").providers[0];
    let overloaded =
        crate::providers::translate_error(c, 529, None, br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#);
    assert_eq!((overloaded.status, overloaded.code.as_deref(), &*overloaded.message), (503, Some("overloaded"), "Overloaded"));
    let google = crate::providers::translate_error(
        c,
        429,
        None,
        br#"{"error":{"code":429,"message":"Quota exceeded.","status":"RESOURCE_EXHAUSTED"}}"#,
    );
    assert_eq!((google.status, google.code.as_deref()), (429, Some("rate_limit_exceeded")));
}

#[test]
fn token_counts_ask_the_anthropic_publisher() {
    let c = config("vertex");
    let body = br#"{"model":"claude","messages":[{"role":"user","content":"one two"}]}"#;
    let client = ClientBody { dialect: Dialect::AnthropicMessages, bytes: body, headers: &[] };
    let req = crate::client::parse_count_tokens(client).unwrap();
    let api = c.providers[0].settings.api();
    let built = api.build_count_tokens(&c.providers[0], &req, client, &BuildContext { model: CLAUDE, now_ms: 0 }).unwrap().unwrap();
    assert_eq!(built.path.as_deref(), Some(&*format!("{MODELS}/count-tokens:rawPredict")));
    let sent: Value = serde_json::from_slice(&built.body.unwrap()).unwrap();
    assert_eq!(sent, json!({"messages":[{"role":"user","content":"one two"}],"model":CLAUDE,"anthropic_version":"vertex-2023-10-16"}));
    let ctx = ResponseContext { operation: Operation::CountTokens, ..Default::default() };
    assert!(crate::providers::translate_response(&c.providers[0], &ctx, br#"{"input_tokens":2}"#).unwrap().body.is_none());
    let gemini = crate::providers::translate_response(&c.providers[0], &ctx, br#"{"totalTokens":2}"#).unwrap();
    assert_eq!(gemini.body.as_deref(), Some(&br#"{"input_tokens":2}"#[..]));
}
