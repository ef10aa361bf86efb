//! The `guardrails` section: which detectors run on prompts and answers and what happens to what
//! they find.

use serde::Deserialize;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GuardrailsSpec {
    /// Detectors of the user's own: a regex or a keyword list each.
    #[serde(default)]
    pub custom: Vec<CustomDetectorSpec>,
    /// Evaluated in order for each finding; the first policy that applies to the request and
    /// names the finding's detector decides its action. Findings no policy names are not acted
    /// on (nor logged).
    #[serde(default)]
    pub policies: Vec<GuardrailPolicySpec>,
    /// A guardrail service speaking Presidio's analyzer API, called once per chat request.
    #[serde(default)]
    pub external: Option<ExternalGuardrailSpec>,
}

/// https://microsoft.github.io/presidio/api-docs/api-docs.html#tag/Analyzer/paths/~1analyze/post
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalGuardrailSpec {
    /// The Envoy cluster of the service.
    pub cluster: String,
    #[serde(default = "default_analyze_path")]
    pub path: String,
    /// `:authority` of the call (default: the cluster name).
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default = "default_language")]
    pub language: String,
    #[serde(default = "default_external_timeout_ms")]
    pub timeout_ms: u64,
    /// When the service fails (no answer in time, an error status, an unreadable answer): `open`
    /// lets the request go on with the built-in findings only, `closed` refuses it (503).
    #[serde(default)]
    pub on_failure: FailMode,
    /// The entity types taken from its answers (`PERSON`, `LOCATION`…); each is a detector named
    /// in lower case (`person`), or the built-in detector of that name. Others are ignored.
    pub entities: Vec<String>,
    /// Findings scored below this are ignored.
    #[serde(default)]
    pub min_score: f64,
}

fn default_analyze_path() -> String {
    "/analyze".into()
}

fn default_language() -> String {
    "en".into()
}

fn default_external_timeout_ms() -> u64 {
    1000
}

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    Open,
    #[default]
    Closed,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomDetectorSpec {
    pub name: String,
    /// A regex (the linear-time `regex-lite` dialect).
    #[serde(default)]
    pub regex: Option<String>,
    /// Whole words, matched ignoring ASCII case.
    #[serde(default)]
    pub keywords: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardrailPolicySpec {
    /// Detector names (built-in or custom); `*` for all.
    pub detectors: Vec<String>,
    pub action: GuardrailAction,
    /// With `redact`: placeholders in the answer are mapped back to the originals for the client.
    #[serde(default)]
    pub restore: bool,
    /// What the policy scans: the request (the default), the provider's answer, or both.
    #[serde(default)]
    pub direction: GuardrailDirection,
    /// Which requests the policy applies to; every condition given must hold.
    #[serde(default)]
    pub when: GuardrailScopeSpec,
}

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum GuardrailDirection {
    #[default]
    Request,
    Response,
    Both,
}

impl GuardrailDirection {
    pub fn requests(self) -> bool {
        self != GuardrailDirection::Response
    }

    pub fn answers(self) -> bool {
        self != GuardrailDirection::Request
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GuardrailScopeSpec {
    /// Requested model names (`*` wildcards).
    #[serde(default)]
    pub models: Vec<String>,
    /// Virtual key ids.
    #[serde(default)]
    pub keys: Vec<String>,
    #[serde(default)]
    pub teams: Vec<String>,
    /// Names of the routing rules (`routes[].name`) the request was routed by.
    #[serde(default)]
    pub routes: Vec<String>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum GuardrailAction {
    /// Only record the finding.
    Log,
    /// Leave it in place; the request must be routed by a rule whose `match.guardrails` names
    /// the detector (else it is refused).
    Route,
    /// Replace it with a typed placeholder in what goes to the provider.
    Redact,
    /// Refuse the request (400 `content_blocked`).
    Block,
}

impl GuardrailAction {
    pub fn as_str(self) -> &'static str {
        match self {
            GuardrailAction::Log => "log",
            GuardrailAction::Route => "route",
            GuardrailAction::Redact => "redact",
            GuardrailAction::Block => "block",
        }
    }
}
