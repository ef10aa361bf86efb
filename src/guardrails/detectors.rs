//! The built-in detectors: hand-written scanners, each one pass over the text (or a SIMD
//! substring search for its literal prefix) plus a bounded look at each candidate, so scanning
//! costs time proportional to the text whatever it holds. Checksums confirm what has one: Luhn
//! for payment cards, ISO 13616 mod-97 for IBANs. Custom detectors use `regex-lite`, whose
//! matching is linear in the text too.

use memchr::memmem::{self, Finder};
use regex_lite::Regex;
use std::sync::LazyLock;

/// The literal prefixes of the secret detectors.
const PREFIXES: [&str; 19] = [
    "eyJ",
    "AKIA",
    "ASIA",
    "ABIA",
    "ACCA",
    "sk-ant-",
    "sk-",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "xoxr-",
    "xoxs-",
    "xoxe-",
];

/// Their substring searchers, built once (building one costs more than searching a short text).
static FINDERS: LazyLock<Vec<Finder<'static>>> = LazyLock::new(|| PREFIXES.iter().map(|p| Finder::new(p.as_bytes())).collect());

/// A finding: which detector (its index in [`Detectors`]), and where in the text (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub detector: usize,
    pub start: usize,
    pub end: usize,
}

/// The built-in detectors, in priority order: where two findings overlap, the earlier kind wins
/// (a card number is not also reported as a phone number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    PrivateKey,
    Jwt,
    AwsAccessKey,
    AnthropicKey,
    OpenAiKey,
    GithubToken,
    SlackToken,
    Email,
    Iban,
    Card,
    UsSsn,
    Ipv4,
    Ipv6,
    Phone,
}

impl Builtin {
    pub const ALL: [Builtin; 14] = [
        Builtin::PrivateKey,
        Builtin::Jwt,
        Builtin::AwsAccessKey,
        Builtin::AnthropicKey,
        Builtin::OpenAiKey,
        Builtin::GithubToken,
        Builtin::SlackToken,
        Builtin::Email,
        Builtin::Iban,
        Builtin::Card,
        Builtin::UsSsn,
        Builtin::Ipv4,
        Builtin::Ipv6,
        Builtin::Phone,
    ];

    /// The detector's name in configuration, access logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::PrivateKey => "private_key",
            Builtin::Jwt => "jwt",
            Builtin::AwsAccessKey => "aws_access_key",
            Builtin::AnthropicKey => "anthropic_key",
            Builtin::OpenAiKey => "openai_key",
            Builtin::GithubToken => "github_token",
            Builtin::SlackToken => "slack_token",
            Builtin::Email => "email",
            Builtin::Iban => "iban",
            Builtin::Card => "card",
            Builtin::UsSsn => "us_ssn",
            Builtin::Ipv4 => "ipv4",
            Builtin::Ipv6 => "ipv6",
            Builtin::Phone => "phone",
        }
    }

    /// The placeholder's type (`<CARD_1>`).
    pub fn placeholder(self) -> &'static str {
        match self {
            Builtin::PrivateKey => "PRIVATE_KEY",
            Builtin::Jwt => "JWT",
            Builtin::AwsAccessKey => "AWS_ACCESS_KEY",
            Builtin::AnthropicKey => "ANTHROPIC_KEY",
            Builtin::OpenAiKey => "OPENAI_KEY",
            Builtin::GithubToken => "GITHUB_TOKEN",
            Builtin::SlackToken => "SLACK_TOKEN",
            Builtin::Email => "EMAIL",
            Builtin::Iban => "IBAN",
            Builtin::Card => "CARD",
            Builtin::UsSsn => "SSN",
            Builtin::Ipv4 => "IPV4",
            Builtin::Ipv6 => "IPV6",
            Builtin::Phone => "PHONE",
        }
    }

    fn scan(self, text: &str, id: usize, out: &mut Vec<Span>) {
        let b = text.as_bytes();
        let mut push = |start: usize, end: usize| out.push(Span { detector: id, start, end });
        match self {
            Builtin::PrivateKey => private_keys(b, &mut push),
            Builtin::Jwt => prefixed(b, &["eyJ"], jwt_end, &mut push),
            Builtin::AwsAccessKey => prefixed(b, &["AKIA", "ASIA", "ABIA", "ACCA"], |b, s| fixed_token(b, s, 20, upper_digit), &mut push),
            Builtin::AnthropicKey => prefixed(b, &["sk-ant-"], |b, s| token(b, s, 7 + 20, key_char), &mut push),
            Builtin::OpenAiKey => prefixed(b, &["sk-"], openai_end, &mut push),
            Builtin::GithubToken => prefixed(b, &["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"], github_end, &mut push),
            Builtin::SlackToken => {
                prefixed(b, &["xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-", "xoxe-"], |b, s| token(b, s, 5 + 10, slack_char), &mut push)
            }
            Builtin::Email => emails(b, &mut push),
            Builtin::Iban => ibans(b, &mut push),
            // One pass for all of them: see `Detectors::scan`.
            Builtin::Card | Builtin::UsSsn | Builtin::Ipv4 | Builtin::Phone => {}
            Builtin::Ipv6 => ipv6s(text, &mut push),
        }
    }
}

