//! Client authentication and BYOK. The to11 key comes only from `x-to11-authorization`; its keyed
//! hash is one hash-map lookup in the live state (no scan, no lock). `Authorization`/`x-api-key`
//! carry the client's own upstream key (BYOK); a to11 key found there is dropped, never forwarded.

use std::cell::RefCell;
use std::sync::Arc;

use actix_web::http::header::{HeaderMap, HeaderName, AUTHORIZATION};
use chrono::Utc;
use to11_shared::crypto::{KeyHash, Keyring};
use to11_shared::keys::{carries_to11_key, strip_bearer};
use to11_shared::model::ByokPolicy;
use to11_shared::ErrorCode;

use crate::error::GatewayError;
use crate::state::{KeyEntry, ProjectLive, State};
use to11_shared::FastMap;

pub const TO11_AUTH_HEADER: &str = "x-to11-authorization";
/// The same, as a header name made at compile time: looking a `&str` up parses and validates
/// it into a name first, on every request.
const TO11_AUTH: HeaderName = HeaderName::from_static(TO11_AUTH_HEADER);
/// Where SDKs put a provider key: OpenAI's and most others' bearer, Anthropic's x-api-key,
/// Gemini's x-goog-api-key, Azure's api-key.
const BYOK_HEADERS: [HeaderName; 4] = [
    AUTHORIZATION,
    HeaderName::from_static("x-api-key"),
    HeaderName::from_static("x-goog-api-key"),
    HeaderName::from_static("api-key"),
];

pub struct Caller {
    pub project: Arc<ProjectLive>,
    pub key: Arc<KeyEntry>,
}

/// Authenticates a caller against the live state. Before the first configuration is loaded every
/// request gets 503 `not_configured`, not a misleading 401.
pub fn authenticate(
    state: &State,
    headers: &HeaderMap,
    keyring: &Keyring,
) -> Result<Caller, GatewayError> {
    authenticate_with(state, headers, keyring, None)
}

/// The keyed hashes of the keys a worker has seen authenticate. Computing one is an
/// HMAC-SHA-256 (about 7k instructions, 6 % of a proxied request); a key that authenticated once
/// is looked up here instead (a map of at most `KeyHashes::MAX` keys, emptied when full; only
/// keys that matched are kept, so guesses cannot fill it). A revoked key's hash no longer finds
/// an entry in the live state, so remembering it grants nothing.
#[derive(Default)]
pub struct KeyHashes(RefCell<FastMap<Box<str>, KeyHash>>);

impl KeyHashes {
    const MAX: usize = 10_000;

    fn get(&self, key: &str) -> Option<KeyHash> {
        self.0.borrow().get(key).copied()
    }

    fn remember(&self, key: &str, hash: KeyHash) {
        let mut m = self.0.borrow_mut();
        if m.len() >= Self::MAX {
            m.clear();
        }
        m.insert(key.into(), hash);
    }
}

/// `authenticate`, with the worker's remembered key hashes.
pub fn authenticate_with(
    state: &State,
    headers: &HeaderMap,
    keyring: &Keyring,
    hashes: Option<&KeyHashes>,
) -> Result<Caller, GatewayError> {
    if !state.loaded {
        return Err(GatewayError::new(
            ErrorCode::NotConfigured,
            "the gateway has not loaded its configuration yet",
        ));
    }
    let Some(raw) = headers.get(&TO11_AUTH) else {
        let hint = ["authorization", "x-api-key"].iter().any(|h| {
            headers
                .get(*h)
                .and_then(|v| v.to_str().ok())
                .is_some_and(carries_to11_key)
        });
        let msg = if hint {
            "to11 keys go in the x-to11-authorization header; Authorization and x-api-key are reserved for your own upstream key"
        } else {
            "missing to11 key: send it as 'x-to11-authorization: Bearer <key>'"
        };
        return Err(GatewayError::new(ErrorCode::MissingKey, msg));
    };
    let invalid = || GatewayError::new(ErrorCode::InvalidKey, "invalid to11 key");
    // `HeaderValue::to_str` checks each byte for a visible one; a header value holds no control
    // character but a tab and no DEL, so all ASCII is the same test, made a word at a time.
    let key = std::str::from_utf8(raw.as_bytes())
        .ok()
        .filter(|k| k.is_ascii())
        .ok_or_else(invalid)?;
    let key = strip_bearer(key);
    if key.is_empty() || key.len() > 256 {
        return Err(invalid());
    }
    let known = hashes.and_then(|h| h.get(key));
    let hash = known.unwrap_or_else(|| keyring.key_hash(key));
    let entry = state.keys.get(&hash).ok_or_else(invalid)?;
    if let (Some(h), None) = (hashes, known) {
        h.remember(key, hash);
    }
    if entry.expires_at.is_some_and(|t| t <= Utc::now()) {
        return Err(GatewayError::new(
            ErrorCode::ExpiredKey,
            "this to11 key has expired",
        ));
    }
    let project = state.projects.get(&entry.project).ok_or_else(invalid)?;
    Ok(Caller {
        project: project.clone(),
        key: entry.clone(),
    })
}

