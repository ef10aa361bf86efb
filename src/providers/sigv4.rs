//! AWS Signature Version 4 request signing, header form, for services other than S3.
//! Reference: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html
//! (canonical request, string to sign, signing key, `Authorization` header); checked against AWS's
//! published test suite (https://github.com/awslabs/aws-c-auth/tree/main/tests/aws-signing-test-suite/v4).
//!
//! The caller chooses which headers are signed. Only headers whose final value the signer's caller
//! controls may be signed: a proxy that rewrites or adds a signed header after signing would break
//! the signature.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use std::fmt::Write;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// What is signed besides the headers.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path as sent on the wire (its segments already URI-encoded once), optionally with a
    /// query already encoded the SigV4 way.
    pub path: &'a str,
    /// The headers to sign: lowercase, unique names, values as sent. Must include `host` and
    /// `x-amz-date`.
    pub headers: &'a [(&'a str, &'a str)],
    /// Hex SHA-256 of the body exactly as sent.
    pub payload_sha256: &'a str,
}

/// Whose key signs, where and when.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    /// The request time as `YYYYMMDDTHHMMSSZ`, the `x-amz-date` value.
    pub amz_date: &'a str,
}

/// The signature and the intermediate strings AWS documents, for tests and diagnosis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub canonical_request: String,
    pub string_to_sign: String,
    pub authorization: String,
}

/// `YYYYMMDDTHHMMSSZ` for a Unix time in milliseconds.
pub fn amz_date(now_ms: u64) -> String {
    let secs = now_ms / 1000;
    let (y, m, d) = crate::clock::civil_from_days(secs / 86_400);
    let t = secs % 86_400;
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", t / 3600, t % 3600 / 60, t % 60)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn hmac(key: &[u8], data: &[u8]) -> Option<[u8; 32]> {
    // HMAC takes keys of any length: `new_from_slice` cannot fail here.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    mac.update(data);
    Some(mac.finalize().into_bytes().into())
}

/// RFC 3986 percent-encoding of everything but the unreserved characters, upper-case hex, as
/// SigV4's `UriEncode` specifies.
pub fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Every path segment encoded again: non-S3 services sign the wire path's segments encoded a
/// second time (a model id's `:` is `%3A` on the wire and `%253A` in the canonical request).
fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    path.split('/').map(uri_encode).collect::<Vec<_>>().join("/")
}

/// Parameters sorted by name, then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(&str, &str)> = query.split('&').filter(|p| !p.is_empty()).map(|p| p.split_once('=').unwrap_or((p, ""))).collect();
    pairs.sort_unstable();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// Trimmed, with runs of spaces collapsed to one.
fn canonical_value(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Signs `request`; `None` only if the HMAC cannot be keyed, which SHA-256 HMAC never refuses.
pub fn sign(scope: &Scope, request: &Request) -> Option<Signature> {
    let (path, query) = request.path.split_once('?').unwrap_or((request.path, ""));
    let mut headers: Vec<(&str, &str)> = request.headers.to_vec();
    headers.sort_unstable_by_key(|(name, _)| *name);
    let canonical_headers: String = headers.iter().map(|(name, value)| format!("{name}:{}\n", canonical_value(value))).collect();
    let signed_headers = headers.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(";");
    let canonical_request = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        request.method,
        canonical_uri(path),
        canonical_query(query),
        request.payload_sha256
    );
    let date = scope.amz_date.get(..8).unwrap_or_default();
    let credential_scope = format!("{date}/{}/{}/aws4_request", scope.region, scope.service);
    let string_to_sign = format!("{ALGORITHM}\n{}\n{credential_scope}\n{}", scope.amz_date, sha256_hex(canonical_request.as_bytes()));
    let k_date = hmac(format!("AWS4{}", scope.secret_access_key).as_bytes(), date.as_bytes())?;
    let k_region = hmac(&k_date, scope.region.as_bytes())?;
    let k_service = hmac(&k_region, scope.service.as_bytes())?;
    let k_signing = hmac(&k_service, b"aws4_request")?;
    let signature = hex(&hmac(&k_signing, string_to_sign.as_bytes())?);
    let authorization =
        format!("{ALGORITHM} Credential={}/{credential_scope}, SignedHeaders={signed_headers}, Signature={signature}", scope.access_key_id);
    Some(Signature { canonical_request, string_to_sign, authorization })
}

#[cfg(test)]
mod tests {
    use super::*;