/// A user's detector: a regex, or a keyword list compiled into one.
#[derive(Debug)]
pub struct Custom {
    pub name: String,
    pub placeholder: String,
    pub regex: Regex,
}

#[derive(Debug)]
pub enum Kind {
    Builtin(Builtin),
    Custom(Custom),
    /// An entity type of the external guardrail service: found by it, never scanned here.
    External {
        name: String,
        placeholder: String,
    },
}

/// Every detector the configuration can name: the built-ins, then the custom ones.
#[derive(Debug)]
pub struct Detectors {
    pub kinds: Vec<Kind>,
}

impl Detectors {
    pub fn new(custom: Vec<Custom>) -> Self {
        let mut kinds: Vec<Kind> = Builtin::ALL.iter().map(|b| Kind::Builtin(*b)).collect();
        kinds.extend(custom.into_iter().map(Kind::Custom));
        Detectors { kinds }
    }

    pub fn name(&self, id: usize) -> &str {
        match self.kinds.get(id) {
            Some(Kind::Builtin(b)) => b.name(),
            Some(Kind::Custom(c)) => &c.name,
            Some(Kind::External { name, .. }) => name,
            None => "unknown",
        }
    }

    pub fn placeholder(&self, id: usize) -> &str {
        match self.kinds.get(id) {
            Some(Kind::Builtin(b)) => b.placeholder(),
            Some(Kind::Custom(c)) => &c.placeholder,
            Some(Kind::External { placeholder, .. }) => placeholder,
            None => "REDACTED",
        }
    }

    /// A detector of the external service's; its id.
    pub fn add_external(&mut self, name: String, placeholder: String) -> usize {
        self.kinds.push(Kind::External { name, placeholder });
        self.kinds.len() - 1
    }

    pub fn find(&self, name: &str) -> Option<usize> {
        (0..self.kinds.len()).find(|i| self.name(*i) == name)
    }

