use super::super::test_support::{self, body_of, chunks_of, content_of, finish_reasons, last_event, tool_call_deltas, user};
use super::*;
use crate::config::Config;
use crate::openai::{chat, embeddings};
use crate::schema::ReasoningForm;
use crate::stream::Decoder;
use serde_json::{Value, json};

fn config_of(kind: &str, extra: &str) -> Result<Config, crate::schema::ConfigError> {
    let json = format!(
        r#"{{"providers":{{"g":{{"kind":"{kind}","cluster":"c","api_key_env":"K"{extra}}}}},
            "models":{{"gem":{{"provider":"g","model":"gemini-2.5-flash"}}}}}}"#
    );
    Config::from_json(json.as_bytes(), &|_| Some("key".into()), 0)
}

fn gemini(extra: &str) -> Config {
    config_of("gemini", extra).unwrap()
}

fn vertex() -> Config {
    config_of("vertex", r#","project":"my-proj","location":"europe-west4""#).unwrap()
}

fn settings(c: &Config) -> &Settings {
    match &c.providers[0].settings {
        super::super::KindSettings::Gemini(s) => s,
        _ => panic!(),
    }
}

fn build_with(c: &Config, body: &Value) -> Result<(Value, UpstreamRequest, Edits), ApiError> {
    test_support::build(body, |req, edits| build_request(&c.providers[0], settings(c), req, "gemini-2.5-flash", edits))
}

fn translate(body: Value) -> Value {
    build_with(&gemini(""), &body).unwrap().0
}

fn translate_err(body: Value) -> ApiError {
    build_with(&gemini(""), &body).unwrap_err()
}

// ---- configuration ---------------------------------------------------------------------------

#[test]
fn gemini_kind_uses_api_key_header_and_v1beta_models() {
    let c = gemini("");
    let p = &c.providers[0];
    assert_eq!(p.authority, "generativelanguage.googleapis.com");
    let (name, value) = p.auth.as_ref().unwrap();
    assert_eq!((*name, value.expose()), ("x-goog-api-key", "key"));
    assert_eq!(settings(&c).models_path, "/v1beta/models");
    let (_, built, _) = build_with(&c, &json!({"model":"gem","messages":[user("x")]})).unwrap();
    assert_eq!(built.path.as_deref(), Some("/v1beta/models/gemini-2.5-flash:generateContent"));
    let (_, built, _) = build_with(&c, &json!({"model":"gem","messages":[user("x")],"stream":true})).unwrap();
    assert_eq!(built.path.as_deref(), Some("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"));
    assert!(!built.injected_usage);
}

#[test]
fn vertex_kind_uses_bearer_token_regional_host_and_project_path() {
    let c = vertex();
    let p = &c.providers[0];
    assert_eq!(p.authority, "europe-west4-aiplatform.googleapis.com");
    let (name, value) = p.auth.as_ref().unwrap();
    assert_eq!((*name, value.expose()), ("authorization", "Bearer key"));
    let (out, built, _) = build_with(&c, &json!({"model":"gem","messages":[user("x")],"stream":true})).unwrap();
    assert_eq!(
        built.path.as_deref(),
        Some("/v1/projects/my-proj/locations/europe-west4/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
    );
    assert_eq!(out["contents"], json!([{"role":"user","parts":[{"text":"x"}]}]));
    let global = config_of("vertex", r#","project":"p","location":"global""#).unwrap();
    assert_eq!(global.providers[0].authority, "aiplatform.googleapis.com");
    let custom = config_of("vertex", r#","project":"p","location":"us-central1","host":"vertex.internal""#).unwrap();
    assert_eq!(custom.providers[0].authority, "vertex.internal");
}

#[test]
fn fields_a_kind_does_not_use_are_refused() {
    for (kind, extra, field) in [
        ("gemini", r#","project":"p""#, "providers.g.project"),
        ("gemini", r#","location":"us-central1""#, "providers.g.location"),
        ("gemini", r#","api_version":"v1""#, "providers.g.api_version"),
        ("gemini", r#","region":"us-east-1""#, "providers.g.region"),
        ("vertex", r#","location":"us-central1""#, "providers.g.project"),
        ("vertex", r#","project":"p""#, "providers.g.location"),
        ("vertex", r#","project":"p","location":"us/../x""#, "providers.g.location"),
        ("vertex", r#","project":"p","location":"l","stream_usage":true"#, "providers.g.stream_usage"),
        ("vertex", r#","project":"p","location":"l","aws_session_token_env":"T""#, "providers.g.aws_session_token_env"),
    ] {
        let e = config_of(kind, extra).unwrap_err();
        assert_eq!(e.field, field, "{kind} {extra}: {e}");
    }
    let e = Config::from_json(br#"{"providers":{"g":{"kind":"gemini","cluster":"c"}},"models":{"m":{"provider":"g"}}}"#, &|_| None, 0)
        .unwrap_err();
    assert_eq!(e.field, "providers.g.api_key_env");
}

#[test]
fn model_names_that_could_change_the_path_are_refused() {
    let c = gemini("");
    let bytes = serde_json::to_vec(&json!({"model":"gem","messages":[user("x")]})).unwrap();
    let req = chat::parse(&bytes).unwrap();
    for bad in ["../files", "a?key=1", "a/b", "", "a:b"] {
        let e = build_request(&c.providers[0], settings(&c), &req, bad, &mut Edits::default()).unwrap_err();
        assert_eq!((e.status, e.param.as_deref()), (400, Some("model")), "{bad}");
    }
    assert!(build_request(&c.providers[0], settings(&c), &req, "gemini-2.0-flash-001", &mut Edits::default()).is_ok());
}

// ---- requests --------------------------------------------------------------------------------

#[test]
fn system_and_developer_messages_become_the_system_instruction() {
    let out = translate(json!({"model":"gem","messages":[
        {"role":"system","content":"Be brief."},
        {"role":"developer","content":[{"type":"text","text":"Use French."}]},
        user("Hi")]}));
    assert_eq!(out["systemInstruction"], json!({"parts":[{"text":"Be brief."},{"text":"Use French."}]}));
    assert_eq!(out["contents"], json!([{"role":"user","parts":[{"text":"Hi"}]}]));
    assert!(out.get("generationConfig").is_none());
    assert!(out.get("tools").is_none() && out.get("toolConfig").is_none());
}

#[test]
fn roles_map_and_consecutive_turns_merge() {
    let out = translate(json!({"model":"gem","messages":[
        user("a"), user("b"), {"role":"assistant","content":"c"}, {"role":"assistant","content":""},
        {"role":"assistant","content":[{"type":"text","text":"d"},{"type":"refusal","refusal":"e"}]}, user("f")]}));
    assert_eq!(
        out["contents"],
        json!([
        {"role":"user","parts":[{"text":"a"},{"text":"b"}]},
        {"role":"model","parts":[{"text":"c"},{"text":"d"},{"text":"e"}]},
        {"role":"user","parts":[{"text":"f"}]}])
    );
}

#[test]
fn generation_config_maps_sampling_limits_stop_seed_and_penalties() {
    let out = translate(json!({"model":"gem","messages":[user("x")],"temperature":1.5,"top_p":0.8,"max_tokens":50,
        "stop":["END","STOP"],"seed":42,"presence_penalty":0.5,"frequency_penalty":-0.25,"user":"u-1","n":1,"store":true}));
    assert_eq!(
        out["generationConfig"],
        json!({"maxOutputTokens":50,"temperature":1.5,"topP":0.8,"stopSequences":["END","STOP"],
               "presencePenalty":0.5,"frequencyPenalty":-0.25,"seed":42})
    );
    assert!(!out.to_string().contains("u-1"), "user is metadata with no Gemini counterpart");
    let out = translate(json!({"model":"gem","messages":[user("x")],"max_tokens":50,"max_completion_tokens":20,"stop":"X"}));
    assert_eq!(out["generationConfig"], json!({"maxOutputTokens":20,"stopSequences":["X"]}));
    let e = translate_err(json!({"model":"gem","messages":[user("x")],"seed":1.5}));
    assert_eq!(e.param.as_deref(), Some("seed"));
    let e = translate_err(json!({"model":"gem","messages":[user("x")],"seed":9_999_999_999u64}));
    assert_eq!(e.param.as_deref(), Some("seed"));
}

#[test]
fn json_mode_and_json_schema_become_response_mime_type_and_schema() {
    let out = translate(json!({"model":"gem","messages":[user("x")],"response_format":{"type":"json_object"}}));
    assert_eq!(out["generationConfig"], json!({"responseMimeType":"application/json"}));
    let out = translate(json!({"model":"gem","messages":[user("x")],"response_format":{"type":"text"}}));
    assert!(out.get("generationConfig").is_none());
    let body = r#"{"model":"gem","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"p","strict":true,"schema":
        {"$schema":"http://json-schema.org/draft-07/schema#","type":"object","additionalProperties":false,"required":["zeta","alpha","tags"],
         "properties":{"zeta":{"type":["string","null"],"description":"Z"},"alpha":{"type":"integer","minimum":0,"maximum":9},
           "tags":{"type":"array","items":{"type":"string","enum":["a","b"]},"maxItems":3},
           "when":{"type":"string","format":"date-time"},"pick":{"anyOf":[{"type":"number"},{"type":"boolean"}]}}}}}}"#;
    let (out, _, _) = build_with(&gemini(""), &serde_json::from_str(body).unwrap()).unwrap();
    assert_eq!(out["generationConfig"]["responseMimeType"], "application/json");
    assert_eq!(
        out["generationConfig"]["responseSchema"],
        json!({"type":"OBJECT","required":["zeta","alpha","tags"],"properties":{
            "zeta":{"type":"STRING","nullable":true,"description":"Z"},
            "alpha":{"type":"INTEGER","minimum":0,"maximum":9},
            "tags":{"type":"ARRAY","items":{"type":"STRING","enum":["a","b"]},"maxItems":3},
            "when":{"type":"STRING","format":"date-time"},
            "pick":{"anyOf":[{"type":"NUMBER"},{"type":"BOOLEAN"}]}}})
    );
    // the client's property order is kept: Gemini orders its output by it
    let req = chat::parse(body.as_bytes()).unwrap();
    let built = build_request(&gemini("").providers[0], settings(&gemini("")), &req, "m", &mut Edits::default()).unwrap();
    let text = String::from_utf8(built.body.unwrap()).unwrap();
    assert!(text.find("\"zeta\"").unwrap() < text.find("\"alpha\"").unwrap(), "{text}");
}

#[test]
fn schema_features_gemini_cannot_express_are_a_400_naming_the_place() {
    for (schema, said) in [
        (json!({"type":"object","properties":{"a":{"oneOf":[{"type":"string"}]}}}), "properties.a"),
        (json!({"$ref":"#/$defs/x","$defs":{"x":{"type":"string"}}}), "keyword `$"),
        (json!({"type":"object","additionalProperties":{"type":"string"}}), "additionalProperties"),
        (json!({"type":["string","integer"]}), "anyOf"),
        (json!({"type":"string","enum":[1,2]}), "enum"),
        (json!({"type":"tuple"}), "unknown type `tuple`"),
        (json!({"type":"object","properties":{"a":{"type":"string","const":"x"}}}), "keyword `const`"),
    ] {
        let e = translate_err(json!({"model":"gem","messages":[user("x")],
            "response_format":{"type":"json_schema","json_schema":{"name":"n","schema":schema}}}));
        assert_eq!((e.status, e.param.as_deref()), (400, Some("response_format.json_schema.schema")), "{schema}");
        assert!(e.message.contains(said), "{schema}: {}", e.message);
    }
    let e = translate_err(json!({"model":"gem","messages":[user("x")],"response_format":{"type":"json_schema"}}));
    assert_eq!(e.param.as_deref(), Some("response_format.json_schema"));
    let e = translate_err(json!({"model":"gem","messages":[user("x")],
        "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"allOf":[]}}}}}]}));
    assert_eq!(e.param.as_deref(), Some("tools[0].function.parameters"));
}

const WEATHER: &str = r#"{"type":"function","function":{"name":"get_weather","description":"Weather",
    "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"],"additionalProperties":false},"strict":true}}"#;

#[test]
fn tools_and_tool_choice_map_to_function_declarations_and_tool_config() {
    let tools = json!([serde_json::from_str::<Value>(WEATHER).unwrap(),
        {"type":"function","function":{"name":"now","parameters":{"type":"object","properties":{}}}},
        {"type":"function","function":{"name":"ping"}}]);
    let out = translate(json!({"model":"gem","messages":[user("x")],"tools":tools}));
    assert_eq!(
        out["tools"],
        json!([{"functionDeclarations":[
        {"name":"get_weather","description":"Weather","parameters":{"type":"OBJECT","properties":{"city":{"type":"STRING"}},"required":["city"]}},
        {"name":"now"},{"name":"ping"}]}])
    );
    assert!(out.get("toolConfig").is_none());
    for (choice, expected) in [
        (json!("auto"), json!({"mode":"AUTO"})),
        (json!("none"), json!({"mode":"NONE"})),
        (json!("required"), json!({"mode":"ANY"})),
        (json!({"type":"function","function":{"name":"now"}}), json!({"mode":"ANY","allowedFunctionNames":["now"]})),
    ] {
        let out = translate(json!({"model":"gem","messages":[user("x")],"tools":tools,"tool_choice":choice}));
        assert_eq!(out["toolConfig"], json!({"functionCallingConfig": expected}), "{choice}");
    }
    let out = translate(json!({"model":"gem","messages":[user("x")],"tools":tools,"parallel_tool_calls":true}));
    assert!(out.get("toolConfig").is_none());
}

#[test]
fn tool_calls_and_results_round_trip_with_names_recovered_from_ids() {
    let out = translate(json!({"model":"gem","tools":[serde_json::from_str::<Value>(WEATHER).unwrap()],"messages":[
        user("Weather in Paris and Rome?"),
        {"role":"assistant","content":"Checking.","tool_calls":[
            {"id":"call_0","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
            {"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]},
        {"role":"tool","tool_call_id":"call_0","content":"18C and sunny"},
        {"role":"tool","tool_call_id":"call_1","content":[{"type":"text","text":"{\"temp\": 21, \"sky\": \"clear\"}"}]},
        user("Thanks"),
    ]}));
    assert_eq!(
        out["contents"],
        json!([
        {"role":"user","parts":[{"text":"Weather in Paris and Rome?"}]},
        {"role":"model","parts":[
            {"text":"Checking."},
            {"functionCall":{"name":"get_weather","args":{"city":"Paris"}},"thoughtSignature":"skip_thought_signature_validator"},
            {"functionCall":{"name":"get_weather","args":{}}}]},
        {"role":"user","parts":[
            {"functionResponse":{"name":"get_weather","response":{"content":"18C and sunny"}}},
            {"functionResponse":{"name":"get_weather","response":{"temp":21,"sky":"clear"}}},
            {"text":"Thanks"}]}])
    );
    // a later turn reusing an id takes the name of the latest call with it
    let out = translate(json!({"model":"gem","messages":[
        user("x"),
        {"role":"assistant","tool_calls":[{"id":"call_0","type":"function","function":{"name":"a","arguments":"{}"}}]},
        {"role":"tool","tool_call_id":"call_0","content":"[1,2]"},
        {"role":"assistant","tool_calls":[{"id":"call_0","type":"function","function":{"name":"b","arguments":"{}"}}]},
        {"role":"tool","tool_call_id":"call_0","content":"42"}]}));
    assert_eq!(out["contents"][2]["parts"][0]["functionResponse"], json!({"name":"a","response":{"content":"[1,2]"}}));
    assert_eq!(out["contents"][4]["parts"][0]["functionResponse"], json!({"name":"b","response":{"content":"42"}}));
}

#[test]
fn images_go_inline_or_as_file_data() {
    let out = translate(json!({"model":"gem","messages":[{"role":"user","content":[
        {"type":"text","text":"What is this?"},
        {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},
        {"type":"image_url","image_url":{"url":"https://example.com/cat.JPG?size=large","detail":"high"}},
        {"type":"file","file":{"file_data":"data:application/pdf;base64,JVBERi0=","filename":"a.pdf"}}]}]}));
    assert_eq!(
        out["contents"][0]["parts"],
        json!([
        {"text":"What is this?"},
        {"inlineData":{"mimeType":"image/png","data":"iVBORw0KGgo="}},
        {"fileData":{"mimeType":"image/jpeg","fileUri":"https://example.com/cat.JPG?size=large"}},
        {"inlineData":{"mimeType":"application/pdf","data":"JVBERi0="}}])
    );
}

#[test]
fn invalid_input_for_gemini_is_400_with_param() {
    let cases = [
        (json!({"type":"image_url","image_url":{"url":"https://example.com/cat"}}), "messages[0].content[0]"),
        (json!({"type":"image_url","image_url":{"url":"ftp://x/a.png"}}), "messages[0].content[0]"),
        (json!({"type":"image_url","image_url":{"url":"data:image/png,abc"}}), "messages[0].content[0]"),
        (json!({"type":"file","file":{"file_id":"file-abc"}}), "messages[0].content[0]"),
        (json!({"type":"input_audio","input_audio":{"data":"x","format":"wav"}}), "messages[0].content[0]"),
    ];
    for (part, param) in cases {
        let e = translate_err(json!({"model":"gem","messages":[{"role":"user","content":[part]}]}));
        assert_eq!((e.status, e.param.as_deref()), (400, Some(param)), "{e:?}");
    }
    let cases = [
        (json!({"model":"gem","messages":[user("x"),{"role":"tool","tool_call_id":"nope","content":"r"}]}), "messages[1].tool_call_id"),
        (
            json!({"model":"gem","messages":[{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"[1]"}}]}]}),
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            json!({"model":"gem","messages":[{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{}"}}]},
                {"role":"tool","tool_call_id":"a","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}}]}]}),
            "messages[1].content[0]",
        ),
        (json!({"model":"gem","messages":[{"role":"function","name":"f","content":"x"}]}), "messages[0].role"),
        (json!({"model":"gem","messages":[user("")]}), "messages[0].content"),
        (json!({"model":"gem","messages":[{"role":"system","content":"only system"}]}), "messages"),
        (
            json!({"model":"gem","messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://x/a.png"}}]},user("x")]}),
            "messages[0].content[0]",
        ),
        (
            json!({"model":"gem","messages":[user("x"),{"role":"assistant","content":[{"type":"image_url","image_url":{"url":"https://x/a.png"}}]}]}),
            "messages[1].content[0]",
        ),
        (json!({"model":"gem","messages":[user("x")],"response_format":{"type":"yaml"}}), "response_format.type"),
    ];
    for (body, param) in cases {
        let e = translate_err(body.clone());
        assert_eq!((e.status, e.param.as_deref()), (400, Some(param)), "{body}: {e:?}");
    }
}

#[test]
fn unsupported_parameters_are_400_or_dropped_by_config() {
    let translate = |body: &Value, drop: bool| {
        let (sent, _, edits) = build_with(&gemini(if drop { r#","drop_unsupported":true"# } else { "" }), body)?;
        Ok((sent, edits))
    };
    let params = vec![
        ("n", json!(2)),
        ("logprobs", json!(true)),
        ("top_logprobs", json!(2)),
        ("logit_bias", json!({"1":2})),
        ("service_tier", json!("flex")),
    ];
    let mut sent = test_support::assert_refused_or_dropped(&json!({"model":"gem","messages":[user("x")]}), params, translate);
    let with_tools = json!({"model":"gem","messages":[user("x")],"tools":[serde_json::from_str::<Value>(WEATHER).unwrap()]});
    sent.extend(test_support::assert_refused_or_dropped(&with_tools, vec![("parallel_tool_calls", json!(false))], translate));
    assert!(sent.iter().all(|out| out["generationConfig"].get("candidateCount").is_none()));
}

// ---- responses -------------------------------------------------------------------------------

const TEXT_RESPONSE: &str = r#"{"candidates":[{"content":{"parts":[{"text":"Let me think","thought":true},{"text":"Hello"},{"text":" w\u00f6rld"}],"role":"model"},
    "finishReason":"STOP","index":0,"safetyRatings":[]}],
    "usageMetadata":{"promptTokenCount":30,"candidatesTokenCount":6,"cachedContentTokenCount":20,"thoughtsTokenCount":4,"totalTokenCount":40},
    "modelVersion":"gemini-2.5-flash-001","responseId":"resp-1"}"#;

const TOOL_RESPONSE: &str = r#"{"candidates":[{"content":{"parts":[{"text":"Checking."},
    {"functionCall":{"name":"get_weather","args":{"city":"Paris"}},"thoughtSignature":"c2ln+/8="},{"functionCall":{"name":"now","args":{}}}],"role":"model"},
    "finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":12,"candidatesTokenCount":9,"totalTokenCount":21},"modelVersion":"gemini-2.5-flash","responseId":"resp-2"}"#;

fn ctx() -> ResponseContext {
    ResponseContext { created: 1_750_000_000, model: "gemini-2.5-flash".into(), ..Default::default() }
}

fn completion(body: &str) -> (Value, Option<Usage>) {
    let t = translate_response(&ctx(), body.as_bytes()).unwrap();
    (body_of(&t), t.usage)
}

#[test]
fn text_response_translates_with_reasoning_and_cached_usage() {
    let (v, usage) = completion(TEXT_RESPONSE);
    assert_eq!(
        v,
        json!({"id":"resp-1","object":"chat.completion","created":1_750_000_000u64,"model":"gemini-2.5-flash-001",
        "choices":[{"index":0,"message":{"role":"assistant","content":"Hello w\u{f6}rld","refusal":null,"reasoning_content":"Let me think"},
                    "logprobs":null,"finish_reason":"stop"}],
        "usage":{"prompt_tokens":30,"completion_tokens":10,"total_tokens":40,"prompt_tokens_details":{"cached_tokens":20},
                 "completion_tokens_details":{"reasoning_tokens":4}}})
    );
    assert_eq!(
        usage.unwrap(),
        Usage { input_tokens: 10, cache_read_tokens: 20, cache_write_tokens: 0, output_tokens: 10, reasoning_tokens: 4 }
    );
}

#[test]
fn function_calls_become_tool_calls_with_stable_ids() {
    let (v, usage) = completion(TOOL_RESPONSE);
    let msg = &v["choices"][0]["message"];
    assert_eq!(msg["content"], "Checking.");
    assert_eq!(
        msg["tool_calls"],
        json!([
        {"id":"call_0_tsig_c2ln-_8","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
        {"id":"call_1","type":"function","function":{"name":"now","arguments":"{}"}}])
    );
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(usage.unwrap(), Usage { input_tokens: 12, output_tokens: 9, ..Default::default() });
    let (v, _) =
        completion(r#"{"candidates":[{"content":{"parts":[{"functionCall":{"id":"fc-9","name":"now"}}]},"finishReason":"STOP"}]}"#);
    assert_eq!(v["choices"][0]["message"]["content"], Value::Null);
    assert_eq!(v["choices"][0]["message"]["tool_calls"][0]["id"], "fc-9");
    assert_eq!(v["model"], "gemini-2.5-flash", "the upstream model when Gemini names none");
}

#[test]
fn finish_reasons_map() {
    for (reason, tools, finish) in [
        ("STOP", false, "stop"),
        ("STOP", true, "tool_calls"),
        ("MAX_TOKENS", false, "length"),
        ("MAX_TOKENS", true, "length"),
        ("SAFETY", false, "content_filter"),
        ("RECITATION", false, "content_filter"),
        ("BLOCKLIST", false, "content_filter"),
        ("PROHIBITED_CONTENT", false, "content_filter"),
        ("SPII", false, "content_filter"),
        ("IMAGE_SAFETY", false, "content_filter"),
        ("MALFORMED_FUNCTION_CALL", false, "stop"),
        ("OTHER", false, "stop"),
        ("FINISH_REASON_UNSPECIFIED", false, "stop"),
    ] {
        assert_eq!(crate::openai::chat_answer::finish_reason(finish_reason(reason, tools)), finish, "{reason}");
    }
    let (v, _) = completion(
        r#"{"candidates":[{"finishReason":"SAFETY","safetyRatings":[{"category":"HARM_CATEGORY_HARASSMENT","probability":"HIGH"}]}]}"#,
    );
    assert_eq!((&v["choices"][0]["finish_reason"], &v["choices"][0]["message"]["content"]), (&json!("content_filter"), &Value::Null));
}

const BLOCKED: &str = r#"{"promptFeedback":{"blockReason":"SAFETY","safetyRatings":[]},"usageMetadata":{"promptTokenCount":7,"totalTokenCount":7},"modelVersion":"gemini-2.5-flash"}"#;

#[test]
fn blocked_prompt_is_a_content_filter_answer_with_its_usage() {
    let (v, usage) = completion(BLOCKED);
    assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(v["choices"][0]["message"]["content"], Value::Null);
    assert!(v["choices"][0]["message"]["refusal"].as_str().unwrap().contains("SAFETY"));
    assert_eq!(usage.unwrap().input_tokens, 7);
}

#[test]
fn garbage_or_wrong_shape_is_502() {
    for body in [&b"not json"[..], br#"{"candidates":"x"}"#, br#"{}"#, br#"{"candidates":[{"content":{"parts":[{"functionCall":{}}]}}]}"#] {
        let e = translate_response(&ctx(), body).unwrap_err();
        assert_eq!((e.status, e.code.as_deref()), (502, Some("bad_upstream_response")), "{}", String::from_utf8_lossy(body));
    }
}

#[test]
fn google_errors_map_to_openai_errors() {
    let cases = [
        (400, "INVALID_ARGUMENT", 400, "invalid_request_error", Some("invalid_argument")),
        (400, "FAILED_PRECONDITION", 400, "invalid_request_error", Some("failed_precondition")),
        (401, "UNAUTHENTICATED", 401, "authentication_error", Some("invalid_api_key")),
        (403, "PERMISSION_DENIED", 403, "permission_error", Some("permission_denied")),
        (404, "NOT_FOUND", 404, "invalid_request_error", Some("not_found")),
        (429, "RESOURCE_EXHAUSTED", 429, "rate_limit_error", Some("rate_limit_exceeded")),
        (500, "INTERNAL", 500, "api_error", Some("internal")),
        (503, "UNAVAILABLE", 503, "api_error", Some("unavailable")),
        (504, "DEADLINE_EXCEEDED", 504, "api_error", Some("deadline_exceeded")),
    ];
    for (status, rpc, want_status, want_kind, want_code) in cases {
        let body = format!(r#"{{"error":{{"code":{status},"message":"msg {rpc}","status":"{rpc}"}}}}"#);
        let e = translate_error(status, body.as_bytes());
        assert_eq!(
            (e.status, &*e.kind, e.message.as_str(), e.code.as_deref()),
            (want_status, want_kind, format!("msg {rpc}").as_str(), want_code)
        );
    }
    let bad_key = br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT",
        "details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}"#;
    let e = translate_error(400, bad_key);
    assert_eq!((e.status, &*e.kind, e.code.as_deref()), (401, "authentication_error", Some("invalid_api_key")));
    let e = translate_error(413, br#"{"error":{"code":413,"message":"Too big","status":"INVALID_ARGUMENT"}}"#);
    assert_eq!((e.status, &*e.kind), (413, "invalid_request_error"), "the HTTP status Google answered with stands");
    let e = translate_error(429, br#"[{"error":{"code":429,"message":"Quota","status":"RESOURCE_EXHAUSTED"}}]"#);
    assert_eq!((e.status, e.message.as_str()), (429, "Quota"));
    let e = translate_error(502, b"<html>upstream connect error</html>");
    assert_eq!(e.status, 502);
    assert!(e.message.contains("upstream connect error"));
}

// ---- streaming -------------------------------------------------------------------------------

const TEXT_STREAM: &str = "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Let me think\",\"thought\": true}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 30,\"totalTokenCount\": 30},\"modelVersion\": \"gemini-2.5-flash-001\",\"responseId\": \"resp-1\"}\r\n\r\n\
data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hello\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 30,\"totalTokenCount\": 30},\"modelVersion\": \"gemini-2.5-flash-001\",\"responseId\": \"resp-1\"}\r\n\r\n\
data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \" w\u{f6}rld\"}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 30,\"candidatesTokenCount\": 6,\"cachedContentTokenCount\": 20,\"thoughtsTokenCount\": 4,\"totalTokenCount\": 40},\"modelVersion\": \"gemini-2.5-flash-001\",\"responseId\": \"resp-1\"}\r\n\r\n";

const TOOL_STREAM: &str = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Checking.\"}],\"role\":\"model\"}}],\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"resp-2\"}\n\n\
data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"get_weather\",\"args\":{\"city\":\"Paris\"}},\"thoughtSignature\":\"c2ln+/8=\"},{\"functionCall\":{\"name\":\"now\",\"args\":{}}}],\"role\":\"model\"},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":12,\"candidatesTokenCount\":9,\"totalTokenCount\":21},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"resp-2\"}\n\n";

const MULTIBYTE_STREAM: &str = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"\u{1F30D} h\u{e9}\"}],\"role\":\"model\"}}],\"responseId\":\"r3\"}\n\n\
data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"llo \\u00e9\u{4e16}\u{754c}\"}],\"role\":\"model\"},\"finishReason\":\"MAX_TOKENS\"}],\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":2},\"responseId\":\"r3\"}\n\n";

fn run(chunks: &[&[u8]], wants_usage: bool) -> (String, StreamState) {
    let mut s = StreamState::new(&test_support::stream_ctx("gemini-2.5-flash", wants_usage));
    let out = test_support::translate_stream(&mut s, Decoder::sse(1 << 16), chunks, StreamState::on_event, StreamState::finish);
    (out, s)
}

#[test]
fn text_stream_translates_event_by_event() {
    let (out, s) = run(&[TEXT_STREAM.as_bytes()], true);
    assert!(out.ends_with("data: [DONE]\n\n"));
    let chunks = chunks_of(&out);
    test_support::assert_chunk_headers(&chunks, "resp-1", "gemini-2.5-flash-001");
    assert_eq!(chunks[0]["choices"][0]["delta"], json!({"role":"assistant","content":""}));
    assert_eq!(chunks[1]["choices"][0]["delta"], json!({"reasoning_content":"Let me think"}));
    assert_eq!(content_of(&chunks), "Hello w\u{f6}rld");
    assert_eq!(finish_reasons(&chunks), vec!["stop"]);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["prompt_tokens"], 30);
    assert_eq!(last["usage"]["completion_tokens"], 10);
    assert_eq!(last["usage"]["prompt_tokens_details"]["cached_tokens"], 20);
    assert!(s.completed());
}

#[test]
fn tool_stream_yields_whole_tool_call_deltas_with_the_same_ids() {
    let (out, _) = run(&[TOOL_STREAM.as_bytes()], false);
    let chunks = chunks_of(&out);
    let calls = tool_call_deltas(&chunks);
    assert_eq!(
        calls,
        vec![
            &json!([{"index":0,"id":"call_0_tsig_c2ln-_8","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]),
            &json!([{"index":1,"id":"call_1","type":"function","function":{"name":"now","arguments":"{}"}}])
        ]
    );
    assert_eq!(finish_reasons(&chunks), vec!["tool_calls"]);
    let (v, _) = completion(TOOL_RESPONSE);
    let ids: Vec<&Value> = v["choices"][0]["message"]["tool_calls"].as_array().unwrap().iter().map(|c| &c["id"]).collect();
    assert_eq!(ids, vec![&json!("call_0_tsig_c2ln-_8"), &json!("call_1")]);
}

#[test]
fn stream_and_non_stream_agree_on_usage_and_finish_reason() {
    for (stream, whole) in [(TEXT_STREAM, TEXT_RESPONSE), (TOOL_STREAM, TOOL_RESPONSE)] {
        let (out, s) = run(&[stream.as_bytes()], true);
        let (v, usage) = completion(whole);
        assert_eq!(s.usage(), usage);
        let chunks = chunks_of(&out);
        assert_eq!(finish_reasons(&chunks), vec![v["choices"][0]["finish_reason"].as_str().unwrap()]);
        assert_eq!(chunks.last().unwrap()["usage"], v["usage"]);
    }
    let (out, s) = run(&[format!("data: {BLOCKED}\n\n").as_bytes()], true);
    let (v, usage) = completion(BLOCKED);
    assert_eq!(s.usage(), usage);
    assert_eq!(finish_reasons(&chunks_of(&out)), vec!["content_filter"]);
    assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
    assert!(s.completed());
}

#[test]
fn usage_chunk_only_when_asked() {
    let (out, s) = run(&[TEXT_STREAM.as_bytes()], false);
    assert!(!out.contains("\"usage\""));
    assert!(out.ends_with("data: [DONE]\n\n"));
    assert_eq!(s.usage().unwrap().output_tokens, 10, "usage is still recorded");
}

#[test]
fn every_split_position_gives_identical_output() {
    for body in [TEXT_STREAM, TOOL_STREAM, MULTIBYTE_STREAM] {
        test_support::assert_any_split_gives_the_same_output(body.as_bytes(), |chunks| run(chunks, true), StreamState::completed);
    }
    let (out, _) = run(&[MULTIBYTE_STREAM.as_bytes()], false);
    let chunks = chunks_of(&out);
    assert_eq!(content_of(&chunks), "\u{1F30D} h\u{e9}llo \u{e9}\u{4e16}\u{754c}");
    assert_eq!(finish_reasons(&chunks), vec!["length"]);
}

#[test]
fn truncated_stream_ends_with_the_truncation_error_and_keeps_partial_usage() {
    let cut = &TEXT_STREAM[..TEXT_STREAM.rfind("data: ").unwrap()];
    let (out, s) = run(&[cut.as_bytes()], true);
    assert!(out.contains("stream_truncated"));
    assert!(!out.contains("[DONE]"));
    assert!(!s.completed());
    assert_eq!(s.usage().unwrap().input_tokens, 30);
    let (out, s) = run(&[], true);
    assert!(out.contains("stream_truncated") && !s.completed());
}

#[test]
fn error_event_becomes_openai_error_and_ends_stream() {
    let first = &TEXT_STREAM[..TEXT_STREAM.find("\r\n\r\n").unwrap() + 4];
    let body =
        format!("{first}data: {{\"error\":{{\"code\":503,\"message\":\"The model is overloaded.\",\"status\":\"UNAVAILABLE\"}}}}\n\n");
    let (out, s) = run(&[body.as_bytes()], true);
    let v = last_event(&out);
    assert_eq!(v["error"]["message"], "The model is overloaded.");
    assert_eq!(v["error"]["code"], "unavailable");
    assert!(!out.contains("[DONE]") && !out.contains("stream_truncated"));
    assert!(!s.completed());
}

#[test]
fn malformed_event_is_reported_not_forwarded() {
    let (out, s) = run(&[b"data: {not json\n\n"], false);
    assert!(out.contains("bad_upstream_response"));
    assert_eq!(out.matches("data: ").count(), 1);
    assert!(!s.completed());
}

// ---- embeddings ------------------------------------------------------------------------------

fn build_embeddings_with(c: &Config, body: &str) -> Result<(Value, String), ApiError> {
    let req = embeddings::parse(body.as_bytes())?;
    let built = build_embeddings(settings(c), &req, "text-embedding-004")?;
    Ok((serde_json::from_slice(&built.body.unwrap()).unwrap(), built.path.unwrap()))
}

#[test]
fn gemini_embeddings_use_batch_embed_contents() {
    let (body, path) =
        build_embeddings_with(&gemini(""), r#"{"model":"e","input":["hello","w\u00f6rld"],"dimensions":256,"user":"u"}"#).unwrap();
    assert_eq!(path, "/v1beta/models/text-embedding-004:batchEmbedContents");
    assert_eq!(
        body,
        json!({"requests":[
        {"model":"models/text-embedding-004","content":{"parts":[{"text":"hello"}]},"outputDimensionality":256},
        {"model":"models/text-embedding-004","content":{"parts":[{"text":"w\u{f6}rld"}]},"outputDimensionality":256}]})
    );
    let (body, _) = build_embeddings_with(&gemini(""), r#"{"model":"e","input":"one"}"#).unwrap();
    assert_eq!(body, json!({"requests":[{"model":"models/text-embedding-004","content":{"parts":[{"text":"one"}]}}]}));
    let e = build_embeddings_with(&gemini(""), r#"{"model":"e","input":[1,2,3]}"#).unwrap_err();
    assert_eq!((e.status, e.param.as_deref()), (400, Some("input")));
}

#[test]
fn vertex_embeddings_use_predict() {
    let (body, path) = build_embeddings_with(&vertex(), r#"{"model":"e","input":["a","b"],"dimensions":64}"#).unwrap();
    assert_eq!(path, "/v1/projects/my-proj/locations/europe-west4/publishers/google/models/text-embedding-004:predict");
    assert_eq!(body, json!({"instances":[{"content":"a"},{"content":"b"}],"parameters":{"outputDimensionality":64}}));
    let (body, _) = build_embeddings_with(&vertex(), r#"{"model":"e","input":"a"}"#).unwrap();
    assert_eq!(body, json!({"instances":[{"content":"a"}]}));
}

fn embeddings_ctx(base64: bool) -> ResponseContext {
    ResponseContext { operation: super::super::Operation::Embeddings, base64, model: "text-embedding-004".into(), ..Default::default() }
}

#[test]
fn gemini_embeddings_translate_with_unknown_usage() {
    let c = gemini("");
    let body = br#"{"embeddings":[{"values":[0.1,-2.5e-3]},{"values":[1.0,0]}]}"#;
    let t = translate_embeddings(settings(&c), &embeddings_ctx(false), body).unwrap();
    assert_eq!(t.usage, None, "Gemini reports no embedding tokens: unknown, not zero");
    let v: Value = serde_json::from_slice(&t.body.unwrap()).unwrap();
    assert_eq!(v["model"], "text-embedding-004");
    assert_eq!(v["data"][0], json!({"object":"embedding","index":0,"embedding":[0.1,-2.5e-3]}));
    assert_eq!(v["data"][1]["index"], 1);
    let t = translate_embeddings(settings(&c), &embeddings_ctx(true), body).unwrap();
    let v: Value = serde_json::from_slice(&t.body.unwrap()).unwrap();
    assert_eq!(v["data"][1]["embedding"], "AACAPwAAAAA=");
    let e = translate_embeddings(settings(&c), &embeddings_ctx(false), br#"{"predictions":[]}"#).unwrap_err();
    assert_eq!(e.status, 502);
}

#[test]
fn vertex_embeddings_translate_with_token_counts() {
    let c = vertex();
    let body = br#"{"predictions":[{"embeddings":{"values":[0.5],"statistics":{"token_count":3,"truncated":false}}},
        {"embeddings":{"values":[0.25],"statistics":{"token_count":4.0,"truncated":false}}}],"metadata":{"billableCharacterCount":9}}"#;
    let t = translate_embeddings(settings(&c), &embeddings_ctx(false), body).unwrap();
    assert_eq!(t.usage, Some(Usage { input_tokens: 7, ..Default::default() }));
    let v: Value = serde_json::from_slice(&t.body.unwrap()).unwrap();
    assert_eq!(v["usage"], json!({"prompt_tokens":7,"total_tokens":7}));
    assert_eq!(v["data"][1]["embedding"], json!([0.25]));
    let t = translate_embeddings(settings(&c), &embeddings_ctx(false), br#"{"predictions":[{"embeddings":{"values":[1]}}]}"#).unwrap();
    assert_eq!(t.usage, None);
}

// ---- thought signatures ----------------------------------------------------------------------

/// The request a client sends after `answer`'s tool calls, with one result per call.
fn follow_up(tool_calls: &Value) -> Value {
    let results: Vec<Value> =
        tool_calls.as_array().unwrap().iter().map(|c| json!({"role":"tool","tool_call_id":c["id"],"content":"done"})).collect();
    let mut messages = vec![user("Weather in Paris?"), json!({"role":"assistant","content":null,"tool_calls":tool_calls})];
    messages.extend(results);
    json!({"model":"gem","messages":messages})
}

#[test]
fn thought_signatures_come_back_on_the_calls_gemini_signed() {
    let (v, _) = completion(TOOL_RESPONSE);
    let out = translate(follow_up(&v["choices"][0]["message"]["tool_calls"]));
    assert_eq!(
        out["contents"][1]["parts"],
        json!([
            {"functionCall":{"name":"get_weather","args":{"city":"Paris"}},"thoughtSignature":"c2ln+/8="},
            {"functionCall":{"name":"now","args":{}}}])
    );
    assert_eq!(out["contents"][2]["parts"][0]["functionResponse"]["name"], "get_weather");
    // streamed answers carry the same ids
    let (stream, _) = run(&[TOOL_STREAM.as_bytes()], false);
    let streamed: Vec<Value> = tool_call_deltas(&chunks_of(&stream))
        .iter()
        .map(|d| json!({"id":d[0]["id"],"type":"function","function":d[0]["function"]}))
        .collect();
    assert_eq!(translate(follow_up(&json!(streamed)))["contents"], out["contents"]);
}

#[test]
fn calls_without_a_usable_signature_get_the_placeholder_on_the_first_call_of_each_step() {
    let call = |id: &str, name: &str| json!({"id":id,"type":"function","function":{"name":name,"arguments":"{}"}});
    let out = translate(json!({"model":"gem","messages":[
        user("x"),
        {"role":"assistant","tool_calls":[call("toolu_01", "a"), call("toolu_02", "b")]},
        {"role":"tool","tool_call_id":"toolu_01","content":"1"},
        {"role":"tool","tool_call_id":"toolu_02","content":"2"},
        // malformed: a `+` the gateway never writes, a length base64 cannot have
        {"role":"assistant","tool_calls":[call("c_tsig_ab+c", "a"), call("d_tsig_abcde", "b")]},
        {"role":"tool","tool_call_id":"c_tsig_ab+c","content":"3"},
        {"role":"tool","tool_call_id":"d_tsig_abcde","content":"4"}]}));
    for step in [1, 3] {
        let parts = &out["contents"][step]["parts"];
        assert_eq!(parts[0]["thoughtSignature"], "skip_thought_signature_validator", "{parts}");
        assert!(parts[1].get("thoughtSignature").is_none(), "{parts}");
    }
}

// ---- reasoning_effort ------------------------------------------------------------------------

fn thinking_for(model: &str, form: Option<ReasoningForm>, effort: &str) -> Value {
    let c = gemini("");
    let body = json!({"model":"gem","messages":[user("x")],"reasoning_effort":effort});
    let (sent, _, edits) = test_support::build(&body, |req, edits| {
        edits.reasoning = form;
        build_request(&c.providers[0], settings(&c), req, model, edits)
    })
    .unwrap();
    assert!(edits.dropped.is_empty());
    sent["generationConfig"]["thinkingConfig"].clone()
}

#[test]
fn reasoning_effort_becomes_a_thinking_budget_on_gemini_2_5() {
    assert_eq!(thinking_for("gemini-2.5-flash", None, "medium"), json!({"thinkingBudget":8192,"includeThoughts":true}));
    assert_eq!(thinking_for("gemini-2.5-pro", None, "xhigh"), json!({"thinkingBudget":24576,"includeThoughts":true}));
    assert_eq!(thinking_for("gemini-2.5-flash", None, "none"), json!({"thinkingBudget":0}));
    let e = translate_err(json!({"model":"gem","messages":[user("x")],"reasoning_effort":"lots"}));
    assert_eq!((e.status, e.param.as_deref()), (400, Some("reasoning_effort")));
}

#[test]
fn reasoning_effort_becomes_a_thinking_level_on_gemini_3_or_by_policy() {
    assert_eq!(thinking_for("gemini-3-pro-preview", None, "low"), json!({"thinkingLevel":"LOW","includeThoughts":true}));
    assert_eq!(thinking_for("gemini-3-flash", None, "minimal"), json!({"thinkingLevel":"MINIMAL","includeThoughts":true}));
    assert_eq!(thinking_for("gemini-3-flash", None, "none"), json!({"thinkingLevel":"MINIMAL"}));
    assert_eq!(thinking_for("gemini-3-pro-preview", None, "xhigh"), json!({"thinkingLevel":"HIGH","includeThoughts":true}));
    // Gemini 3 Pro takes two levels
    assert_eq!(thinking_for("gemini-3-pro-preview", None, "minimal"), json!({"thinkingLevel":"LOW","includeThoughts":true}));
    assert_eq!(thinking_for("gemini-3-pro-preview", None, "medium"), json!({"thinkingLevel":"HIGH","includeThoughts":true}));
    assert_eq!(thinking_for("gemini-3-flash", None, "medium"), json!({"thinkingLevel":"MEDIUM","includeThoughts":true}));
    assert_eq!(
        thinking_for("gemini-flash-latest", Some(ReasoningForm::Level), "high"),
        json!({"thinkingLevel":"HIGH","includeThoughts":true})
    );
    assert_eq!(thinking_for("gemini-3-flash", Some(ReasoningForm::Budget), "low"), json!({"thinkingBudget":2048,"includeThoughts":true}));
}

#[test]
fn openai_metadata_is_dropped_and_said_so() {
    let (_, _, edits) = build_with(&gemini(""), &json!({"model":"gem","messages":[user("x")],"metadata":{"a":"b"}})).unwrap();
    assert_eq!(edits.dropped, vec!["metadata"]);
}

#[test]
fn a_messages_client_gets_the_stream_in_anthropics_event_grammar() {
    let run = |chunks: &[&[u8]]| {
        let mut s = StreamState::new(&test_support::messages_stream_ctx("gemini-2.5-flash"));
        (test_support::translate_stream(&mut s, Decoder::sse(1 << 16), chunks, StreamState::on_event, StreamState::finish), s)
    };
    let (out, s) = run(&[TEXT_STREAM.as_bytes()]);
    assert!(out.contains("\"thinking_delta\",\"thinking\":\"Let me think\""), "{out}");
    assert_eq!(test_support::messages_stream(&out), ("Hello w\u{f6}rld".into(), vec![], "end_turn".into()));
    assert!(s.completed());
    let (out, _) = run(&[TOOL_STREAM.as_bytes()]);
    let (text, calls, stop) = test_support::messages_stream(&out);
    assert_eq!((text.as_str(), stop.as_str()), ("Checking.", "tool_use"));
    assert_eq!(calls[0], ("toolu_call_0_tsig_c2ln-_8".into(), "get_weather".into(), "{\"city\":\"Paris\"}".into()));
    assert_eq!(calls[1].1, "now");
    test_support::assert_any_split_gives_the_same_output(TOOL_STREAM.as_bytes(), run, StreamState::completed);
}

#[test]
fn token_counts_ask_count_tokens_and_answer_as_messages_does() {
    let body = br#"{"model":"g","messages":[{"role":"user","content":"Count me"}]}"#;
    let req = crate::anthropic::messages::parse_count_tokens(body).unwrap();
    for (c, path, wrapped) in [
        (gemini(""), "/v1beta/models/gemini-2.5-flash:countTokens", true),
        (vertex(), "/v1/projects/my-proj/locations/europe-west4/publishers/google/models/gemini-2.5-flash:countTokens", false),
    ] {
        let built = build_count_tokens(&c.providers[0], settings(&c), &req, "gemini-2.5-flash").unwrap();
        assert_eq!(built.path.as_deref(), Some(path));
        let sent: Value = serde_json::from_slice(&built.body.unwrap()).unwrap();
        let request = if wrapped { &sent["generateContentRequest"] } else { &sent };
        assert_eq!(request["contents"][0]["parts"][0]["text"], "Count me");
        assert_eq!(request.get("model").and_then(Value::as_str), wrapped.then_some("models/gemini-2.5-flash"));
    }
    let t = translate_count_tokens(br#"{"totalTokens": 31, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 31}]}"#).unwrap();
    assert_eq!(t.body.as_deref(), Some(&br#"{"input_tokens":31}"#[..]));
    assert!(translate_count_tokens(b"{}").is_err(), "a count without its total is no count");
}
