//! Save-time checks of a tenant-supplied upstream base URL (SSRF guard). Host parsing follows the
//! WHATWG URL rules (`url` crate), so `http://2852039166/`, `http://0x7f.1/` and `http://127.1/`
//! are seen as the IPv4 addresses they are.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use url::{Host, Url};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlProblem {
    #[error("base URL is not a valid absolute URL")]
    Invalid,
    #[error("base URL scheme must be http or https")]
    Scheme,
    #[error("base URL must not carry a username or password")]
    Userinfo,
    #[error("base URL must not carry a query or fragment")]
    QueryOrFragment,
    #[error("base URL points at a loopback or private address; the operator must set TO11_ALLOW_PRIVATE_UPSTREAMS=true to allow that")]
    PrivateAddress,
    #[error("base URL points at a link-local or cloud metadata address, which is never allowed")]
    MetadataAddress,
}

/// Checks a base URL and returns it normalised (no trailing slash).
pub fn check_base_url(raw: &str, allow_private: bool) -> Result<String, UrlProblem> {
    let url = check_fetch_url(raw, allow_private)?;
    if url.query().is_some() || raw.contains('#') {
        return Err(UrlProblem::QueryOrFragment);
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// Checks a URL the gateway is asked to fetch on a client's behalf (an image given by URL to a
/// target that takes only bytes): the host rules of `check_base_url`, which also cover IP literals
/// (the connect-time resolver sees only names); a query is allowed, a fragment dropped.
pub fn check_fetch_url(raw: &str, allow_private: bool) -> Result<Url, UrlProblem> {
    let mut url = Url::parse(raw.trim()).map_err(|_| UrlProblem::Invalid)?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(UrlProblem::Scheme);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlProblem::Userinfo);
    }
    let host = url.host().ok_or(UrlProblem::Invalid)?;
    if host_is_metadata(&host) {
        return Err(UrlProblem::MetadataAddress);
    }
    if !allow_private && host_is_private(&host) {
        return Err(UrlProblem::PrivateAddress);
    }
    url.set_fragment(None);
    Ok(url)
}

/// Link-local and cloud metadata endpoints: refused even with the private-network allowance, since
/// no self-hosted model lives there and they hand out the host's cloud credentials.
fn host_is_metadata(host: &Host<&str>) -> bool {
    let v4_link_local = |ip: Ipv4Addr| ip.is_link_local();
    match host {
        Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "metadata.google.internal" || d == "metadata" || d == "instance-data"
        }
        Host::Ipv4(ip) => v4_link_local(*ip),
        Host::Ipv6(ip) => {
            ip.to_ipv4_mapped().is_some_and(v4_link_local)
                || (ip.segments()[0] & 0xffc0) == 0xfe80
                || *ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
        }
    }
}

fn host_is_private(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost"
                || d.ends_with(".localhost")
                || d.ends_with(".internal")
                || d.ends_with(".local")
                || d == "metadata.google.internal"
        }
        Host::Ipv4(ip) => ipv4_is_private(*ip),
        Host::Ipv6(ip) => ip_is_private(IpAddr::V6(*ip)),
    }
}

/// Whether an address must not be reached without the operator's private-network allowance.
pub fn ip_is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => ipv4_is_private(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return ipv4_is_private(v4);
            }
            ipv6_is_private(v6)
        }
    }
}

/// Connect-time check (DNS rebinding): of the addresses a host name resolved to, the ones the
/// gateway may connect to. Link-local and metadata addresses are never kept; private ones only
/// with the operator's allowance. An empty result is refused with the reason.
pub fn connectable(
    host: &str,
    addrs: Vec<std::net::SocketAddr>,
    allow_private: bool,
) -> Result<Vec<std::net::SocketAddr>, String> {
    let seen = addrs.len();
    let kept: Vec<std::net::SocketAddr> = addrs
        .into_iter()
        .filter(|a| {
            let host = match a.ip() {
                IpAddr::V4(v4) => Host::Ipv4(v4),
                IpAddr::V6(v6) => Host::Ipv6(v6),
            };
            !host_is_metadata(&host) && (allow_private || !ip_is_private(a.ip()))
        })
        .collect();
    if kept.is_empty() {
        return Err(if seen == 0 {
            format!("{host} did not resolve to any address")
        } else {
            format!("{host} resolves only to link-local, metadata or private addresses, which upstreams may not use")
        });
    }
    Ok(kept)
}

fn ipv4_is_private(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || o[0] == 0
        || (o[0] == 100 && (64..128).contains(&o[1])) // CGNAT 100.64/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] == 18 || o[1] == 19)) // benchmarking
        || o[0] >= 240
}

fn ipv6_is_private(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded_v4 = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7 (incl. fd00:ec2::254)
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated, still routed by some)
        || (s[0] == 0x64 && s[1] == 0xff9b) // NAT64 can reach v4 private space
        || (s[0] == 0x2002 && ipv4_is_private(embedded_v4(s[1], s[2]))) // 6to4 of a private v4
        || (s[0] == 0x2001 && s[1] == 0) // Teredo: a tunnel to anywhere
        || (s[0] == 0x2001 && s[1] == 0xdb8) // documentation
        || (s[0] == 0x100 && s[1] == 0 && s[2] == 0 && s[3] == 0) // discard-only 100::/64
        // IPv4-translated ::ffff:0:a.b.c.d (SIIT)
        || (s[..4] == [0, 0, 0, 0] && s[4] == 0xffff && s[5] == 0 && ipv4_is_private(embedded_v4(s[6], s[7])))
        || (s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0 && s[4] == 0 && s[5] == 0)
    // v4-compatible
}

