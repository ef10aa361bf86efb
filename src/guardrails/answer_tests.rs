use super::answer::{AnswerFindings, AnswerGuard, StreamScan, WINDOW};
use super::*;
use crate::client::{Dialect, StreamIdentity, StreamWriter};

fn guardrails(json: &str) -> Guardrails {
    Guardrails::compile(&serde_json::from_str(json).unwrap(), &[]).unwrap()
}

const ANSWERS: &str = r#"{"policies": [
    {"detectors": ["aws_access_key"], "action": "block", "direction": "response"},
    {"detectors": ["email", "card", "iban", "phone"], "action": "redact", "direction": "both"},
    {"detectors": ["ipv4"], "action": "log", "direction": "response"}
]}"#;

fn guard(json: &str) -> AnswerGuard {
    guardrails(json).answer_guard(Scope::default(), None).unwrap()
}

/// The audit as (detector, action, count).
fn lines(g: &Guardrails, found: &AnswerFindings) -> Vec<(String, &'static str, u32)> {
    assert!(found.audit.iter().all(|l| l.direction == Direction::Response));
    found.audit.iter().map(|l| (g.name(l.detector).to_owned(), l.action.as_str(), l.count)).collect()
}

#[test]
fn policies_say_which_way_they_look() {
    let g = guardrails(ANSWERS);
    let req = crate::client::parse_chat(crate::client::ClientBody::bare(
        Dialect::OpenAiChat,
        br#"{"model":"m","messages":[{"role":"user","content":"AKIAIOSFODNN7EXAMPLE 10.0.0.1 a@example.com"}]}"#,
    ))
    .unwrap();
    let findings = g.scan(&req);
    assert_eq!(g.found(&findings), vec!["email"], "answer-only detectors do not run on requests");
    let v = g.decide(&findings, Scope::default());
    assert!(v.blocked.is_empty() && !v.redaction.is_empty());
    assert!(guardrails(r#"{"policies":[{"detectors":["email"],"action":"redact"}]}"#).answer_guard(Scope::default(), None).is_none());
    let scoped = guardrails(r#"{"policies":[{"detectors":["email"],"action":"block","direction":"response","when":{"teams":["t"]}}]}"#);
    assert!(scoped.answer_guard(Scope::default(), None).is_none());
    assert!(scoped.answer_guard(Scope { team: Some("t"), ..Default::default() }, None).is_some());
    for (json, field) in [
        (r#"{"policies":[{"detectors":["iban"],"action":"route","direction":"both"}]}"#, "guardrails.policies[0].action"),
        (
            r#"{"policies":[{"detectors":["email"],"action":"redact","restore":true,"direction":"response"}]}"#,
            "guardrails.policies[0].restore",
        ),
        (
            r#"{"external":{"cluster":"c","entities":["PERSON"]},"policies":[{"detectors":["person"],"action":"log","direction":"response"}]}"#,
            "guardrails.policies[0].detectors",
        ),
    ] {
        assert_eq!(Guardrails::compile(&serde_json::from_str(json).unwrap(), &[]).unwrap_err().field, field, "{json}");
    }
}

#[test]
fn whole_answers_are_checked_in_their_strings_but_not_metadata_or_reasoning() {
    let g = guardrails(ANSWERS);
    let guard = g.answer_guard(Scope::default(), None).unwrap();
    let body = br#"{"id":"a@example.com","model":"m","choices":[{"message":{"role":"assistant","content":"Write to jane@example.com from 10.0.0.1","reasoning_content":"jane@example.com","tool_calls":[{"function":{"name":"f","arguments":"{\"to\":\"jane@example.com\"}"}}]}}]}"#;
    let mut found = AnswerFindings::default();
    let out = String::from_utf8(guard.check_json(body, &mut found).unwrap()).unwrap();
    assert!(out.contains(r#""content":"Write to <EMAIL> from 10.0.0.1""#), "{out}");
    assert!(out.contains(r#""arguments":"{\"to\":\"<EMAIL>\"}""#), "{out}");
    assert!(out.contains(r#""id":"a@example.com""#) && out.contains(r#""reasoning_content":"jane@example.com""#), "{out}");
    assert_eq!(lines(&g, &found), vec![("email".into(), "redact", 2), ("ipv4".into(), "log", 1)]);
    assert!(found.blocked.is_empty());
    let mut found = AnswerFindings::default();
    guard.check_json(br#"{"content":[{"type":"text","text":"key AKIAIOSFODNN7EXAMPLE"}]}"#, &mut found);
    assert_eq!(guard.names(&found.blocked), "aws_access_key");
    let mut found = AnswerFindings::default();
    assert_eq!(guard.check_json(br#"{"content":"nothing here"}"#, &mut found), None);
}

#[test]
fn values_the_request_restores_are_not_findings_of_the_answer() {
    let g = guardrails(ANSWERS);
    let req = crate::client::parse_chat(crate::client::ClientBody::bare(
        Dialect::OpenAiChat,
        br#"{"model":"m","messages":[{"role":"user","content":"I am ann@example.org"}]}"#,
    ))
    .unwrap();
    let v = g.decide(&g.scan(&req), Scope::default());
    let restore = v.redaction.restore(|_| true).unwrap();
    let guard = g.answer_guard(Scope::default(), Some(&restore)).unwrap();
    let mut found = AnswerFindings::default();
    let text = restore.apply("Hi <EMAIL_1>, bob@example.org wrote").unwrap();
    assert_eq!(guard.check_text(&text, &mut found).as_deref(), Some("Hi ann@example.org, <EMAIL> wrote"));
}

/// `text` streamed in `pieces` through one channel: what the client gets and what was found.
fn streamed(guard: &AnswerGuard, pieces: &[&str]) -> (String, AnswerFindings, usize) {
    let mut scan = StreamScan::default();
    let mut found = AnswerFindings::default();
    let mut out = String::new();
    let mut most_held = 0;
    let mut fed = 0;
    for p in pieces {
        out.push_str(&scan.push(guard, p, &mut found));
        fed += p.len();
        most_held = most_held.max(fed - out.len().min(fed));
    }
    out.push_str(&scan.flush(guard, &mut found));
    (out, found, most_held)
}

/// Every split of `text` into three chunks at character boundaries.
fn splits(text: &str) -> impl Iterator<Item = [&str; 3]> {
    let cuts: Vec<usize> = (0..=text.len()).filter(|i| text.is_char_boundary(*i)).collect();
    let pairs: Vec<(usize, usize)> = cuts.iter().flat_map(|a| cuts.iter().filter(move |b| *b >= a).map(move |b| (*a, *b))).collect();
    pairs.into_iter().map(move |(a, b)| [&text[..a], &text[a..b], &text[b..]])
}

#[test]
fn streams_find_what_whole_answers_do_split_at_every_pair_of_points() {
    let texts = [
        "Grüße — mail jane.doe@example.com, card 4111 1111 1111 1111 or IBAN GB82 WEST 1234 5698 7654 32; call +44 20 7946 0958. 日本",
        "日本語のメール: bob@example.org。card 5500-0000-0000-0004",
    ];
    for json in [
        ANSWERS,
        r#"{"custom":[{"name":"codename","keywords":["red falcon"]}],"policies":[{"detectors":["*"],"action":"redact","direction":"response"}]}"#,
    ] {
        let g = guardrails(json);
        let guard = g.answer_guard(Scope::default(), None).unwrap();
        for text in texts {
            let mut whole_found = AnswerFindings::default();
            let whole = guard.check_text(text, &mut whole_found).unwrap();
            assert!(whole.contains("<EMAIL>") && whole.contains("<CARD>"), "{whole}");
            for pieces in splits(text) {
                let (out, found, _) = streamed(&guard, &pieces);
                assert_eq!(out, whole, "split {pieces:?}");
                assert_eq!(found, whole_found, "split {pieces:?}");
            }
        }
    }
}

#[test]
fn a_stream_holds_back_only_a_possible_finding_and_never_more_than_the_window() {
    let guard = guard(ANSWERS);
    let mut scan = StreamScan::default();
    let mut found = AnswerFindings::default();
    assert_eq!(scan.push(&guard, "Hello", &mut found), "", "a word may still become an address");
    assert_eq!(scan.push(&guard, " there, ", &mut found), "Hello there, ");
    assert_eq!(scan.push(&guard, "card 4111 ", &mut found), "card ", "a number's groups are held together");
    assert_eq!(scan.push(&guard, "1111 1111 1111 ok ", &mut found), "<CARD> ok ");
    assert_eq!(scan.push(&guard, "Grüße", &mut found), "Grüß", "no built-in finding holds a non-ASCII letter");
    let long = "x".repeat(3 * WINDOW);
    let (out, _, most_held) = streamed(&guard, &long.as_bytes().chunks(7).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>());
    assert_eq!(out, long);
    assert!(most_held <= WINDOW, "held {most_held} bytes");
    // A finding longer than the window: what falls out of it is written as it is, the rest is
    // still found.
    let email = format!("{}@example.com and more", "a".repeat(WINDOW + 100));
    let (out, found, most_held) =
        streamed(&guard, &email.as_bytes().chunks(5).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>());
    assert!(most_held <= WINDOW + 5, "held {most_held} bytes");
    assert!(out.starts_with("aaaa") && out.ends_with("<EMAIL> and more") && !out.contains('@'), "{out}");
    assert_eq!(found.audit.iter().map(|l| l.count).sum::<u32>(), 1);
}

#[test]
fn stream_writers_redact_and_block_answers_in_every_dialect() {
    for dialect in [Dialect::OpenAiChat, Dialect::AnthropicMessages, Dialect::OpenAiResponses] {
        let mut w = StreamWriter::new(dialect, StreamIdentity::default(), false).rewriting(None, Some(guard(ANSWERS)));
        let mut out = Vec::new();
        w.opening(&mut out);
        for piece in ["Mail ja", "ne@exam", "ple.com now"] {
            w.text(&mut out, Some(piece));
        }
        w.tool_call(&mut out, 0, Some("call_1"), Some("send"), r#"{"to":"jane@"#);
        w.tool_arguments(&mut out, 0, Some(r#"example.com"}"#));
        w.finish(&mut out, None);
        let first = String::from_utf8(std::mem::take(&mut out)).unwrap();
        assert!(!first.contains("jane@") && !first.contains("example.com"), "{dialect:?}: {first}");
        assert!(first.matches("<EMAIL>").count() >= 2, "{dialect:?}: {first}");
        assert!(first.contains(r#"<EMAIL>\"}"#), "{dialect:?}: the arguments: {first}");
        for piece in [" and AKIAIOSF", "ODNN7EXAMPLE then more", " text"] {
            w.text(&mut out, Some(piece));
        }
        w.done(&mut out, None);
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains("AKIA") && !out.contains("then more") && !out.contains(" text"), "{dialect:?}: {out}");
        assert!(out.contains("blocked by the gateway's guardrails: it contains aws_access_key"), "{dialect:?}: {out}");
        assert_eq!(out.contains("content_blocked"), dialect != Dialect::AnthropicMessages, "Messages errors carry no code: {out}");
        assert!(w.failed());
        let found = w.answer_findings().unwrap();
        assert_eq!(found.blocked.len(), 1);
        let g = guardrails(ANSWERS);
        assert_eq!(lines(&g, found), vec![("email".into(), "redact", 2), ("aws_access_key".into(), "block", 1)]);
    }
}

/// A Responses stream as OpenAI sends it: the text in `pieces`, then its `.done` events and the
/// final response, numbered from 0.
fn responses_events(pieces: &[&str]) -> Vec<serde_json::Value> {
    use serde_json::json;
    let text: String = pieces.concat();
    let at = |mut v: serde_json::Value| {
        v["item_id"] = json!("msg_1");
        v["output_index"] = json!(0);
        v["content_index"] = json!(0);
        v
    };
    let mut events = vec![json!({"type": "response.created", "response": {"id": "resp_1", "output": []}})];
    events.extend(pieces.iter().map(|p| at(json!({"type": "response.output_text.delta", "delta": p}))));
    events.push(at(json!({"type": "response.output_text.done", "text": text})));
    events.push(json!({"type": "response.completed", "response": {"id": "resp_1", "output": [{"id": "msg_1", "type": "message",
        "content": [{"type": "output_text", "text": text}]}]}}));
    for (i, e) in events.iter_mut().enumerate() {
        e["sequence_number"] = json!(i);
    }
    events
}

fn rewritten(rewrite: &mut crate::openai::responses_rewrite::ResponsesRewrite, events: &[serde_json::Value]) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for e in events {
        rewrite.on_event(&serde_json::to_vec(e).unwrap(), &mut out);
    }
    let out = String::from_utf8(out).unwrap();
    out.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (name, data) = e.split_once("\ndata: ").unwrap();
            let data: serde_json::Value = serde_json::from_str(data).unwrap();
            assert_eq!(name.strip_prefix("event: ").unwrap(), data["type"].as_str().unwrap());
            data
        })
        .collect()
}

#[test]
fn responses_streams_passing_through_are_rewritten_event_by_event() {
    use crate::openai::responses_rewrite::ResponsesRewrite;
    let g = guardrails(ANSWERS);
    let req = crate::client::parse_chat(crate::client::ClientBody::bare(
        Dialect::OpenAiResponses,
        br#"{"model":"m","input":"I am ann@example.org"}"#,
    ))
    .unwrap();
    let restore = g.decide(&g.scan(&req), Scope::default()).redaction.restore(|_| true).unwrap();
    let checks = g.answer_guard(Scope::default(), Some(&restore));
    let mut rewrite = ResponsesRewrite::new(Some(restore), checks).unwrap();
    let pieces = ["Hi <EMA", "IL_1>, bob@exa", "mple.org wr", "ote"];
    let out = rewritten(&mut rewrite, &responses_events(&pieces));
    let deltas: String = out.iter().filter(|e| e["type"] == "response.output_text.delta").map(|e| e["delta"].as_str().unwrap()).collect();
    let want = "Hi ann@example.org, <EMAIL> wrote";
    assert_eq!(deltas, want);
    let done = out.iter().find(|e| e["type"] == "response.output_text.done").unwrap();
    assert_eq!(done["text"], want);
    let completed = out.last().unwrap();
    assert_eq!(completed["response"]["output"][0]["content"][0]["text"], want);
    let numbers: Vec<u64> = out.iter().map(|e| e["sequence_number"].as_u64().unwrap()).collect();
    assert_eq!(numbers, (0..out.len() as u64).collect::<Vec<_>>(), "numbered anew");
    assert_eq!(lines(&g, rewrite.found()), vec![("email".into(), "redact", 1)], "the whole texts are not counted again");

    let mut blocking = ResponsesRewrite::new(None, Some(guard(ANSWERS))).unwrap();
    let out = rewritten(&mut blocking, &responses_events(&["key AKIAIOSF", "ODNN7EXAMPLE and", " more"]));
    let last = out.last().unwrap();
    assert_eq!((last["type"].as_str(), last["code"].as_str()), (Some("error"), Some("content_blocked")), "{out:?}");
    assert!(!serde_json::to_string(&out).unwrap().contains("AKIA") && blocking.blocked());
}
