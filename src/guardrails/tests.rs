use super::detectors::{Builtin, Detectors, iban_valid, luhn_valid};
use super::*;
use crate::client::{self, ClientBody, Dialect};

fn all_builtins() -> Detectors {
    Detectors::new(Vec::new())
}

/// What the built-ins find in `text`: (detector name, matched text).
fn found(text: &str) -> Vec<(String, String)> {
    let d = all_builtins();
    let mut spans = Vec::new();
    d.scan(text, &[true; Builtin::ALL.len()], &mut spans);
    spans.iter().map(|s| (d.name(s.detector).to_owned(), text[s.start..s.end].to_owned())).collect()
}

fn one(text: &str, name: &str, value: &str) {
    assert_eq!(found(text), vec![(name.to_owned(), value.to_owned())], "in {text:?}");
}

fn none(text: &str) {
    assert_eq!(found(text), vec![], "in {text:?}");
}

#[test]
fn emails() {
    one("write to jane.doe+x@mail.example.co.uk, please", "email", "jane.doe+x@mail.example.co.uk");
    one("Grüße an müller@example.de.", "email", "ller@example.de");
    none("a @ b, user@localhost, user@example.c, @handle, x@.com");
}

#[test]
fn cards_need_the_luhn_check() {
    one("card 4111 1111 1111 1111 exp 12/29", "card", "4111 1111 1111 1111");
    one("card 5500-0000-0000-0004.", "card", "5500-0000-0000-0004");
    one("amex 378282246310005", "card", "378282246310005");
    none("card 4111 1111 1111 1112 exp 12/29");
    none("order 1234567890123");
    assert!(luhn_valid(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1, 3]));
    assert!(!luhn_valid(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1, 4]));
}

#[test]
fn ibans_need_the_mod97_check() {
    one("pay DE89 3704 0044 0532 0130 00 today", "iban", "DE89 3704 0044 0532 0130 00");
    one("IBAN: GB82WEST12345698765432", "iban", "GB82WEST12345698765432");
    one("to FR1420041010050500013M02606 THANKS", "iban", "FR1420041010050500013M02606");
    none("pay DE88 3704 0044 0532 0130 00 today");
    none("GB82WEST12345698765433");
    assert!(iban_valid(b"NL91ABNA0417164300"));
    assert!(!iban_valid(b"NL91ABNA0417164301"));
    assert!(!iban_valid(b"NL91"));
}

#[test]
fn ssns_skip_impossible_numbers() {
    one("ssn 123-45-6789.", "us_ssn", "123-45-6789");
    none("ssn 000-45-6789, 666-45-6789, 901-45-6789, 123-00-6789, 123-45-0000");
}

#[test]
fn ip_addresses() {
    one("host 192.168.1.20 is down", "ipv4", "192.168.1.20");
    none("version 1.2.3.4.5 and 300.1.1.1 and 1.2.3");
    one("ping 2001:db8::8a2e:370:7334 now", "ipv6", "2001:db8::8a2e:370:7334");
    one("v6 fe80::1ff:fe23:4567:890a.", "ipv6", "fe80::1ff:fe23:4567:890a");
    none("at 12:30:45, ratio 3:2, a::b, std::vec");
}

#[test]
fn phone_numbers() {
    one("call +14155552671 now", "phone", "+14155552671");
    one("call +44 20 7946 0958 now", "phone", "+44 20 7946 0958");
    one("call (415) 555-2671 now", "phone", "(415) 555-2671");
    one("call 415-555-2671 now", "phone", "415-555-2671");
    one("ring 01 23 45 67 89", "phone", "01 23 45 67 89");
    none("on 2024-01-15 at 10.30, 12/25/2029, +0123456789, 12345");
}

