//! Formats of the keys to11 issues. A value in to11's key format is recognisable, so the data plane
//! can drop one a client put in `Authorization`/`x-api-key` instead of forwarding it upstream.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;

/// Prefix of every to11 gateway key.
pub const GATEWAY_KEY_PREFIX: &str = "to11_gk_";
/// Prefix of every project management key.
pub const MANAGEMENT_KEY_PREFIX: &str = "to11_mk_";

fn random_key(prefix: &str) -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(b))
}

pub fn new_gateway_key() -> String {
    random_key(GATEWAY_KEY_PREFIX)
}

pub fn new_management_key() -> String {
    random_key(MANAGEMENT_KEY_PREFIX)
}

/// Whether a header value carries a to11 key (bearer or bare), which must never go upstream.
pub fn looks_like_to11_key(header_value: &str) -> bool {
    strip_bearer(header_value).starts_with("to11_")
}

/// `Bearer <x>` (any case, surrounding spaces) → `<x>`; a bare value is returned trimmed.
pub fn strip_bearer(v: &str) -> &str {
    let v = v.trim();
    match v.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("bearer ") => v[7..].trim_start(),
        _ => v,
    }
}

/// Last four characters, for display.
pub fn hint(key: &str) -> String {
    let n = key.len();
    format!("…{}", key.get(n.saturating_sub(4)..).unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let k = new_gateway_key();
        assert!(k.starts_with(GATEWAY_KEY_PREFIX) && k.len() == GATEWAY_KEY_PREFIX.len() + 43);
        assert_ne!(k, new_gateway_key());
        assert!(looks_like_to11_key(&format!("Bearer {k}")));
        assert!(looks_like_to11_key(&new_management_key()));
        assert!(!looks_like_to11_key("Bearer sk-proj-abc"));
    }

    #[test]
    fn bearer() {
        assert_eq!(strip_bearer("Bearer abc"), "abc");
        assert_eq!(strip_bearer("bearer   abc "), "abc");
        assert_eq!(strip_bearer("abc"), "abc");
        assert_eq!(strip_bearer("Bear"), "Bear");
        assert_eq!(strip_bearer("Béarer x"), "Béarer x");
    }
}
