//! AWS Signature Version 4, checked the way an AWS service checks it
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html>):
//! the canonical request is rebuilt from what arrived on the wire, signed with
//! the secret of the access key the `Authorization` header names, and compared
//! with the signature it carries.

use std::fmt::Write;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::http::Request;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Temporary credentials only work with their session token.
    pub session_token: Option<String>,
}

impl std::str::FromStr for Credentials {
    type Err = String;

    /// `KEY:SECRET` or `KEY:SECRET:TOKEN`.
    fn from_str(text: &str) -> Result<Self, String> {
        let mut parts = text.split(':');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(key), Some(secret), token, None) if !key.is_empty() && !secret.is_empty() => Ok(Credentials {
                access_key_id: key.to_owned(),
                secret_access_key: secret.to_owned(),
                session_token: token.filter(|token| !token.is_empty()).map(str::to_owned),
            }),
            _ => Err(format!("AWS credentials must be KEY:SECRET or KEY:SECRET:TOKEN, got {text:?}")),
        }
    }
}

/// Why a request is refused, with the error type AWS answers it with (all 403).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub kind: &'static str,
    pub message: String,
}

fn reject(kind: &'static str, message: impl Into<String>) -> Rejection {
    Rejection { kind, message: message.into() }
}

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The parts of `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Option<Authorization<'_>> {
    let rest = value.strip_prefix(ALGORITHM)?.strip_prefix(' ')?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (name, value) = part.trim().split_once('=')?;
        match name {
            "Credential" => credential = Some(value),
            "SignedHeaders" => signed = Some(value),
            "Signature" => signature = Some(value),
            _ => return None,
        }
    }
    let mut scope = credential?.split('/');
    let parsed = Authorization {
        access_key_id: scope.next()?,
        date: scope.next()?,
        region: scope.next()?,
        service: scope.next()?,
        signed_headers: signed?.split(';').collect(),
        signature: signature?,
    };
    (scope.next()? == "aws4_request" && scope.next().is_none()).then_some(parsed)
}

pub fn verify(request: &Request, known: &[Credentials], service: &str) -> Result<(), Rejection> {
    let Some(header) = request.header("authorization") else {
        return Err(reject("MissingAuthenticationTokenException", "Missing Authentication Token"));
    };
    let Some(auth) = parse_authorization(header) else {
        return Err(reject(
            "IncompleteSignatureException",
            format!("Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters. Authorization={header}"),
        ));
    };
    let Some(credentials) = known.iter().find(|c| c.access_key_id == auth.access_key_id) else {
        return Err(reject("UnrecognizedClientException", "The security token included in the request is invalid."));
    };
    if request.header("x-amz-security-token") != credentials.session_token.as_deref() {
        return Err(reject("UnrecognizedClientException", "The security token included in the request is invalid."));
    }
    if auth.service != service {
        return Err(reject("InvalidSignatureException", format!("Credential should be scoped to correct service: '{service}'.")));
    }
    let Some(amz_date) = request.header("x-amz-date") else {
        return Err(reject(
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        ));
    };
    if amz_date.get(..8) != Some(auth.date) {
        return Err(reject(
            "InvalidSignatureException",
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP.",
        ));
    }
    if !auth.signed_headers.windows(2).all(|pair| pair[0] < pair[1])
        || auth.signed_headers.iter().any(|name| name.is_empty() || name.bytes().any(|b| b.is_ascii_uppercase()))
    {
        return Err(reject("InvalidSignatureException", "SignedHeaders must list lower-case header names, sorted, once each."));
    }
    let mut required = vec!["host", "x-amz-date"];
    if credentials.session_token.is_some() {
        required.push("x-amz-security-token");
    }
    if let Some(missing) = required.iter().find(|name| !auth.signed_headers.contains(name)) {
        return Err(reject("InvalidSignatureException", format!("'{missing}' must be a signed header.")));
    }
    let payload = hex(&Sha256::digest(&request.body));
    if request.header("x-amz-content-sha256").is_some_and(|claimed| claimed != payload) {
        return Err(reject("InvalidSignatureException", "The provided 'x-amz-content-sha256' header does not match what was computed."));
    }
    let mut canonical_headers = String::new();
    for name in &auth.signed_headers {
        let Some(value) = request.header(name) else {
            return Err(reject("InvalidSignatureException", format!("Signed header '{name}' is missing from the request.")));
        };
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        let _ = writeln!(canonical_headers, "{name}:{value}");
    }
    let canonical_request = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{}\n{payload}",
        request.method,
        canonical_uri(&request.path),
        canonical_query(request.query.as_deref().unwrap_or_default()),
        auth.signed_headers.join(";"),
    );
    let scope = format!("{}/{}/{}/aws4_request", auth.date, auth.region, auth.service);
    let string_to_sign = format!("{ALGORITHM}\n{amz_date}\n{scope}\n{}", hex(&Sha256::digest(canonical_request.as_bytes())));
    let mut key = hmac(format!("AWS4{}", credentials.secret_access_key).as_bytes(), auth.date.as_bytes());
    for part in [auth.region, auth.service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    if hex(&hmac(&key, string_to_sign.as_bytes())) != auth.signature {
        return Err(reject(
            "InvalidSignatureException",
            format!(
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.\n\nThe Canonical String for this request should have been\n'{canonical_request}'\n\nThe String-to-Sign should have been\n'{string_to_sign}'\n"
            ),
        ));
    }
    Ok(())
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// SigV4's `UriEncode`: everything but the unreserved characters.
pub fn uri_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Services other than S3 encode each segment of the path as received once more.
fn canonical_uri(path: &str) -> String {
    if path.is_empty() { "/".to_owned() } else { path.split('/').map(uri_encode).collect::<Vec<_>>().join("/") }
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(&str, &str)> = query.split('&').filter(|p| !p.is_empty()).map(|p| p.split_once('=').unwrap_or((p, ""))).collect();
    pairs.sort_unstable();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// Signs a request the way a client does, for the mock's own tests. Sorting the headers
    /// here (and not in [`verify`]) keeps the two sides independent.
    pub fn sign(credentials: &Credentials, region: &str, service: &str, amz_date: &str, request: &mut Request) {
        request.headers.push(("x-amz-date".to_owned(), amz_date.to_owned()));
        if let Some(token) = &credentials.session_token {
            request.headers.push(("x-amz-security-token".to_owned(), token.clone()));
        }
        let mut signed: Vec<(String, String)> = request
            .headers
            .iter()
            .filter(|(name, _)| matches!(name.as_str(), "host" | "x-amz-date" | "x-amz-security-token" | "content-type"))
            .cloned()
            .collect();
        signed.sort();
        let names = signed.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>().join(";");
        let headers: String = signed.iter().map(|(name, value)| format!("{name}:{value}\n")).collect();
        let creq =
            format!("{}\n{}\n\n{headers}\n{names}\n{}", request.method, canonical_uri(&request.path), hex(&Sha256::digest(&request.body)));
        let date = &amz_date[..8];
        let scope = format!("{date}/{region}/{service}/aws4_request");
        let sts = format!("{ALGORITHM}\n{amz_date}\n{scope}\n{}", hex(&Sha256::digest(creq.as_bytes())));
        let mut key = hmac(format!("AWS4{}", credentials.secret_access_key).as_bytes(), date.as_bytes());
        for part in [region, service, "aws4_request"] {
            key = hmac(&key, part.as_bytes());
        }
        let signature = hex(&hmac(&key, sts.as_bytes()));
        let auth = format!("{ALGORITHM} Credential={}/{scope}, SignedHeaders={names}, Signature={signature}", credentials.access_key_id);
        request.headers.push(("authorization".to_owned(), auth));
    }

    fn request(path: &str, body: &str) -> Request {
        let raw = format!("POST {path} HTTP/1.1\r\nhost: example.amazonaws.com\r\ncontent-length: {}\r\n\r\n{body}", body.len());
        crate::http::read_request(&mut raw.as_bytes(), &mut Vec::new()).unwrap().unwrap()
    }

    fn creds(token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".to_owned(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_owned(),
            session_token: token.map(str::to_owned),
        }
    }

    #[test]
    fn accepts_aws_test_suite_post_vanilla() {
        // https://github.com/awslabs/aws-c-auth/tree/main/tests/aws-signing-test-suite/v4/post-vanilla
        let mut r = request("/", "");
        r.headers.push(("x-amz-date".to_owned(), "20150830T123600Z".to_owned()));
        r.headers.push((
            "authorization".to_owned(),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b".to_owned(),
        ));
        assert_eq!(verify(&r, &[creds(None)], "service"), Ok(()));
        assert_eq!(verify(&r, &[creds(None)], "bedrock").unwrap_err().kind, "InvalidSignatureException");
    }

    #[test]
    fn verifies_double_encoded_paths_tokens_and_bodies() {
        let path = "/model/anthropic.claude-v2%3A1/converse";
        let mut r = request(path, r#"{"messages":[]}"#);
        sign(&creds(Some("tok")), "us-east-1", "bedrock", "20240102T030405Z", &mut r);
        assert_eq!(verify(&r, &[creds(Some("tok"))], "bedrock"), Ok(()));
        // without its token, or with a token it does not have, a key is refused
        assert_eq!(verify(&r, &[creds(None)], "bedrock").unwrap_err().kind, "UnrecognizedClientException");
        let mut other_body = r.clone();
        other_body.body = br#"{"messages":[1]}"#.to_vec();
        let e = verify(&other_body, &[creds(Some("tok"))], "bedrock").unwrap_err();
        assert!(e.message.starts_with("The request signature we calculated does not match"), "{e:?}");
        assert!(e.message.contains("/model/anthropic.claude-v2%253A1/converse\n"), "{}", e.message);
        let mut wrong_secret = creds(Some("tok"));
        wrong_secret.secret_access_key.push('x');
        assert_eq!(verify(&r, &[wrong_secret], "bedrock").unwrap_err().kind, "InvalidSignatureException");
    }

    #[test]
    fn refuses_missing_or_malformed_authorization() {
        let r = request("/", "");
        assert_eq!(verify(&r, &[creds(None)], "bedrock").unwrap_err().kind, "MissingAuthenticationTokenException");
        let mut r = request("/", "");
        r.headers.push(("authorization".to_owned(), "Bearer abc".to_owned()));
        assert_eq!(verify(&r, &[creds(None)], "bedrock").unwrap_err().kind, "IncompleteSignatureException");
        let mut r = request("/", "");
        sign(&creds(None), "us-east-1", "bedrock", "20240102T030405Z", &mut r);
        let other = Credentials { access_key_id: "AKIDOTHER".to_owned(), ..creds(None) };
        assert_eq!(verify(&r, &[other], "bedrock").unwrap_err().kind, "UnrecognizedClientException");
    }

    #[test]
    fn parses_credentials_flags() {
        assert_eq!("K:S".parse::<Credentials>().unwrap().session_token, None);
        assert_eq!("K:S:T".parse::<Credentials>().unwrap().session_token.as_deref(), Some("T"));
        assert!("K".parse::<Credentials>().is_err());
        assert!("K:S:T:X".parse::<Credentials>().is_err());
    }
}