#[test]
fn secrets() {
    one("key AKIAIOSFODNN7EXAMPLE end", "aws_access_key", "AKIAIOSFODNN7EXAMPLE");
    none("AKIAIOSFODNN7EXAMPL short, xAKIAIOSFODNN7EXAMPLE");
    let openai = "sk-proj-abcdefghijklmnopqrstuvwxyz012345";
    one(&format!("use {openai}"), "openai_key", openai);
    let anthropic = "sk-ant-api03-abcdefghijklmnopqrstuvwxyz_0123456789";
    one(&format!("use {anthropic}"), "anthropic_key", anthropic);
    let github = "ghp_abcdefghijklmnopqrstuvwxyz0123456789";
    one(&format!("token {github}."), "github_token", github);
    none("ghp_short sk-short");
    one("slack xoxb-1234567890-abcdefghij", "slack_token", "xoxb-1234567890-abcdefghij");
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
    one(&format!("Bearer {jwt}"), "jwt", jwt);
    none("eyJhbGciOiJIUzI1NiJ9.notjson.sig");
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAK\n-----END RSA PRIVATE KEY-----";
    one(&format!("here:\n{pem}\nthanks"), "private_key", pem);
    none("-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----");
}

#[test]
fn unicode_text_around_findings_keeps_char_boundaries() {
    let text = "日本語テキスト alice@example.jp と 4111111111111111 🙂 +81 3 1234 5678";
    let got = found(text);
    assert_eq!(
        got,
        vec![
            ("email".into(), "alice@example.jp".into()),
            ("card".into(), "4111111111111111".into()),
            ("phone".into(), "+81 3 1234 5678".into())
        ]
    );
}

#[test]
fn scanning_stays_linear_on_adversarial_text() {
    // Long runs of the characters each scanner extends over, which would be quadratic if a
    // scanner re-walked them from every position.
    for text in [
        "1".repeat(200_000),
        "AB12".repeat(50_000),
        "a@".repeat(100_000),
        ":a".repeat(100_000),
        "-----BEGIN ".repeat(20_000),
        "sk-".repeat(60_000),
        "1-".repeat(100_000),
    ] {
        let started = std::time::Instant::now();
        let _ = found(&text);
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{}", &text[..8]);
    }
}

fn guardrails(json: &str) -> Guardrails {
    Guardrails::compile(&serde_json::from_str(json).unwrap(), &[]).unwrap()
}

const POLICIES: &str = r#"{
    "custom": [{"name": "codename", "keywords": ["Bluebird", "red falcon"]}, {"name": "ticket", "regex": "TCK-[0-9]{4}"}],
    "policies": [
        {"detectors": ["aws_access_key", "private_key"], "action": "block"},
        {"detectors": ["email"], "action": "log", "when": {"teams": ["support"]}},
        {"detectors": ["email", "card", "codename"], "action": "redact"},
        {"detectors": ["iban"], "action": "route"},
        {"detectors": ["*"], "action": "log"}
    ]}"#;

fn chat(dialect: Dialect, body: &str) -> crate::conversation::request::ChatRequest<'_> {
    client::parse_chat(ClientBody::bare(dialect, body.as_bytes())).unwrap()
}

#[test]
fn each_finding_gets_the_first_policy_that_applies_and_names_it() {
    let g = guardrails(POLICIES);
    let body = r#"{"model":"m","messages":[{"role":"user","content":"mail bob@example.com, card 4111111111111111, bob@example.com again, project bluebird, TCK-1234, DE89370400440532013000"}]}"#;
    let req = chat(Dialect::OpenAiChat, body);
    let findings = g.scan(&req);
    assert_eq!(g.found(&findings), vec!["email", "card", "codename", "ticket", "iban"]);
    let v = g.decide(&findings, Scope { model: "m", ..Default::default() });
    let lines: Vec<(&str, &str, u32)> = v.audit.iter().map(|l| (g.name(l.detector), l.action.as_str(), l.count)).collect();
    assert_eq!(
        lines,
        vec![("email", "redact", 2), ("card", "redact", 1), ("codename", "redact", 1), ("ticket", "log", 1), ("iban", "route", 1)]
    );
    assert!(v.blocked.is_empty());
    assert_eq!(v.routed, vec![g.detectors.find("iban").unwrap()]);
    let support = g.decide(&findings, Scope { model: "m", team: Some("support"), ..Default::default() });
    assert_eq!(support.audit.first().map(|l| l.action), Some(GuardrailAction::Log), "the team's own policy comes first");
    let redacted = String::from_utf8(v.redaction.apply_json(body.as_bytes()).unwrap()).unwrap();
    assert!(
        redacted.contains("mail <EMAIL_1>, card <CARD_1>, <EMAIL_1> again, project <CODENAME_1>, TCK-1234, DE89370400440532013000"),
        "{redacted}"
    );
}