#[cfg(test)]
mod tests {
    #[test]
    fn fetch_urls_keep_their_query_and_refuse_what_base_urls_refuse() {
        use super::{check_fetch_url, UrlProblem};
        let ok = check_fetch_url("https://cdn.example.com/a.png?sig=1#frag", false).expect("ok");
        assert_eq!(ok.as_str(), "https://cdn.example.com/a.png?sig=1");
        for (raw, want) in [
            ("http://127.1/a.png", UrlProblem::PrivateAddress),
            ("http://[::ffff:10.0.0.1]/a.png", UrlProblem::PrivateAddress),
            ("http://169.254.169.254/latest", UrlProblem::MetadataAddress),
            ("http://u:p@example.com/a.png", UrlProblem::Userinfo),
            ("file:///etc/passwd", UrlProblem::Scheme),
        ] {
            assert_eq!(check_fetch_url(raw, false).err(), Some(want), "{raw}");
        }
        assert!(check_fetch_url("http://127.0.0.1:9/a.png", true).is_ok());
        assert_eq!(
            check_fetch_url("http://169.254.169.254/", true).err(),
            Some(UrlProblem::MetadataAddress)
        );
    }

    #[test]
    fn connect_time_filter() {
        let a = |s: &str| -> std::net::SocketAddr { s.parse().expect("addr") };
        let mixed = vec![
            a("127.0.0.1:80"),
            a("93.184.215.14:80"),
            a("169.254.169.254:80"),
        ];
        assert_eq!(
            super::connectable("h", mixed.clone(), false),
            Ok(vec![a("93.184.215.14:80")])
        );
        assert_eq!(
            super::connectable("h", mixed, true),
            Ok(vec![a("127.0.0.1:80"), a("93.184.215.14:80")])
        );
        assert!(super::connectable("h", vec![a("10.0.0.1:80"), a("[::1]:80")], false).is_err());
        assert!(super::connectable("h", vec![a("[fe80::1]:80")], true).is_err());
        assert!(super::connectable("h", vec![], true).is_err());
    }

    use super::*;

    #[test]
    fn refuses_metadata_even_with_the_allowance() {
        for bad in [
            "http://169.254.169.254/",
            "http://[::ffff:169.254.169.254]/",
            "http://2852039166/",
            "http://[fd00:ec2::254]/",
            "http://[fe80::1]/",
            "http://metadata.google.internal/",
        ] {
            assert_eq!(
                check_base_url(bad, true),
                Err(UrlProblem::MetadataAddress),
                "{bad}"
            );
            assert_eq!(
                check_base_url(bad, false),
                Err(UrlProblem::MetadataAddress),
                "{bad}"
            );
        }
    }

    #[test]
    fn refuses_private_in_any_encoding() {
        for bad in [
            "http://0x7f.1/",
            "http://127.1/",
            "http://localhost/",
            "http://LOCALHOST./v1",
            "http://[::1]/",
            "http://10.0.0.1/",
            "http://100.64.0.1/",
            "http://[fd00::1]/",
            "http://192.168.1.10:8000/v1",
            "http://0.0.0.0/",
            "http://gpu-box.internal/",
            "http://[::ffff:0:7f00:1]/",
            "http://[::ffff:0:a00:1]/",
            "http://[2002:a00:1::]/",
            "http://[2002:7f00:1::1]/",
            "http://[fec0::1]/",
            "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
            "http://[2001:db8::1]/",
            "http://[100::1]/",
        ] {
            assert_eq!(
                check_base_url(bad, false),
                Err(UrlProblem::PrivateAddress),
                "{bad}"
            );
        }
    }

    #[test]
    fn refuses_bad_forms() {
        assert_eq!(
            check_base_url("file:///etc/passwd", true),
            Err(UrlProblem::Scheme)
        );
        assert_eq!(check_base_url("gopher://x/", true), Err(UrlProblem::Scheme));
        assert_eq!(
            check_base_url("https://u:p@api.x.com/", true),
            Err(UrlProblem::Userinfo)
        );
        assert_eq!(
            check_base_url("https://api.x.com/?a=1", true),
            Err(UrlProblem::QueryOrFragment)
        );
        assert_eq!(check_base_url("not a url", true), Err(UrlProblem::Invalid));
    }

    #[test]
    fn allows_public_and_allowed_private() {
        assert_eq!(
            check_base_url("https://api.openai.com/v1/", false).as_deref(),
            Ok("https://api.openai.com/v1")
        );
        assert_eq!(
            check_base_url("http://127.0.0.1:9000/v1", true).as_deref(),
            Ok("http://127.0.0.1:9000/v1")
        );
        // Public addresses in the ranges that embed a v4 address stay allowed.
        for ok in ["http://[2002:808:808::1]/", "http://[2606:4700::1111]/"] {
            assert!(check_base_url(ok, false).is_ok(), "{ok}");
        }
    }
}