    // The suite's context: https://github.com/awslabs/aws-c-auth/tree/main/tests/aws-signing-test-suite/v4
    const AKID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const DATE: &str = "20150830T123600Z";
    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn suite_scope() -> Scope<'static> {
        Scope { access_key_id: AKID, secret_access_key: SECRET, region: "us-east-1", service: "service", amz_date: DATE }
    }

    /// Signs like the suite and checks canonical request, string to sign and header exactly.
    fn check(method: &str, path: &str, headers: &[(&str, &str)], payload: &[u8], creq: &str, sts: &str, authz: &str) {
        let payload_sha256 = sha256_hex(payload);
        let s = sign(&suite_scope(), &Request { method, path, headers, payload_sha256: &payload_sha256 }).unwrap();
        assert_eq!(s.canonical_request, creq, "canonical request of {method} {path}");
        assert_eq!(s.string_to_sign, sts, "string to sign of {method} {path}");
        assert_eq!(s.authorization, authz, "authorization of {method} {path}");
    }

    const HOST: (&str, &str) = ("host", "example.amazonaws.com");
    const AMZ_DATE: (&str, &str) = ("x-amz-date", DATE);

    #[test]
    fn get_vanilla() {
        check(
            "GET",
            "/",
            &[HOST, AMZ_DATE],
            b"",
            &format!("GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n{EMPTY_SHA256}"),
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        );
    }

    #[test]
    fn post_vanilla() {
        check(
            "POST",
            "/",
            &[AMZ_DATE, HOST],
            b"",
            &format!("POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n{EMPTY_SHA256}"),
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        );
    }

    #[test]
    fn get_vanilla_query_order_key_case() {
        check(
            "GET",
            "/?Param2=value2&Param1=value1",
            &[HOST, AMZ_DATE],
            b"",
            &format!(
                "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n{EMPTY_SHA256}"
            ),
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        );
    }

    #[test]
    fn post_x_www_form_urlencoded() {
        let body = b"Param1=value1";
        let hash = "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e";
        assert_eq!(sha256_hex(body), hash);
        check(
            "POST",
            "/",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                HOST,
                ("content-length", "13"),
                AMZ_DATE,
                ("x-amz-content-sha256", hash),
            ],
            body,
            &format!(
                "POST\n/\n\ncontent-length:13\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\nx-amz-content-sha256:{hash}\nx-amz-date:20150830T123600Z\n\ncontent-length;content-type;host;x-amz-content-sha256;x-amz-date\n{hash}"
            ),
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nb1edd1d03544c25390e32085d55b57acc9a3961bb59415ff86c45c3d89d16cfb",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date, Signature=d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b",
        );
    }

    #[test]
    fn post_sts_header_before_signs_the_session_token() {
        let token = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";
        check(
            "POST",
            "/",
            &[HOST, ("x-amz-security-token", token), AMZ_DATE],
            b"",
            &format!(
                "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\nx-amz-security-token:{token}\n\nhost;x-amz-date;x-amz-security-token\n{EMPTY_SHA256}"
            ),
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nc237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
        );
    }

    #[test]
    fn get_vanilla_with_session_token() {
        let token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
        check(
            "GET",
            "/",
            &[HOST, AMZ_DATE, ("x-amz-security-token", token)],
            b"",
            &format!(
                "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\nx-amz-security-token:{token}\n\nhost;x-amz-date;x-amz-security-token\n{EMPTY_SHA256}"
            ),
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n067b36aa60031588cea4a4cde1f21215227a047690c72247f1d70b32fbbfad2b",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8",
        );
    }

    #[test]
    fn get_utf8_encodes_path_bytes() {
        check(
            "GET",
            "/\u{1234}",
            &[HOST, AMZ_DATE],
            b"",
            &format!("GET\n/%E1%88%B4\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n{EMPTY_SHA256}"),
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n2a0a97d02205e45ce2e994789806b19270cfbbb0921b278ccf58f5249ac42102",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
        );
    }

    #[test]
    fn bedrock_paths_are_encoded_twice_in_the_canonical_request() {
        let wire = format!("/model/{}/converse", uri_encode("us.anthropic.claude-sonnet-4-5-20250929-v1:0"));
        assert_eq!(wire, "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse");
        assert_eq!(canonical_uri(&wire), "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%253A0/converse");
        let arn = format!("/model/{}/invoke", uri_encode("arn:aws:bedrock:us-west-2:123456789012:inference-profile/x"));
        assert_eq!(canonical_uri(&arn), "/model/arn%253Aaws%253Abedrock%253Aus-west-2%253A123456789012%253Ainference-profile%252Fx/invoke");
        assert_eq!(uri_encode("a b+c*~"), "a%20b%2Bc%2A~");
        assert_eq!(canonical_value("  a   b  "), "a b");
    }

    #[test]
    fn amz_date_formats_utc() {
        assert_eq!(amz_date(1_440_938_160_000), "20150830T123600Z");
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(951_782_399_999), "20000228T235959Z");
        assert_eq!(amz_date(951_868_800_000), "20000301T000000Z");
    }
}