#[test]
fn block_names_the_detectors() {
    let g = guardrails(POLICIES);
    let req = chat(Dialect::OpenAiChat, r#"{"model":"m","messages":[{"role":"user","content":"my key AKIAIOSFODNN7EXAMPLE"}]}"#);
    let v = g.decide(&g.scan(&req), Scope::default());
    assert_eq!(v.blocked, vec![g.detectors.find("aws_access_key").unwrap()]);
    assert!(v.redaction.is_empty());
}

#[test]
fn messages_tool_inputs_and_results_are_scanned_and_redacted_in_the_raw_body() {
    let g = guardrails(POLICIES);
    let body = r#"{"model":"m","max_tokens":10,"system":"sys","messages":[
        {"role":"user","content":[{"type":"text","text":"find ann@example.org","cache_control":{"type":"ephemeral"}}]},
        {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"lookup","input":{"email":"ann@example.org"}}]},
        {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"card 4111\u00201111 1111 1111"}]}],"x_unknown":{"email":"keep-key"}}"#;
    let req = chat(Dialect::AnthropicMessages, body);
    let v = g.decide(&g.scan(&req), Scope::default());
    let out = String::from_utf8(v.redaction.apply_json(body.as_bytes()).unwrap()).unwrap();
    assert!(out.contains(r#""text":"find <EMAIL_1>","cache_control":{"type":"ephemeral"}"#), "{out}");
    assert!(out.contains(r#""input":{"email":"<EMAIL_1>"}"#), "object keys stay: {out}");
    assert!(out.contains(r#""content":"card <CARD_1>""#), "escaped strings are decoded first: {out}");
    assert!(out.contains(r#""x_unknown":{"email":"keep-key"}"#), "{out}");
    let again = chat(Dialect::AnthropicMessages, &out);
    assert!(g.scan(&again).iter().all(|f| g.name(f.detector) != "email" && g.name(f.detector) != "card"));
}

#[test]
fn nothing_configured_scans_nothing() {
    let g = Guardrails::default();
    assert!(!g.active());
    let req = chat(Dialect::OpenAiChat, r#"{"model":"m","messages":[{"role":"user","content":"a@example.com"}]}"#);
    assert!(g.scan(&req).is_empty());
}

#[test]
fn bad_configs_name_their_field() {
    for (json, field) in [
        (r#"{"policies":[{"detectors":["emails"],"action":"log"}]}"#, "guardrails.policies[0].detectors"),
        (r#"{"policies":[{"detectors":[],"action":"log"}]}"#, "guardrails.policies[0].detectors"),
        (r#"{"custom":[{"name":"email","regex":"x"}]}"#, "guardrails.custom[0].name"),
        (r#"{"custom":[{"name":"Bad Name","regex":"x"}]}"#, "guardrails.custom[0].name"),
        (r#"{"custom":[{"name":"c","regex":"("}]}"#, "guardrails.custom[0].regex"),
        (r#"{"custom":[{"name":"c"}]}"#, "guardrails.custom[0]"),
    ] {
        let e = Guardrails::compile(&serde_json::from_str(json).unwrap(), &[]).unwrap_err();
        assert_eq!(e.field, field, "{json}");
    }
    let e = Guardrails::compile(&Default::default(), &[("routes[0].match.guardrails".into(), "nope")]).unwrap_err();
    assert_eq!(e.field, "routes[0].match.guardrails");
}

#[test]
fn placeholders_are_numbered_per_type_and_consistent() {
    let d = all_builtins();
    let email = d.find("email").unwrap();
    let f = |value| Finding { detector: email, value };
    let r = Redaction::new(&[f("a@x.io"), f("b@x.io"), f("a@x.io")], &d);
    assert_eq!(r.apply("a@x.io b@x.io a@x.io").as_deref(), Some("<EMAIL_1> <EMAIL_2> <EMAIL_1>"));
    assert_eq!(r.apply("nothing here"), None);
}

fn restore_of(values: &[&str]) -> Restore {
    let d = all_builtins();
    let email = d.find("email").unwrap();
    let findings: Vec<Finding> = values.iter().map(|value| Finding { detector: email, value }).collect();
    Redaction::new(&findings, &d).restore(|_| true).unwrap()
}

#[test]
fn restore_maps_placeholders_back_split_at_every_byte() {
    let restore = restore_of(&["ann@example.org", "bob@example.org"]);
    let answer = "Wrote to <EMAIL_1> and <EMAIL_2>, not <EMAIL_9> or <b>bold</b> <";
    let expected = "Wrote to ann@example.org and bob@example.org, not <EMAIL_9> or <b>bold</b> <";
    for a in 0..answer.len() {
        for b in a..answer.len() {
            let mut channel = StreamRestore::default();
            let mut out = String::new();
            for piece in [&answer[..a], &answer[a..b], &answer[b..]] {
                out += &channel.push(&restore, piece);
            }
            out += &channel.flush(&restore);
            assert_eq!(out, expected, "split at {a}, {b}");
        }
    }
}

#[test]
fn restore_holds_back_only_a_possible_placeholder_start() {
    let restore = restore_of(&["ann@example.org"]);
    let mut channel = StreamRestore::default();
    assert_eq!(channel.push(&restore, "Hello <EM"), "Hello ", "held: `<EM`");
    assert_eq!(channel.push(&restore, "AIL_1"), "");
    assert_eq!(channel.push(&restore, "> and <i>"), "ann@example.org and <i>");
    assert_eq!(channel.push(&restore, "a < b"), "a < b", "`< b` starts no placeholder");
    assert_eq!(channel.push(&restore, "<EMAIL_1x"), "<EMAIL_1x");
}

#[test]
fn restore_covers_only_what_restoring_policies_redacted() {
    let g =
        guardrails(r#"{"policies":[{"detectors":["email"],"action":"redact","restore":true},{"detectors":["card"],"action":"redact"}]}"#);
    let req = chat(Dialect::OpenAiChat, r#"{"model":"m","messages":[{"role":"user","content":"a@example.com 4111111111111111"}]}"#);
    let v = g.decide(&g.scan(&req), Scope::default());
    let restore = v.restore.unwrap();
    assert_eq!(restore.apply("<EMAIL_1> <CARD_1>").as_deref(), Some("a@example.com <CARD_1>"));
    let e =
        Guardrails::compile(&serde_json::from_str(r#"{"policies":[{"detectors":["email"],"action":"log","restore":true}]}"#).unwrap(), &[])
            .unwrap_err();
    assert_eq!(e.field, "guardrails.policies[0].restore");
}

#[test]
fn responses_requests_are_scanned_and_redacted_too() {
    let g = guardrails(POLICIES);
    let body = r#"{"model":"m","instructions":"Reply to bob@example.com","input":[{"role":"user","content":[{"type":"input_text","text":"card 4111111111111111"}]}]}"#;
    let req = chat(Dialect::OpenAiResponses, body);
    let v = g.decide(&g.scan(&req), Scope::default());
    let out = String::from_utf8(v.redaction.apply_json(body.as_bytes()).unwrap()).unwrap();
    assert!(out.contains(r#""instructions":"Reply to <EMAIL_1>""#) && out.contains(r#""text":"card <CARD_1>""#), "{out}");
}

#[test]
fn stream_writers_restore_text_and_tool_arguments_in_every_dialect() {
    use crate::client::{StreamIdentity, StreamWriter};
    for dialect in [Dialect::OpenAiChat, Dialect::AnthropicMessages, Dialect::OpenAiResponses] {
        let mut w = StreamWriter::new(dialect, StreamIdentity::default(), false).restoring(Some(restore_of(&["ann@example.org"])));
        let mut out = Vec::new();
        w.opening(&mut out);
        for piece in ["Mail <EMA", "IL_", "1> now"] {
            w.text(&mut out, Some(piece));
        }
        w.tool_call(&mut out, 0, Some("call_1"), Some("send"), "");
        for piece in [r#"{"to":"<EMAIL"#, r#"_1>"}"#] {
            w.tool_arguments(&mut out, 0, Some(piece));
        }
        w.done(&mut out, None);
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains("EMAIL"), "{dialect:?}: {out}");
        let text: String = out.match_indices("ann@example.org").map(|_| 'x').collect();
        assert!(text.len() >= 2, "{dialect:?}: text and arguments restored: {out}");
    }
}

fn with_external(on_failure: &str) -> Guardrails {
    guardrails(&format!(
        r#"{{"external": {{"cluster": "presidio", "entities": ["PERSON", "US_SSN"], "min_score": 0.5, "on_failure": "{on_failure}"}},
            "policies": [{{"detectors": ["person", "us_ssn"], "action": "redact"}}]}}"#
    ))
}

#[test]
fn external_findings_are_read_from_presidio_answers_in_characters() {
    let g = with_external("closed");
    let ext = g.external.as_ref().unwrap();
    let text = "Grüße, Jörg Müller! SSN 123-45-6789";
    let analysis = ext.analysis(text);
    assert_eq!(analysis.path, "/analyze");
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&analysis.body).unwrap(), serde_json::json!({"text": text, "language": "en"}));
    // Offsets as Presidio reports them: Python string indices.
    let answer = br#"[{"entity_type":"PERSON","start":7,"end":18,"score":0.9,"analysis_explanation":null},
                     {"entity_type":"US_SSN","start":24,"end":35,"score":0.6},
                     {"entity_type":"PERSON","start":0,"end":5,"score":0.2},
                     {"entity_type":"NRP","start":0,"end":5,"score":1.0}]"#;
    let found = ext.findings(text, Some(200), answer).unwrap();
    let named: Vec<(&str, &str)> = found.iter().map(|f| (g.name(f.detector), f.value)).collect();
    assert_eq!(named, vec![("person", "Jörg Müller"), ("us_ssn", "123-45-6789")], "the SSN merges with the built-in detector");
    assert!(ext.findings(text, None, b"").unwrap_err().contains("did not answer"));
    assert!(ext.findings(text, Some(500), b"{}").unwrap_err().contains("HTTP 500"));
    assert!(ext.findings(text, Some(200), b"{\"error\":1}").is_err());
    assert!(ext.findings(text, Some(200), br#"[{"entity_type":"PERSON","start":7,"end":99,"score":1}]"#).is_err());
    assert!(!ext.fail_open && with_external("open").external.unwrap().fail_open);
}

#[test]
fn external_entities_become_detectors_policies_can_name() {
    let e = Guardrails::compile(&serde_json::from_str(r#"{"external":{"cluster":"c","entities":[]}}"#).unwrap(), &[]).unwrap_err();
    assert_eq!(e.field, "guardrails.external.entities");
    let e = Guardrails::compile(&serde_json::from_str(r#"{"external":{"cluster":"c","entities":["A-B"]}}"#).unwrap(), &[]).unwrap_err();
    assert_eq!(e.field, "guardrails.external.entities");
    let g = with_external("closed");
    let person = g.detectors.find("person").unwrap();
    assert_eq!(g.detectors.placeholder(person), "PERSON");
    let req = chat(Dialect::OpenAiChat, r#"{"model":"m","messages":[{"role":"user","content":"Jörg Müller"}]}"#);
    assert!(g.scan(&req).is_empty(), "only the service finds its entities");
    let text = Guardrails::analysed_text(&req);
    let found =
        g.external.as_ref().unwrap().findings(&text, Some(200), br#"[{"entity_type":"PERSON","start":0,"end":11,"score":1}]"#).unwrap();
    let v = g.decide(&found, Scope::default());
    assert_eq!(v.redaction.apply("Jörg Müller").as_deref(), Some("<PERSON_1>"));
}
