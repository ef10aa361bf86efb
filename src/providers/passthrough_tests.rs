//! The quick read of a passed-through answer's usage agrees with parsing the whole answer.

use super::*;
use crate::openai::response::WireUsage;
use serde::Deserialize;

#[derive(Deserialize, Debug, PartialEq)]
struct Whole {
    #[serde(default)]
    usage: Option<WireUsage>,
    #[allow(dead_code)]
    choices: serde::de::IgnoredAny,
}

fn quick(body: &str) -> Option<Option<WireUsage>> {
    passthrough_usage::<WireUsage>(body.as_bytes(), &["choices"])
}

fn whole(body: &str) -> Option<Option<WireUsage>> {
    serde_json::from_str::<Whole>(body).ok().map(|w| w.usage)
}

#[test]
fn reads_the_usage_wherever_it_is_and_whatever_the_strings_say() {
    let usage = r#"{"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7, "prompt_tokens_details": {"cached_tokens": 1}}"#;
    let bodies = [
        format!(r#"{{"usage": {usage}, "choices": []}}"#),
        format!(r#"{{"choices": [{{"message": {{"content": "no \"usage\": {{\"prompt_tokens\": 99}} here"}}}}], "usage": {usage}}}"#),
        format!(r#"{{"choices": [{{"usage": {{"prompt_tokens": 99}}}}], "meta": {{"usage": {{"prompt_tokens": 98}}}}, "usage": {usage}}}"#),
        format!(r#"{{"id": "usage", "choices": ["}}\"usage\":{{\\"], "usag\u0065": {usage}}} "#),
        format!("\n{{ \"choices\" : [ ] ,\r\n\t\"usage\" :\n{usage} }}\n"),
    ];
    for body in &bodies {
        let read = quick(body);
        assert_eq!(read, whole(body), "{body}");
        assert_eq!(read.flatten().map(|u| (u.prompt_tokens, u.completion_tokens)), Some((3, 4)), "{body}");
    }
}

#[test]
fn absent_or_null_usage_is_none() {
    for body in [r#"{"choices": []}"#, r#"{"choices": [], "usage": null}"#, r#"{"choices": [{"usage": {"prompt_tokens": 9}}]}"#] {
        assert_eq!(quick(body), Some(None), "{body}");
        assert_eq!(whole(body), Some(None), "{body}");
    }
}

#[test]
fn what_it_cannot_vouch_for_is_left_to_the_whole_parse() {
    for body in [
        "this is not json",
        "",
        "[1, 2]",
        r#"{"usage": {"prompt_tokens": 1}}"#,
        r#"{"choices": [], "choices": [], "usage": null}"#,
        r#"{"choices": [], "usage": {"prompt_tokens": 1}, "usage": {"prompt_tokens": 2}}"#,
        r#"{"choices": [], "usage": {"prompt_tokens": "many"}}"#,
        r#"{"choices": [], "usage": {"prompt_tokens": 1}"#,
        r#"{"choices": [], "usage": null} trailing"#,
        r#"{"choices": [], "usage": null}}"#,
    ] {
        assert_eq!(quick(body), None, "{body}");
        assert_eq!(whole(body), None, "the whole parse refuses {body} too");
    }
}

#[test]
fn the_providers_passthroughs_read_the_same_usage_as_before() {
    let chat = br#"{"id":"c","choices":[{"message":{"content":"usage"}}],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":4}}}"#;
    let u = openai::translate_response(chat).unwrap().usage.unwrap();
    assert_eq!((u.input_tokens, u.cache_read_tokens, u.output_tokens), (6, 4, 5));
    let e = openai::translate_response(b"this is not json").unwrap_err();
    assert_eq!(e.status, 502);
}

#[test]
fn counting_brackets_first_agrees_with_the_depth_scan() {
    let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let shallow_but_bracketed = format!(r#"{{"text": "{}"}}"#, "{[".repeat(100));
    let mut bodies: Vec<String> = [1, json::MAX_DEPTH - 1, json::MAX_DEPTH, json::MAX_DEPTH + 1, 200].map(nested).to_vec();
    bodies.push(shallow_but_bracketed);
    bodies.push(format!(r#"{{"a": {}, "b": "{}"}}"#, nested(json::MAX_DEPTH), "[".repeat(10)));
    for body in &bodies {
        assert_eq!(nests_too_deep(body.as_bytes()), json::check_depth(body.as_bytes()).is_err(), "{body}");
    }
    assert!(nests_too_deep(nested(json::MAX_DEPTH + 1).as_bytes()));
    assert!(!nests_too_deep(bodies[5].as_bytes()), "brackets in strings do not nest");
}