    /// The findings of the detectors `enabled` (by id) in `text`, in text order, without
    /// overlaps (the detector listed first wins; among custom ones, the longer match).
    pub fn scan(&self, text: &str, enabled: &[bool], out: &mut Vec<Span>) {
        let from = out.len();
        let on = |id: usize| enabled.get(id).copied().unwrap_or(false);
        let number_id = |which: Builtin| Builtin::ALL.iter().position(|b| *b == which).filter(|id| on(*id));
        if [Builtin::Card, Builtin::UsSsn, Builtin::Ipv4, Builtin::Phone].iter().any(|b| number_id(*b).is_some()) {
            numbers(text.as_bytes(), &number_id, out);
        }
        for (id, kind) in self.kinds.iter().enumerate() {
            if !on(id) {
                continue;
            }
            match kind {
                Kind::Builtin(b) => b.scan(text, id, out),
                Kind::Custom(c) => out.extend(c.regex.find_iter(text).filter(|m| !m.is_empty()).map(|m| Span {
                    detector: id,
                    start: m.start(),
                    end: m.end(),
                })),
                Kind::External { .. } => {}
            }
        }
        let Some(found) = out.get_mut(from..) else { return };
        found.sort_by_key(|s| (s.start, s.detector));
        let mut kept_end = 0;
        let mut write = from;
        for read in from..out.len() {
            let Some(span) = out.get(read).copied() else { break };
            if write > from && span.start < kept_end {
                continue;
            }
            kept_end = span.end;
            if let Some(slot) = out.get_mut(write) {
                *slot = span;
            }
            write += 1;
        }
        out.truncate(write);
    }
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// No word character right before `start` (or `start` is the text's start).
fn starts_word(b: &[u8], start: usize) -> bool {
    start == 0 || b.get(start - 1).is_none_or(|c| !is_word(*c))
}

fn ends_word(b: &[u8], end: usize) -> bool {
    b.get(end).is_none_or(|c| !is_word(*c))
}

fn upper_digit(c: u8) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit()
}

fn key_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

fn slack_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-'
}

/// Every occurrence of one of `prefixes` that starts a word, handed to `end` to confirm the
/// token and say where it ends.
fn prefixed(b: &[u8], prefixes: &[&str], end: impl Fn(&[u8], usize) -> Option<usize>, push: &mut impl FnMut(usize, usize)) {
    for prefix in prefixes {
        let Some(finder) = PREFIXES.iter().position(|p| p == prefix).and_then(|i| FINDERS.get(i)) else { continue };
        let mut after = 0;
        for start in finder.find_iter(b) {
            if start < after || !starts_word(b, start) {
                continue;
            }
            if let Some(e) = end(b, start) {
                push(start, e);
                after = e;
            }
        }
    }
}

/// The end of the run of `class` characters from `start` when it is at least `min` long and
/// ends a word.
fn token(b: &[u8], start: usize, min: usize, class: fn(u8) -> bool) -> Option<usize> {
    let len = b.get(start..)?.iter().take_while(|c| class(**c) || **c == b'-' || **c == b'_').count();
    (len >= min && ends_word(b, start + len)).then_some(start + len)
}

/// Exactly `len` `class` characters from `start`, then a word boundary (AWS key ids: 20).
fn fixed_token(b: &[u8], start: usize, len: usize, class: fn(u8) -> bool) -> Option<usize> {
    let run = b.get(start..start + len)?;
    (run.iter().all(|c| class(*c)) && ends_word(b, start + len)).then_some(start + len)
}

/// `sk-…` keys of OpenAI (`sk-`, `sk-proj-`, `sk-svcacct-`, `sk-admin-` then 20 or more
/// characters); Anthropic's `sk-ant-` keys are their own detector.
fn openai_end(b: &[u8], start: usize) -> Option<usize> {
    if b.get(start..start + 7) == Some(b"sk-ant-") {
        return None;
    }
    token(b, start, 3 + 20, key_char)
}

/// `ghp_` and kin take 36 letters and digits; fine-grained `github_pat_` tokens 22 or more.
fn github_end(b: &[u8], start: usize) -> Option<usize> {
    if b.get(start..start + 11) == Some(b"github_pat_") {
        return token(b, start, 11 + 22, key_char);
    }
    fixed_token(b, start + 4, 36, |c| c.is_ascii_alphanumeric()).filter(|_| b.get(start + 3) == Some(&b'_'))
}

