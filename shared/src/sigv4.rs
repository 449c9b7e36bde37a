//! AWS Signature Version 4 for the requests to11 sends to Bedrock (service name `bedrock` for both
//! the runtime and the control-plane host). Pure: the caller passes the time.
//!
//! Written here rather than taken from `aws-sigv4`, which would bring a second major version of
//! `hmac`/`sha2`, `time`, `http` and the Smithy runtime into every binary for ~100 lines of code;
//! the tests pin this implementation to AWS's published test vectors.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Static AWS credentials, with the session token of temporary (STS) credentials.
#[derive(Clone)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl AwsCredentials {
    /// Every part an echo of the credentials could show (the secret is never sent, but is
    /// looked for all the same).
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        [self.access_key_id.as_str(), self.secret_access_key.as_str()]
            .into_iter()
            .chain(self.session_token.as_deref())
    }
}

/// One request to sign. `path` is the path exactly as sent (already percent-encoded where needed);
/// `query` the raw query string, without `?`. `headers` are the headers to sign besides `host`,
/// `x-amz-date` and `x-amz-security-token`, which `sign` adds itself.
pub struct Request<'a> {
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// The headers to add to the request: `authorization`, `x-amz-date` and, for temporary
/// credentials, `x-amz-security-token`.
pub struct Signed {
    pub authorization: String,
    pub amz_date: String,
    pub security_token: Option<String>,
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length.
    let Ok(mut m) = HmacSha256::new_from_slice(key) else {
        return Vec::new();
    };
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// AWS's URI encoding: every byte except the unreserved `A-Z a-z 0-9 - _ . ~` as `%XX`;
/// `/` kept when `keep_slash`.
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `(YYYYMMDD'T'HHMMSS'Z', YYYYMMDD)` for a Unix time in seconds.
pub fn amz_date(unix_secs: i64) -> (String, String) {
    let t = chrono::DateTime::from_timestamp(unix_secs, 0).unwrap_or_default();
    (
        t.format("%Y%m%dT%H%M%SZ").to_string(),
        t.format("%Y%m%d").to_string(),
    )
}

/// Canonical query: parameters sorted by encoded name then value, each name and value encoded.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            (uri_encode(&dec(k), false), uri_encode(&dec(v), false))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Signs `req` for `service` in `region` at `unix_secs`. Services other than S3 encode the path a
/// second time in the canonical request, as the AWS SDKs do: the path sent stays as given.
pub fn sign(
    req: &Request<'_>,
    creds: &AwsCredentials,
    region: &str,
    service: &str,
    unix_secs: i64,
) -> Signed {
    let (amz_date, day) = amz_date(unix_secs);
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    headers.push(("host".into(), req.host.to_string()));
    headers.push(("x-amz-date".into(), amz_date.clone()));
    if let Some(t) = &creds.session_token {
        headers.push(("x-amz-security-token".into(), t.clone()));
    }
    headers.sort();
    let signed_headers = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let path = if req.path.is_empty() { "/" } else { req.path };
    let canonical_path = if service == "s3" {
        path.to_string()
    } else {
        uri_encode(path, true)
    };
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        canonical_path,
        canonical_query(req.query),
        canonical_headers,
        signed_headers,
        sha256_hex(req.body)
    );
    let scope = format!("{day}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let k_date = hmac(
        format!("AWS4{}", creds.secret_access_key).as_bytes(),
        day.as_bytes(),
    );
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    let signature = hex(&hmac(&k_signing, string_to_sign.as_bytes()));
    Signed {
        authorization: format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            creds.access_key_id
        ),
        amz_date,
        security_token: creds.session_token.clone(),
    }
}

impl Signed {
    /// The headers to set on the request.
    pub fn headers(self) -> Vec<(&'static str, String)> {
        let mut h = vec![
            ("authorization", self.authorization),
            ("x-amz-date", self.amz_date),
        ];
        if let Some(t) = self.security_token {
            h.push(("x-amz-security-token", t));
        }
        h
    }
}

/// `(host[:port], path, query)` of an absolute URL, exactly as they go on the wire.
fn split_url(url: &str) -> (&str, &str, &str) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (target, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (host, path) = match target.find('/') {
        Some(i) => target.split_at(i),
        None => (target, "/"),
    };
    (host, path, query)
}

