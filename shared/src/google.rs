//! Google service-account credentials (Vertex AI): the signed JWT assertion exchanged for an OAuth2
//! access token at the token endpoint, the form body of that exchange, and the parsing of its
//! answer. Pure: the caller passes the time and does the HTTP call.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivatePkcs8KeyDer;
use serde::Deserialize;

/// Google's token endpoint; operators may point both planes elsewhere (`TO11_GOOGLE_TOKEN_URL`).
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// The fields of a service-account key file to11 uses.
#[derive(Clone, Deserialize)]
pub struct ServiceAccount {
    pub client_email: String,
    pub private_key: String,
    #[serde(default)]
    pub private_key_id: Option<String>,
    #[serde(default)]
    pub project_id: Option<String>,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServiceAccount({})", self.client_email)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GoogleError {
    #[error("the service account JSON lacks {0}")]
    Missing(&'static str),
    #[error("the service account's private_key is not an RSA key in PKCS#8 PEM form")]
    BadKey,
    #[error("the token endpoint answered without an access_token")]
    BadTokenAnswer,
}

impl ServiceAccount {
    pub fn from_json(v: &serde_json::Value) -> Result<Self, GoogleError> {
        let sa: ServiceAccount = serde_json::from_value(v.clone())
            .map_err(|_| GoogleError::Missing("client_email and private_key"))?;
        if sa.client_email.is_empty() {
            return Err(GoogleError::Missing("client_email"));
        }
        sa.key_pair()?;
        Ok(sa)
    }

    fn key_pair(&self) -> Result<RsaKeyPair, GoogleError> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(self.private_key.as_bytes())
            .map_err(|_| GoogleError::BadKey)?;
        RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).map_err(|_| GoogleError::BadKey)
    }

    /// The RS256-signed JWT asserting this account for `scope`, valid for an hour from `now`.
    pub fn assertion(&self, audience: &str, now_secs: i64) -> Result<String, GoogleError> {
        let key = self.key_pair()?;
        let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.private_key_id {
            header["kid"] = kid.clone().into();
        }
        let claims = serde_json::json!({
            "iss": self.client_email,
            "sub": self.client_email,
            "aud": audience,
            "scope": SCOPE,
            "iat": now_secs,
            "exp": now_secs + 3600,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut sig = vec![0; key.public().modulus_len()];
        key.sign(
            &RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            signing_input.as_bytes(),
            &mut sig,
        )
        .map_err(|_| GoogleError::BadKey)?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

/// The `application/x-www-form-urlencoded` body of the JWT-bearer grant.
pub fn token_request_body(assertion: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
        .append_pair("assertion", assertion)
        .finish()
}

/// An access token and how long it lives, in seconds.
#[derive(Clone, Debug, Deserialize)]
pub struct AccessToken {
    pub access_token: String,
    #[serde(default = "default_expiry")]
    pub expires_in: i64,
}

fn default_expiry() -> i64 {
    3600
}

pub fn parse_token_answer(body: &[u8]) -> Result<AccessToken, GoogleError> {
    serde_json::from_slice::<AccessToken>(body)
        .ok()
        .filter(|t| !t.access_token.is_empty())
        .ok_or(GoogleError::BadTokenAnswer)
}

/// Checks an RS256 JWT against an RSA public key (DER `RSAPublicKey`) and returns its claims.
/// Used by the tests' token endpoint; kept here beside the signer it checks.
pub fn verify_assertion(jwt: &str, public_key_der: &[u8]) -> Option<serde_json::Value> {
    let (signing_input, sig) = jwt.rsplit_once('.')?;
    let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        public_key_der,
    )
    .verify(signing_input.as_bytes(), &sig)
    .ok()?;
    let (header, claims) = signing_input.split_once('.')?;
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    if header["alg"] != "RS256" {
        return None;
    }
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()
}

/// The DER public key of a service account's private key (for `verify_assertion`).
pub fn public_key_der(sa: &ServiceAccount) -> Option<Vec<u8>> {
    use ring::signature::KeyPair;
    Some(sa.key_pair().ok()?.public_key().as_ref().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const TEST_KEY: &str = include_str!("../testdata/service_account_test_key.pem");

    fn sa() -> ServiceAccount {
        ServiceAccount::from_json(&serde_json::json!({
            "type": "service_account",
            "client_email": "gw@proj.iam.gserviceaccount.com",
            "private_key": TEST_KEY,
            "private_key_id": "k1",
            "project_id": "proj",
        }))
        .expect("test key parses")
    }

    #[test]
    fn assertion_verifies_and_carries_the_claims() {
        let s = sa();
        let jwt = s
            .assertion("https://oauth2.googleapis.com/token", 1_700_000_000)
            .expect("signs");
        let claims = verify_assertion(&jwt, &public_key_der(&s).expect("pk")).expect("verifies");
        assert_eq!(claims["iss"], "gw@proj.iam.gserviceaccount.com");
        assert_eq!(claims["aud"], "https://oauth2.googleapis.com/token");
        assert_eq!(claims["scope"], SCOPE);
        assert_eq!(claims["exp"], 1_700_003_600);
        // A changed payload does not verify.
        let mut parts: Vec<&str> = jwt.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(r#"{"iss":"x"}"#);
        parts[1] = &forged;
        assert!(verify_assertion(&parts.join("."), &public_key_der(&s).expect("pk")).is_none());
    }

    #[test]
    fn bad_service_accounts_are_refused_clearly() {
        assert_eq!(
            ServiceAccount::from_json(
                &serde_json::json!({"client_email": "a@b", "private_key": "nope"})
            )
            .unwrap_err(),
            GoogleError::BadKey
        );
        assert!(ServiceAccount::from_json(&serde_json::json!({"private_key": TEST_KEY})).is_err());
    }

    #[test]
    fn token_exchange_forms() {
        assert_eq!(
            token_request_body("a.b+c"),
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a.b%2Bc"
        );
        let t = parse_token_answer(
            br#"{"access_token":"ya29.x","expires_in":3599,"token_type":"Bearer"}"#,
        )
        .expect("parses");
        assert_eq!((t.access_token.as_str(), t.expires_in), ("ya29.x", 3599));
        assert!(parse_token_answer(br#"{"error":"invalid_grant"}"#).is_err());
    }
}