/// Three dot-separated base64url segments, the first two JSON objects (`eyJ` is `{"`).
fn jwt_end(b: &[u8], start: usize) -> Option<usize> {
    let b64 = |c: &u8| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_';
    let mut i = start;
    for segment in 0..3 {
        let len = b.get(i..)?.iter().take_while(|c| b64(c)).count();
        if len < 4 || segment == 1 && b.get(i..i + 3) != Some(b"eyJ") {
            return None;
        }
        i += len;
        if segment < 2 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
    }
    ends_word(b, i).then_some(i)
}

/// PEM private key blocks (`-----BEGIN … PRIVATE KEY-----` to the matching END line).
fn private_keys(b: &[u8], push: &mut impl FnMut(usize, usize)) {
    const BEGIN: &[u8] = b"-----BEGIN ";
    const LABEL_END: &[u8] = b"PRIVATE KEY-----";
    // Labels are short (`ENCRYPTED PRIVATE KEY`); bounding the look keeps the scan linear.
    const LABEL_MAX: usize = 64;
    let mut from = 0;
    while let Some(found) = b.get(from..).and_then(|rest| memmem::find(rest, BEGIN)) {
        let start = from + found;
        let label = start + BEGIN.len();
        let line = b.get(label..).map_or(0, |r| r.iter().take(LABEL_MAX).take_while(|c| **c != b'\n' && **c != b'\r').count());
        from = label;
        let Some(header) = b.get(label..label + line) else { break };
        if !header.ends_with(LABEL_END) {
            continue;
        }
        let Some(end_at) = b.get(label + line..).and_then(|rest| memmem::find(rest, b"-----END ")) else { break };
        let end_label = label + line + end_at;
        let tail = b.get(end_label..).map_or(0, |r| r.iter().take(LABEL_MAX).take_while(|c| **c != b'\n' && **c != b'\r').count());
        let end = end_label + tail;
        if b.get(end_label..end).is_some_and(|l| l.ends_with(LABEL_END)) {
            push(start, end);
            from = end;
        }
    }
}

