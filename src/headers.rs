//! Which client request headers reach a provider: an allowlist, plus the names a provider entry
//! or a route lists in `forward_headers`. Everything else a client sends (cookies, `openai-organization`
//! and `openai-project` that would bill another org with the gateway's key, `anthropic-beta`,
//! custom headers) stays at the gateway. Tollgate's own headers (credentials, provider headers,
//! retry steering) are added after this policy, so it never removes them.

use crate::patterns;
use crate::schema::ConfigError;

/// Sent to every provider: framing and content negotiation (the provider needs them to read the
/// body and pick the answer's format), and tracing (`traceparent`/`tracestate` from W3C Trace
/// Context, `b3`/`x-b3-*` from Zipkin, Envoy's `x-request-id`) so a provider's logs can be
/// correlated with ours. `user-agent` names the client software, not an account: it neither
/// authenticates nor selects what is billed, and providers use it only for diagnostics.
/// `x-forwarded-proto` is set by Envoy, which matches no route without it.
const ALWAYS_FORWARDED: &[&str] =
    &["content-type", "content-length", "accept", "user-agent", "x-request-id", "traceparent", "tracestate", "b3", "x-forwarded-proto"];

/// Provider response headers the client gets: how to read the body, when to retry, and the
/// provider's id of the request (for support). Not the rest: `openai-organization` and
/// `x-ratelimit-*` describe the gateway's own account, `set-cookie` would hand the provider's
/// cookies to every client, and `x-tollgate-*` are Tollgate's to set. Envoy's `x-envoy-*` stay.
const RESPONSE_FORWARDED: &[&str] = &[
    "content-type",
    "content-length",
    "content-encoding",
    "cache-control",
    "vary",
    "date",
    "retry-after",
    "x-request-id",
    "request-id",
    "x-amzn-requestid",
];

/// The value of header `name` in a header list (the first, whatever the case of its name).
pub fn value<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// Whether a provider's response header reaches the client.
pub fn forwards_response(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.starts_with(':') || name.starts_with("x-envoy-") || RESPONSE_FORWARDED.contains(&name.as_str())
}

/// Headers `forward_headers` may not name: credentials of the client (for Tollgate) or of a
/// provider (set by Tollgate), Tollgate's and Envoy's control headers, the host and hop-by-hop headers.
const NEVER_FORWARDED: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "host",
    "connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "keep-alive",
];

/// Whether a client header reaches the provider, given the `forward_headers` that apply
/// (the provider's and the route's; entries are lowercase names or `prefix*`).
pub fn forwards(name: &str, configured: &[&[String]]) -> bool {
    let name = name.to_ascii_lowercase();
    if name.starts_with(':') {
        // Pseudo-headers carry the request line; Tollgate rewrites `:path`/`:authority` itself.
        return true;
    }
    if ALWAYS_FORWARDED.contains(&name.as_str()) || name.starts_with("x-b3-") {
        return true;
    }
    !is_never_forwarded(&name) && configured.iter().flat_map(|list| list.iter()).any(|pattern| patterns::matches(pattern, &name))
}

/// The trace context headers (W3C Trace Context, Zipkin B3): Envoy's tracer rewrites them on the
/// upstream request so that the provider's span is a child of Envoy's.
pub fn is_trace_context(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(name.as_str(), "traceparent" | "tracestate" | "b3") || name.starts_with("x-b3-")
}

/// Keeps the client headers the policy forwards, in order.
pub fn forwarded(headers: &[(String, String)], configured: &[&[String]]) -> Vec<(String, String)> {
    headers.iter().filter(|(name, _)| forwards(name, configured)).cloned().collect()
}

fn is_never_forwarded(name: &str) -> bool {
    NEVER_FORWARDED.contains(&name) || is_control_header(name)
}

/// Request headers that steer Envoy or Tollgate: only Tollgate sets them, whatever a client sends.
pub fn is_control_header(name: &str) -> bool {
    let name = name.as_bytes();
    [b"x-envoy-".as_slice(), b"x-tollgate-".as_slice()]
        .iter()
        .any(|p| name.len() >= p.len() && name.get(..p.len()).is_some_and(|n| n.eq_ignore_ascii_case(p)))
}

