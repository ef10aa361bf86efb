//! The external guardrail hook: one HTTP call per chat request to a service speaking Microsoft
//! Presidio's analyzer API (`POST /analyze` with `{"text","language"}`, answered by a list of
//! `{entity_type, start, end, score}`;
//! https://microsoft.github.io/presidio/api-docs/api-docs.html#tag/Analyzer/paths/~1analyze/post),
//! so Presidio plugs in unchanged. The call itself is the shell's (an Envoy HTTP callout); here
//! are its request and the reading of its answer into findings, merged with the built-in ones.

use super::Finding;
use super::detectors::Detectors;
use crate::schema::{ConfigError, ExternalGuardrailSpec, FailMode};
use serde::{Deserialize, Serialize};

#[derive(Debug)]
pub struct External {
    pub cluster: String,
    pub path: String,
    pub authority: String,
    pub timeout_ms: u64,
    pub fail_open: bool,
    language: String,
    min_score: f64,
    /// Presidio entity type → detector id.
    entities: Vec<(String, usize)>,
}

/// The call to make for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis {
    pub cluster: String,
    pub path: String,
    pub authority: String,
    pub timeout_ms: u64,
    pub body: Vec<u8>,
}

impl Analysis {
    pub fn request_headers<'a>(&'a self, request_id: &'a str) -> [(&'static str, &'a str); 5] {
        [
            (":method", "POST"),
            (":path", self.path.as_str()),
            (":authority", self.authority.as_str()),
            ("content-type", "application/json"),
            ("x-request-id", request_id),
        ]
    }
}

#[derive(Serialize)]
struct AnalyzeRequest<'a> {
    text: &'a str,
    language: &'a str,
}

#[derive(Deserialize)]
struct Recognized {
    entity_type: String,
    start: usize,
    end: usize,
    #[serde(default)]
    score: f64,
}

impl External {
    /// The entity detectors are added to `detectors` (unless a detector has the name already).
    pub fn compile(spec: &ExternalGuardrailSpec, detectors: &mut Detectors) -> Result<External, ConfigError> {
        if spec.entities.is_empty() {
            return Err(ConfigError::new("guardrails.external.entities", "name the entity types to take (e.g. PERSON)"));
        }
        if !spec.path.starts_with('/') {
            return Err(ConfigError::new("guardrails.external.path", "must start with /"));
        }
        let mut entities = Vec::with_capacity(spec.entities.len());
        for entity in &spec.entities {
            let name = entity.to_ascii_lowercase();
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
                return Err(ConfigError::new("guardrails.external.entities", format!("`{entity}` is not an entity type like PERSON")));
            }
            let id = detectors.find(&name).unwrap_or_else(|| detectors.add_external(name, entity.to_ascii_uppercase()));
            entities.push((entity.clone(), id));
        }
        Ok(External {
            cluster: spec.cluster.clone(),
            path: spec.path.clone(),
            authority: spec.host.clone().unwrap_or_else(|| spec.cluster.clone()),
            timeout_ms: spec.timeout_ms,
            fail_open: spec.on_failure == FailMode::Open,
            language: spec.language.clone(),
            min_score: spec.min_score,
            entities,
        })
    }

    pub fn analysis(&self, text: &str) -> Analysis {
        let body = serde_json::to_vec(&AnalyzeRequest { text, language: &self.language }).unwrap_or_default();
        Analysis {
            cluster: self.cluster.clone(),
            path: self.path.clone(),
            authority: self.authority.clone(),
            timeout_ms: self.timeout_ms,
            body,
        }
    }

    /// The findings of the service's answer about `text` (`status` `None`: no answer); `Err`
    /// says why there are none to take. Presidio counts offsets in characters (Python string
    /// indices), turned here into byte offsets.
    pub fn findings<'t>(&self, text: &'t str, status: Option<u16>, answer: &[u8]) -> Result<Vec<Finding<'t>>, String> {
        match status {
            None => return Err("it did not answer in time".into()),
            Some(200) => {}
            Some(s) => return Err(format!("it answered HTTP {s}")),
        }
        crate::json::check_depth(answer).map_err(|_| "its answer nests too deeply".to_owned())?;
        let recognized: Vec<Recognized> =
            serde_json::from_slice(answer).map_err(|e| format!("its answer is not a list of findings ({e})"))?;
        let mut bytes: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        bytes.push(text.len());
        let mut findings = Vec::new();
        for r in recognized {
            let Some((_, detector)) = self.entities.iter().find(|(e, _)| *e == r.entity_type) else { continue };
            if r.score < self.min_score || r.start >= r.end {
                continue;
            }
            let (Some(start), Some(end)) = (bytes.get(r.start), bytes.get(r.end)) else {
                return Err(format!("a finding lies outside the text ({}..{})", r.start, r.end));
            };
            if let Some(value) = text.get(*start..*end) {
                findings.push(Finding { detector: *detector, value });
            }
        }
        Ok(findings)
    }
}