/// Signs a request to `url` (host, path and query taken as sent), signing `content-type` when
/// there is one — what both planes do for Bedrock.
#[allow(clippy::too_many_arguments)]
pub fn sign_url(
    method: &str,
    url: &str,
    content_type: Option<&str>,
    body: &[u8],
    creds: &AwsCredentials,
    region: &str,
    service: &str,
    unix_secs: i64,
) -> Signed {
    let (host, path, query) = split_url(url);
    let headers: Vec<(&str, &str)> = content_type
        .map(|ct| ("content-type", ct))
        .into_iter()
        .collect();
    sign(
        &Request {
            method,
            host,
            path,
            query,
            headers: &headers,
            body,
        },
        creds,
        region,
        service,
        unix_secs,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_split_as_sent() {
        assert_eq!(
            super::split_url("http://127.0.0.1:9000/model/a%3A0/converse?x=1"),
            ("127.0.0.1:9000", "/model/a%3A0/converse", "x=1")
        );
        assert_eq!(
            super::split_url("https://h.example"),
            ("h.example", "/", "")
        );
    }

    use super::*;

    /// 2015-08-30T12:36:00Z, the time of AWS's SigV4 test suite.
    const SUITE_AT: i64 = 1_440_938_160;
    /// 2013-05-24T00:00:00Z, the time of the S3 documentation's examples.
    const S3_AT: i64 = 1_369_353_600;
    const EMPTY: &[u8] = b"";

    fn suite() -> AwsCredentials {
        AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }

    fn s3doc() -> AwsCredentials {
        AwsCredentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn authz(
        creds: &AwsCredentials,
        service: &str,
        at: i64,
        method: &str,
        host: &str,
        path: &str,
        query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> String {
        let r = Request {
            method,
            host,
            path,
            query,
            headers,
            body,
        };
        sign(&r, creds, "us-east-1", service, at).authorization
    }

    /// AWS SigV4 test suite: get-vanilla, get-vanilla-query-order-key-case, post-vanilla.
    #[test]
    fn aws_test_suite_vectors() {
        let h = "example.amazonaws.com";
        let c = suite();
        let want = |sig: &str| {
            format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature={sig}")
        };
        assert_eq!(
            authz(&c, "service", SUITE_AT, "GET", h, "/", "", &[], EMPTY),
            want("5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
        );
        assert_eq!(
            authz(
                &c,
                "service",
                SUITE_AT,
                "GET",
                h,
                "/",
                "Param2=value2&Param1=value1",
                &[],
                EMPTY
            ),
            want("b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500")
        );
        assert_eq!(
            authz(&c, "service", SUITE_AT, "POST", h, "/", "", &[], EMPTY),
            want("5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b")
        );
    }

    /// The S3 documentation's header-based examples (extra signed headers, a body hash, `$` in a
    /// key, a bare query name, several query parameters).
    #[test]
    fn aws_s3_documentation_vectors() {
        let c = s3doc();
        let h = "examplebucket.s3.amazonaws.com";
        let empty = sha256_hex(EMPTY);
        let want = |signed: &str, sig: &str| {
            format!("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders={signed}, Signature={sig}")
        };
        assert_eq!(
            authz(
                &c,
                "s3",
                S3_AT,
                "GET",
                h,
                "/test.txt",
                "",
                &[("Range", "bytes=0-9"), ("X-Amz-Content-Sha256", &empty)],
                EMPTY
            ),
            want(
                "host;range;x-amz-content-sha256;x-amz-date",
                "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
            )
        );
        let body = b"Welcome to Amazon S3.";
        let body_hash = sha256_hex(body);
        assert_eq!(
            body_hash,
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
        );
        assert_eq!(
            authz(
                &c,
                "s3",
                S3_AT,
                "PUT",
                h,
                &format!("/{}", uri_encode("test$file.text", true)),
                "",
                &[
                    ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
                    ("X-Amz-Storage-Class", "REDUCED_REDUNDANCY"),
                    ("X-Amz-Content-Sha256", &body_hash)
                ],
                body
            ),
            want(
                "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
                "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
            )
        );
        assert_eq!(
            authz(
                &c,
                "s3",
                S3_AT,
                "GET",
                h,
                "/",
                "lifecycle",
                &[("X-Amz-Content-Sha256", &empty)],
                EMPTY
            ),
            want(
                "host;x-amz-content-sha256;x-amz-date",
                "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
            )
        );
        assert_eq!(
            authz(
                &c,
                "s3",
                S3_AT,
                "GET",
                h,
                "/",
                "max-keys=2&prefix=J",
                &[("X-Amz-Content-Sha256", &empty)],
                EMPTY
            ),
            want(
                "host;x-amz-content-sha256;x-amz-date",
                "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
            )
        );
    }

    #[test]
    fn session_token_is_signed_and_returned() {
        let mut c = suite();
        c.session_token = Some("FQoGZXIvYXdzEXAMPLE".into());
        let r = Request {
            method: "POST",
            host: "bedrock-runtime.us-east-1.amazonaws.com",
            path: "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
            query: "",
            headers: &[("content-type", "application/json")],
            body: b"{}",
        };
        let s = sign(&r, &c, "us-east-1", "bedrock", SUITE_AT);
        assert!(s
            .authorization
            .contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token,"));
        assert_eq!(s.security_token.as_deref(), Some("FQoGZXIvYXdzEXAMPLE"));
        assert_eq!(s.amz_date, "20150830T123600Z");
        // Another body, another signature: the body is under the signature.
        let mut r2 = r;
        r2.body = b"{ }";
        assert_ne!(
            sign(&r2, &c, "us-east-1", "bedrock", SUITE_AT).authorization,
            s.authorization
        );
    }

    #[test]
    fn encoding() {
        assert_eq!(
            uri_encode("a b/c~d+e$é:", true),
            "a%20b/c~d%2Be%24%C3%A9%3A"
        );
        assert_eq!(uri_encode("a/b", false), "a%2Fb");
        assert_eq!(amz_date(0), ("19700101T000000Z".into(), "19700101".into()));
    }
}