fn email_local(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn email_domain(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'.' || c == b'-'
}

/// `local@domain.tld`: ASCII addresses (internationalised ones are not detected), a domain of
/// at least two labels and a top-level label of two or more letters.
fn emails(b: &[u8], push: &mut impl FnMut(usize, usize)) {
    let mut after = 0;
    for at in memchr::memchr_iter(b'@', b) {
        if at < after {
            continue;
        }
        let local = b.get(..at).map_or(0, |r| r.iter().rev().take_while(|c| email_local(**c)).count());
        let mut start = at - local;
        while b.get(start) == Some(&b'.') && start < at {
            start += 1;
        }
        let domain = b.get(at + 1..).map_or(0, |r| r.iter().take_while(|c| email_domain(**c)).count());
        let mut end = at + 1 + domain;
        while end > at + 1 && matches!(b.get(end - 1), Some(b'.' | b'-')) {
            end -= 1;
        }
        let Some(host) = b.get(at + 1..end) else { continue };
        let tld = host.iter().rev().take_while(|c| **c != b'.').count();
        let tld_letters = host.get(host.len() - tld..).is_some_and(|t| t.len() >= 2 && t.iter().all(u8::is_ascii_alphabetic));
        if start < at && tld < host.len() && tld_letters && !host.starts_with(b".") && !host.windows(2).any(|w| w == b"..") {
            push(start, end);
            after = end;
        }
    }
}

/// ISO 13616 IBANs: country letters, two check digits, 11 to 30 letters and digits, printed
/// whole or in groups of four; confirmed by mod-97. A candidate that fails is retried without
/// its last group (the next word may have been taken for one).
fn ibans(b: &[u8], push: &mut impl FnMut(usize, usize)) {
    let mut i = 0;
    while i + 4 <= b.len() {
        let head = b.get(i..i + 4).unwrap_or_default();
        let candidate = head.first().is_some_and(u8::is_ascii_uppercase)
            && head.get(1).is_some_and(u8::is_ascii_uppercase)
            && head.get(2).is_some_and(u8::is_ascii_digit)
            && head.get(3).is_some_and(u8::is_ascii_digit)
            && starts_word(b, i);
        if !candidate {
            i += 1;
            continue;
        }
        // Where the candidate may end: after each run of letters and digits, with a single
        // space before each run (printed in groups) or none (printed whole).
        let mut ends = Vec::new();
        let mut j = i + 4;
        loop {
            let from = if b.get(j) == Some(&b' ') { j + 1 } else { j };
            let run = b.get(from..).map_or(0, |r| r.iter().take(43).take_while(|c| upper_digit(**c)).count());
            if run == 0 || from + run - i > 42 {
                break;
            }
            j = from + run;
            ends.push(j);
        }
        let found = ends.iter().rev().copied().find(|end| ends_word(b, *end) && iban_valid(b.get(i..*end).unwrap_or_default()));
        match found {
            Some(end) => {
                push(i, end);
                i = end;
            }
            None => i += 1,
        }
    }
}

/// Length 15–34 without spaces and the mod-97 check: the first four characters moved to the
/// end, letters as 10–35, the number modulo 97 is 1.
pub(crate) fn iban_valid(s: &[u8]) -> bool {
    let chars: Vec<u8> = s.iter().copied().filter(|c| *c != b' ').collect();
    if !(15..=34).contains(&chars.len()) || !chars.iter().all(|c| upper_digit(*c)) {
        return false;
    }
    let rotated = chars.iter().skip(4).chain(chars.iter().take(4));
    let mut rem: u32 = 0;
    for c in rotated {
        let v = if c.is_ascii_digit() { u32::from(c - b'0') } else { u32::from(c - b'A') + 10 };
        rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
    }
    rem == 1
}

/// The Luhn check over a number's digits.
pub(crate) fn luhn_valid(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(*d);
        if !i.is_multiple_of(2) {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// Runs of digits joined by single separators (space, `-`, `.`, `(`, `)`, `/`), with a leading
/// `+` or `(`, each classified as one candidate; `id` is the id of each number detector that
/// is enabled.
fn numbers(b: &[u8], id: &dyn Fn(Builtin) -> Option<usize>, out: &mut Vec<Span>) {
    let mut i = 0;
    while i < b.len() {
        let c = b.get(i).copied().unwrap_or_default();
        let opens = c.is_ascii_digit() || (c == b'+' || c == b'(') && b.get(i + 1).is_some_and(u8::is_ascii_digit);
        if !opens || !starts_word(b, i) || i > 0 && b.get(i - 1).is_some_and(|p| matches!(p, b'.' | b'-' | b'+')) {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        loop {
            match b.get(j) {
                Some(d) if d.is_ascii_digit() => j += 1,
                Some(b' ' | b'-' | b'.' | b')' | b'/') if b.get(j + 1).is_some_and(u8::is_ascii_digit) => j += 1,
                Some(b')') if b.get(j + 1) == Some(&b' ') && b.get(j + 2).is_some_and(u8::is_ascii_digit) => j += 2,
                _ => break,
            }
        }
        let span = b.get(i..j).unwrap_or_default();
        // The shortest number any of them takes is an IPv4 address like 1.1.1.1.
        if span.len() < 7 {
            i = j;
            continue;
        }
        if let Some(detector) = ends_word(b, j).then(|| classify(span)).flatten().and_then(id) {
            out.push(Span { detector, start: i, end: j });
        }
        i = j;
    }
}

/// Which number detector a candidate satisfies, if any.
fn classify(span: &[u8]) -> Option<Builtin> {
    let digits: Vec<u8> = span.iter().filter(|c| c.is_ascii_digit()).map(|c| c - b'0').collect();
    let separators: Vec<u8> = span.iter().copied().filter(|c| !c.is_ascii_digit()).collect();
    let groups: Vec<usize> = span.split(|c| !c.is_ascii_digit()).filter(|g| !g.is_empty()).map(<[u8]>::len).collect();
    let only = |allowed: &[u8]| separators.iter().all(|c| allowed.contains(c));
    if only(b".") && groups.len() == 4 && groups.iter().all(|g| *g <= 3) {
        let octets_ok =
            span.split(|c| *c == b'.').all(|o| std::str::from_utf8(o).ok().and_then(|o| o.parse::<u16>().ok()).is_some_and(|v| v <= 255));
        return octets_ok.then_some(Builtin::Ipv4);
    }
    if separators == b"--" && groups == [3, 2, 4] {
        let area = digits.get(..3).map_or(0, |d| d.iter().fold(0u32, |n, d| n * 10 + u32::from(*d)));
        let group = digits.get(3..5).is_some_and(|d| d != [0, 0]);
        let serial = digits.get(5..).is_some_and(|d| d != [0, 0, 0, 0]);
        return (area != 0 && area != 666 && area < 900 && group && serial).then_some(Builtin::UsSsn);
    }
    if only(b" -") && (13..=19).contains(&digits.len()) && (separators.is_empty() || groups.len() >= 3) && luhn_valid(&digits) {
        return Some(Builtin::Card);
    }
    phone(span, &digits, &groups).then_some(Builtin::Phone)
}

/// E.164 (`+` and 8–15 digits, grouped or not), North American numbers (`(555) 123-4567`,
/// `555-123-4567`, `555.123.4567`, `555 123 4567`, with an optional leading `1`), and national
/// numbers with a trunk `0` printed in groups (`020 7946 0958`, `01 23 45 67 89`).
fn phone(span: &[u8], digits: &[u8], groups: &[usize]) -> bool {
    if span.contains(&b'/') {
        return false;
    }
    if span.first() == Some(&b'+') {
        return (8..=15).contains(&digits.len()) && digits.first() != Some(&0);
    }
    let nanp = match groups {
        [3, 3, 4] => true,
        [1, 3, 3, 4] => digits.first() == Some(&1),
        _ => false,
    };
    let mixed_dots = span.contains(&b'.') && span.iter().any(|c| matches!(c, b' ' | b'-'));
    if nanp && !mixed_dots {
        return true;
    }
    digits.first() == Some(&0)
        && (10..=11).contains(&digits.len())
        && groups.len() >= 2
        && groups.iter().all(|g| (2..=5).contains(g))
        && !mixed_dots
}

fn ipv6_char(c: u8) -> bool {
    c.is_ascii_hexdigit() || c == b':' || c == b'.'
}

/// IPv6 addresses (with `::` compression and embedded IPv4), confirmed by the standard
/// library's parser; at least two colons and three hex digits, so times (`12:30:45`) and bare
/// `::` do not count.
fn ipv6s(text: &str, push: &mut impl FnMut(usize, usize)) {
    let b = text.as_bytes();
    let mut after = 0;
    for colon in memchr::memchr_iter(b':', b) {
        if colon < after {
            continue;
        }
        let back = b.get(..colon).map_or(0, |r| r.iter().rev().take_while(|c| ipv6_char(**c)).count());
        let start = colon - back;
        let fwd = b.get(colon..).map_or(0, |r| r.iter().take_while(|c| ipv6_char(**c)).count());
        let mut end = colon + fwd;
        after = end;
        while end > start && b.get(end - 1) == Some(&b'.') {
            end -= 1;
        }
        if b.get(end - 1) == Some(&b':') && b.get(end.saturating_sub(2)) != Some(&b':') {
            end -= 1;
        }
        let Some(candidate) = text.get(start..end) else { continue };
        let colons = candidate.bytes().filter(|c| *c == b':').count();
        let hex = candidate.bytes().filter(u8::is_ascii_hexdigit).count();
        if colons >= 2 && hex >= 3 && starts_word(b, start) && ends_word(b, end) && candidate.parse::<std::net::Ipv6Addr>().is_ok() {
            push(start, end);
        }
    }
}