/// Checks a `forward_headers` list from the configuration and returns it lowercased.
pub fn compile_forward_headers(field: &str, names: &[String]) -> Result<Vec<String>, ConfigError> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let lower = name.trim().to_ascii_lowercase();
            let literal = patterns::prefix_pattern(&lower).unwrap_or(&lower);
            let token = !literal.is_empty() && literal.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !token || (lower.contains('*') && patterns::prefix_pattern(&lower).is_none()) {
                return Err(ConfigError::new(format!("{field}[{i}]"), "must be a header name, or a prefix ending in `*`"));
            }
            if is_never_forwarded(literal)
                || NEVER_FORWARDED.iter().any(|n| patterns::matches(&lower, n))
                || ["x-tollgate-", "x-envoy-"].iter().any(|c| patterns::matches(&lower, c))
            {
                return Err(ConfigError::new(
                    format!("{field}[{i}]"),
                    format!("`{name}` carries credentials or steers the gateway; it is never forwarded"),
                ));
            }
            Ok(lower)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn only_the_allowlist_reaches_a_provider_by_default() {
        let client = h(&[
            (":path", "/v1/chat/completions"),
            ("content-type", "application/json"),
            ("accept", "text/event-stream"),
            ("user-agent", "OpenAI/Python 1.0"),
            ("x-request-id", "r1"),
            ("traceparent", "00-abc-def-01"),
            ("tracestate", "v=1"),
            ("x-b3-traceid", "t"),
            ("cookie", "session=1"),
            ("openai-organization", "org-other"),
            ("openai-project", "proj-other"),
            ("anthropic-beta", "x"),
            ("x-custom", "1"),
            ("accept-encoding", "gzip"),
            ("x-forwarded-for", "10.0.0.1"),
            ("authorization", "Bearer client"),
        ]);
        let names: Vec<String> = forwarded(&client, &[]).into_iter().map(|(k, _)| k).collect();
        assert_eq!(names, [":path", "content-type", "accept", "user-agent", "x-request-id", "traceparent", "tracestate", "x-b3-traceid"]);
    }

    #[test]
    fn trace_context_headers_are_w3c_and_b3() {
        for name in ["traceparent", "Tracestate", "b3", "x-b3-traceid", "X-B3-Sampled"] {
            assert!(is_trace_context(name), "{name}");
        }
        for name in ["x-request-id", "trace", "b3x", "content-type"] {
            assert!(!is_trace_context(name), "{name}");
        }
    }

    #[test]
    fn configured_names_and_prefixes_are_forwarded_from_any_list() {
        let provider = vec!["openai-organization".to_owned()];
        let route = vec!["x-team-*".to_owned()];
        assert!(forwards("OpenAI-Organization", &[&provider, &route]));
        assert!(forwards("x-team-id", &[&provider, &route]));
        assert!(!forwards("x-custom", &[&provider, &route]));
        assert!(!forwards("openai-organization", &[&route]));
    }

    #[test]
    fn credentials_and_control_headers_are_never_forwarded_even_when_configured() {
        let all = vec!["*".to_owned()];
        for name in ["authorization", "x-api-key", "x-goog-api-key", "api-key", "host", "x-tollgate-plan", "x-envoy-max-retries"] {
            assert!(!forwards(name, &[&all]), "{name}");
        }
        assert!(forwards("cookie", &[&all]));
    }

    #[test]
    fn providers_response_headers_about_the_gateways_account_stay_here() {
        for name in
            ["openai-organization", "set-cookie", "x-ratelimit-remaining-tokens", "anthropic-ratelimit-requests-limit", "x-tollgate-usage"]
        {
            assert!(!forwards_response(name), "{name}");
        }
        for name in [":status", "Content-Type", "retry-after", "x-request-id", "x-envoy-upstream-service-time"] {
            assert!(forwards_response(name), "{name}");
        }
    }

    #[test]
    fn config_lists_are_checked_and_lowercased() {
        let ok = compile_forward_headers("f", &["X-Custom".into(), "x-team-*".into()]).unwrap();
        assert_eq!(ok, ["x-custom", "x-team-*"]);
        for bad in ["authorization", "x-tollgate-cluster", "x-envoy-*", "x-e*", "x-*", "*", "a b", "", "x*y", "host"] {
            assert!(compile_forward_headers("f", &[bad.into()]).is_err(), "{bad}");
        }
    }
}