impl Caller {
    pub fn model_allowed(&self, name: &str) -> bool {
        self.key.models.as_ref().is_none_or(|m| m.contains(name))
    }

    fn byok_policy(&self) -> ByokPolicy {
        self.key.byok.unwrap_or(self.project.byok)
    }

    /// The client's own upstream key to use instead of the stored credential, if any.
    pub fn byok<'h>(&self, headers: &'h HeaderMap) -> Result<Option<&'h str>, GatewayError> {
        let policy = self.byok_policy();
        if policy == ByokPolicy::Ignored {
            return Ok(None);
        }
        let found = BYOK_HEADERS.iter().find_map(|h| {
            let raw = headers.get(h)?.to_str().ok()?;
            let v = strip_bearer(raw);
            (!v.is_empty() && !carries_to11_key(raw)).then_some(v)
        });
        if found.is_none() && policy == ByokPolicy::Required {
            return Err(GatewayError::new(
                ErrorCode::ByokRequired,
                "this project requires your own upstream key in Authorization, x-api-key, x-goog-api-key or api-key",
            ));
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{prepare, Live};
    use actix_web::http::header::{HeaderName, HeaderValue};
    use to11_shared::crypto::Keyring;

    fn setup(byok: ByokPolicy) -> (Live, Keyring) {
        let keyring = Keyring::from_master(&[9; 32]);
        let live = Live::default();
        let snap = crate::state::tests::snapshot(1, &["to11_gk_good"], byok);
        let (p, keys) = prepare(&snap, &keyring).unwrap();
        live.apply(p, keys);
        live.mark_loaded();
        (live, keyring)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_static(k),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn not_configured_before_the_first_load() {
        let live = Live::default();
        let k = Keyring::from_master(&[9; 32]);
        let err = authenticate(&live.load(), &headers(&[(TO11_AUTH_HEADER, "x")]), &k)
            .err()
            .unwrap();
        assert_eq!(err.code, ErrorCode::NotConfigured);
    }

    #[test]
    fn key_only_from_the_to11_header() {
        let (live, k) = setup(ByokPolicy::Allowed);
        let s = live.load();
        assert!(authenticate(
            &s,
            &headers(&[(TO11_AUTH_HEADER, "Bearer to11_gk_good")]),
            &k
        )
        .is_ok());
        assert!(authenticate(&s, &headers(&[(TO11_AUTH_HEADER, "to11_gk_good")]), &k).is_ok());
        let err = authenticate(
            &s,
            &headers(&[("authorization", "Bearer to11_gk_good")]),
            &k,
        )
        .err()
        .unwrap();
        assert_eq!(err.code, ErrorCode::MissingKey);
        assert!(err.message.contains("x-to11-authorization"));
        let err = authenticate(&s, &headers(&[(TO11_AUTH_HEADER, "Bearer nope")]), &k)
            .err()
            .unwrap();
        assert_eq!(err.code, ErrorCode::InvalidKey);
        // The stored hash presented as a key is not a key.
        let hash = k.key_hash("to11_gk_good").to_hex();
        let err = authenticate(&s, &headers(&[(TO11_AUTH_HEADER, &hash)]), &k)
            .err()
            .unwrap();
        assert_eq!(err.code, ErrorCode::InvalidKey);
    }

    #[test]
    fn a_key_header_with_bytes_beyond_ascii_is_refused_as_to_str_refused_it() {
        let (live, k) = setup(ByokPolicy::Allowed);
        let s = live.load();
        for raw in [
            &b"Bearer to11_gk_good\xc2\xa0"[..], // a no-break space, which `trim` would drop
            b"\xc2\xa0to11_gk_good",
            b"Bearer to11_gk_g\xf6od",
        ] {
            let mut h = HeaderMap::new();
            h.insert(
                HeaderName::from_static(TO11_AUTH_HEADER),
                HeaderValue::from_bytes(raw).unwrap(),
            );
            let err = authenticate(&s, &h, &k).err().expect("refused");
            assert_eq!(err.code, ErrorCode::InvalidKey, "{raw:?}");
        }
        let tabbed = headers(&[(TO11_AUTH_HEADER, "Bearer\tto11_gk_good")]);
        assert_eq!(
            authenticate(&s, &tabbed, &k).err().map(|e| e.code),
            Some(ErrorCode::InvalidKey),
            "a tab is not the space after Bearer"
        );
    }

    #[test]
    fn remembered_hashes_follow_the_live_state() {
        let (live, k) = setup(ByokPolicy::Allowed);
        let hashes = KeyHashes::default();
        let h = headers(&[(TO11_AUTH_HEADER, "Bearer to11_gk_good")]);
        assert!(authenticate_with(&live.load(), &h, &k, Some(&hashes)).is_ok());
        assert_eq!(hashes.get("to11_gk_good"), Some(k.key_hash("to11_gk_good")));
        // Guesses are not remembered.
        let bad = headers(&[(TO11_AUTH_HEADER, "Bearer to11_gk_nope")]);
        assert!(authenticate_with(&live.load(), &bad, &k, Some(&hashes)).is_err());
        assert_eq!(hashes.get("to11_gk_nope"), None);
        // The key revoked (a snapshot without it): the remembered hash finds nothing.
        let snap = crate::state::tests::snapshot(2, &[], ByokPolicy::Allowed);
        let (p, keys) = prepare(&snap, &k).unwrap();
        live.apply(p, keys);
        let e = authenticate_with(&live.load(), &h, &k, Some(&hashes))
            .err()
            .unwrap();
        assert_eq!(e.code, ErrorCode::InvalidKey);
    }

    #[test]
    fn byok_policies() {
        for (policy, hdrs, want) in [
            (
                ByokPolicy::Allowed,
                vec![("authorization", "Bearer sk-own")],
                Ok(Some("sk-own")),
            ),
            (
                ByokPolicy::Allowed,
                vec![("x-api-key", "sk-own")],
                Ok(Some("sk-own")),
            ),
            (
                ByokPolicy::Allowed,
                vec![("authorization", "Bearer to11_gk_good")],
                Ok(None),
            ),
            (ByokPolicy::Allowed, vec![], Ok(None)),
            (
                ByokPolicy::Ignored,
                vec![("authorization", "Bearer sk-own")],
                Ok(None),
            ),
            (
                ByokPolicy::Required,
                vec![("x-api-key", "sk-own")],
                Ok(Some("sk-own")),
            ),
            (
                ByokPolicy::Required,
                vec![("authorization", "Bearer to11_gk_good")],
                Err(ErrorCode::ByokRequired),
            ),
            // A to11 key in a non-canonical form is never taken for the client's own key.
            (
                ByokPolicy::Allowed,
                vec![("authorization", "Bearer\tto11_gk_good")],
                Ok(None),
            ),
            (
                ByokPolicy::Allowed,
                vec![("authorization", "Token to11_gk_good")],
                Ok(None),
            ),
            (
                ByokPolicy::Allowed,
                vec![("authorization", "Bearer: to11_gk_good")],
                Ok(None),
            ),
            (
                ByokPolicy::Allowed,
                vec![("x-api-key", "\"to11_gk_good\"")],
                Ok(None),
            ),
            (
                ByokPolicy::Allowed,
                // base64("to11_gk_good:")
                vec![("authorization", "Basic dG8xMV9na19nb29kOg==")],
                Ok(None),
            ),
        ] {
            let (live, k) = setup(policy);
            let s = live.load();
            let mut h = hdrs.clone();
            h.push((TO11_AUTH_HEADER, "to11_gk_good"));
            let h = headers(&h);
            let caller = authenticate(&s, &h, &k).unwrap();
            let got = caller.byok(&h).map_err(|e| e.code);
            assert_eq!(got, want, "{policy:?} {hdrs:?}");
        }
    }

    proptest::proptest! {
        /// Whatever arrives in the auth headers (random bytes, SQL or Redis-glob fragments, very
        /// long values), the answer is a 401 error: never a panic, never another project.
        #[test]
        fn hostile_auth_headers_are_401(
            raw in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
            text in "(Bearer )?(to11_gk_)?[a-zA-Z0-9*?\\[\\]{}:;'\" -]{0,80}",
        ) {
            let (live, k) = setup(ByokPolicy::Allowed);
            let s = live.load();
            for value in [HeaderValue::from_bytes(&raw), HeaderValue::from_str(&text)].into_iter().flatten() {
                let mut h = HeaderMap::new();
                h.insert(HeaderName::from_static(TO11_AUTH_HEADER), value.clone());
                h.insert(HeaderName::from_static("authorization"), value);
                match authenticate(&s, &h, &k) {
                    Ok(_) => proptest::prop_assert!(false, "a random value authenticated"),
                    Err(e) => proptest::prop_assert!(e.code.status() == 401, "{:?}", e.code),
                }
            }
        }
    }
}
