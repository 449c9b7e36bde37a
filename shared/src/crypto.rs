//! Secrets at rest: the master key, sealing of upstream credentials (XChaCha20-Poly1305 with the
//! owner's identity as associated data), keyed hashes of to11 keys, and the snapshot MAC.
//! Pure functions; randomness is the only outside input.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("master key must be 32 bytes, base64-encoded (got {0} bytes)")]
    BadMasterKeyLength(usize),
    #[error("master key is not valid base64")]
    BadMasterKeyEncoding,
    #[error("sealed secret is malformed")]
    Malformed,
    #[error("sealed secret does not open with this master key and owner (wrong key, or moved between owners)")]
    Open,
}

/// Keys derived from `TO11_MASTER_KEY`. Each purpose gets its own HKDF-derived key.
#[derive(Clone)]
pub struct Keyring {
    seal: [u8; 32],
    key_hash: [u8; 32],
    snapshot_mac: [u8; 32],
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyring(<redacted>)")
    }
}

impl Keyring {
    pub fn from_base64(master: &str) -> Result<Self, CryptoError> {
        let raw = STANDARD
            .decode(master.trim())
            .map_err(|_| CryptoError::BadMasterKeyEncoding)?;
        let master: [u8; 32] = raw
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::BadMasterKeyLength(raw.len()))?;
        Ok(Self::from_master(&master))
    }

    pub fn from_master(master: &[u8; 32]) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(b"to11"), master);
        let derive = |info: &[u8]| {
            let mut out = [0u8; 32];
            // 32 bytes is always a valid HKDF-SHA256 output length.
            let _ = hk.expand(info, &mut out);
            out
        };
        Self {
            seal: derive(b"to11 credential seal v1"),
            key_hash: derive(b"to11 key hash v1"),
            snapshot_mac: derive(b"to11 snapshot mac v1"),
        }
    }

    /// A fresh random master key, base64, as `TO11_MASTER_KEY` expects it.
    pub fn generate_master_base64() -> String {
        let mut k = [0u8; 32];
        rand::rng().fill_bytes(&mut k);
        STANDARD.encode(k)
    }

    /// Seals `plaintext` for `owner` (e.g. `project-id/provider/credential-id`): the ciphertext
    /// opens only with the same owner string, so swapping ciphertexts between owners fails.
    pub fn seal(&self, owner: &str, plaintext: &[u8]) -> SealedSecret {
        let cipher = XChaCha20Poly1305::new((&self.seal).into());
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        // Encryption with a valid key and nonce cannot fail for in-memory buffers.
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: owner.as_bytes(),
                },
            )
            .unwrap_or_default();
        SealedSecret {
            alg: "xchacha20poly1305".into(),
            nonce: URL_SAFE_NO_PAD.encode(nonce),
            ct: URL_SAFE_NO_PAD.encode(ct),
        }
    }

    pub fn open(&self, owner: &str, sealed: &SealedSecret) -> Result<Vec<u8>, CryptoError> {
        let nonce = URL_SAFE_NO_PAD
            .decode(&sealed.nonce)
            .map_err(|_| CryptoError::Malformed)?;
        let ct = URL_SAFE_NO_PAD
            .decode(&sealed.ct)
            .map_err(|_| CryptoError::Malformed)?;
        if nonce.len() != 24 || sealed.alg != "xchacha20poly1305" {
            return Err(CryptoError::Malformed);
        }
        let cipher = XChaCha20Poly1305::new((&self.seal).into());
        cipher
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &ct,
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Open)
    }

    /// Keyed hash of a to11 key or management key. The stored value is this, never the key.
    pub fn key_hash(&self, key: &str) -> KeyHash {
        let mut mac = mac(&self.key_hash);
        mac.update(key.as_bytes());
        KeyHash(mac.finalize().into_bytes().into())
    }

    /// MAC over a serialized snapshot, so a replica refuses a snapshot nobody holding the master
    /// key produced.
    pub fn snapshot_mac(&self, bytes: &[u8]) -> String {
        let mut m = mac(&self.snapshot_mac);
        m.update(bytes);
        URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
    }

    pub fn verify_snapshot_mac(&self, bytes: &[u8], tag: &str) -> bool {
        let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else {
            return false;
        };
        let mut m = mac(&self.snapshot_mac);
        m.update(bytes);
        m.verify_slice(&tag).is_ok()
    }
}

/// HMAC-SHA-256 of `msg` under `key` (signatures of webhook calls), as lowercase hex.
pub fn hmac_sha256_hex(key: &[u8], msg: &[u8]) -> String {
    // HMAC accepts keys of any length.
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    m.update(msg);
    KeyHash(m.finalize().into_bytes().into()).to_hex()
}

fn mac(key: &[u8; 32]) -> HmacSha256 {
    // HMAC accepts keys of any length.
    <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

/// A 32-byte keyed hash; `Display`/`parse` use lowercase hex for storage.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 || !s.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(KeyHash(out))
    }
}

impl std::fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHash(..)")
    }
}

/// Constant-time comparison of two secrets (e.g. the operator token).
pub fn secret_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// The sealed form of a secret, safe to store and publish.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecret {
    pub alg: String,
    pub nonce: String,
    pub ct: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> Keyring {
        Keyring::from_master(&[7u8; 32])
    }

    #[test]
    fn seal_roundtrip_and_owner_binding() {
        let k = ring();
        let s = k.seal("p1/openai/default", b"sk-secret");
        assert!(!s.ct.contains("sk-secret"));
        assert_eq!(
            k.open("p1/openai/default", &s).as_deref(),
            Ok(&b"sk-secret"[..])
        );
        assert_eq!(k.open("p2/openai/default", &s), Err(CryptoError::Open));
        let other = Keyring::from_master(&[8u8; 32]);
        assert_eq!(other.open("p1/openai/default", &s), Err(CryptoError::Open));
    }

    #[test]
    fn master_key_parsing() {
        let b64 = Keyring::generate_master_base64();
        assert!(Keyring::from_base64(&b64).is_ok());
        assert_eq!(
            Keyring::from_base64("AAAA").err(),
            Some(CryptoError::BadMasterKeyLength(3))
        );
        assert_eq!(
            Keyring::from_base64("not base64!").err(),
            Some(CryptoError::BadMasterKeyEncoding)
        );
    }

    #[test]
    fn key_hash_hex_roundtrip_and_keyed() {
        let h = ring().key_hash("to11_abc");
        assert_eq!(KeyHash::from_hex(&h.to_hex()), Some(h));
        assert_ne!(Keyring::from_master(&[1u8; 32]).key_hash("to11_abc"), h);
        assert_eq!(KeyHash::from_hex("zz"), None);
    }

    #[test]
    fn snapshot_mac_detects_tampering() {
        let k = ring();
        let tag = k.snapshot_mac(b"{\"v\":1}");
        assert!(k.verify_snapshot_mac(b"{\"v\":1}", &tag));
        assert!(!k.verify_snapshot_mac(b"{\"v\":2}", &tag));
        assert!(!k.verify_snapshot_mac(b"{\"v\":1}", "garbage"));
    }
}
