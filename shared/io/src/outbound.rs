//! Outbound HTTP for both planes: the awc client every upstream call goes through, whose resolver
//! refuses host names that resolve to link-local, metadata or (without the operator's allowance)
//! private addresses — the connect-time half of the SSRF guard, which catches DNS rebinding — and
//! the Google token exchange.

use std::time::Duration;

use actix_tls::connect::{Resolve, Resolver};
use futures_util::future::LocalBoxFuture;
use to11_shared::google::{parse_token_answer, token_request_body, AccessToken, ServiceAccount};
use to11_shared::upstream_url::connectable;

/// Resolves with the system resolver, then keeps only addresses upstreams may use.
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> LocalBoxFuture<'a, Result<Vec<std::net::SocketAddr>, Box<dyn std::error::Error>>> {
        Box::pin(async move {
            // An IPv6 literal arrives bracketed (`[::1]`), which the system resolver refuses.
            let addrs: Vec<std::net::SocketAddr> = match literal(host) {
                Some(ip) => vec![std::net::SocketAddr::new(ip, port)],
                None => tokio::net::lookup_host((host, port)).await?.collect(),
            };
            connectable(host, addrs, self.allow_private).map_err(|m| m.into())
        })
    }
}

/// A host that is an IP address literal (IPv6 with or without brackets).
fn literal(host: &str) -> Option<std::net::IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

/// Why a connection to an IP literal host is refused: actix-tls connects to a literal without
/// asking the resolver, so the literal is checked here (a base URL saved while the operator
/// allowed private addresses must not be reached by a replica that does not).
fn refused_literal(host: &str, allow_private: bool) -> Option<String> {
    let ip = literal(host)?;
    connectable(host, vec![std::net::SocketAddr::new(ip, 0)], allow_private).err()
}

pub struct ClientOptions {
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub max_connections: usize,
    pub allow_private: bool,
}

/// An awc client that follows no redirects, sends no default headers and connects only where the
/// SSRF guard allows. One per worker (awc clients are not `Send`).
///
/// Its sockets have `TCP_NODELAY`: awc writes a request's head and body separately, and with
/// Nagle's algorithm the body would wait for the upstream's delayed ACK (up to 40 ms).
pub fn client(o: &ClientOptions) -> awc::Client {
    use actix_service::{Service, ServiceExt};
    use actix_tls::connect::{ConnectError, ConnectInfo};
    let allow_private = o.allow_private;
    let connector =
        actix_tls::connect::Connector::new(Resolver::custom(GuardedResolver { allow_private }))
            .service();
    type Info = ConnectInfo<awc::http::Uri>;
    let tcp = actix_service::apply_fn::<_, _, _, _, Info, Info, _, _>(
        connector,
        move |req: Info, svc: &actix_tls::connect::ConnectorService| {
            let refused = refused_literal(req.hostname(), allow_private);
            let connecting = refused.is_none().then(|| svc.call(req));
            async move {
                match (connecting, refused) {
                    (Some(c), _) => c.await,
                    (None, why) => Err(ConnectError::Resolver(why.unwrap_or_default().into())),
                }
            }
        },
    )
    .map(
        |conn: actix_tls::connect::Connection<_, tokio::net::TcpStream>| {
            // Failure leaves Nagle on: slower, never wrong.
            let _ = conn.io_ref().set_nodelay(true);
            conn
        },
    );
    awc::Client::builder()
        .disable_redirects()
        .no_default_headers()
        .timeout(o.timeout)
        .connector(
            awc::Connector::new()
                .connector(tcp)
                .timeout(o.connect_timeout)
                .limit(o.max_connections),
        )
        .finish()
}

/// Why a Google token could not be had.
#[derive(Debug)]
pub enum TokenError {
    /// The token endpoint refused the service account (bad key, disabled account, clock skew).
    Refused(String),
    /// The endpoint could not be reached or answered something else.
    Failed(String),
}

/// Exchanges a service account's signed assertion for an access token at `token_url`.
pub async fn google_token(
    client: &awc::Client,
    token_url: &str,
    sa: &ServiceAccount,
    timeout: Duration,
) -> Result<AccessToken, TokenError> {
    let now = chrono::Utc::now().timestamp();
    let assertion = sa
        .assertion(to11_shared::google::DEFAULT_TOKEN_URL, now)
        .map_err(|e| TokenError::Refused(e.to_string()))?;
    let mut resp = client
        .post(token_url)
        .timeout(timeout)
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .insert_header(("accept", "application/json"))
        .send_body(token_request_body(&assertion))
        .await
        .map_err(|e| {
            TokenError::Failed(format!("cannot reach the token endpoint {token_url}: {e}"))
        })?;
    let body = resp
        .body()
        .limit(64 * 1024)
        .await
        .map_err(|e| TokenError::Failed(format!("reading the token endpoint's answer: {e}")))?;
    let status = resp.status();
    if status.is_success() {
        return parse_token_answer(&body).map_err(|e| TokenError::Failed(e.to_string()));
    }
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let what = [v.get("error"), v.get("error_description")]
        .iter()
        .flatten()
        .filter_map(|x| x.as_str())
        .collect::<Vec<_>>()
        .join(": ");
    if status.as_u16() == 400 || status.as_u16() == 401 {
        Err(TokenError::Refused(format!(
            "Google refused the service account {} ({status}{}{what})",
            sa.client_email,
            if what.is_empty() { "" } else { ", " }
        )))
    } else {
        Err(TokenError::Failed(format!(
            "the token endpoint answered {status} {what}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real DNS resolution of `localhost`, refused without the allowance and allowed with it.
    #[actix_rt::test]
    async fn resolver_refuses_names_that_resolve_to_private_addresses() {
        let refused = GuardedResolver {
            allow_private: false,
        }
        .lookup("localhost", 80)
        .await;
        let e = refused.expect_err("localhost is loopback").to_string();
        assert!(e.contains("private"), "{e}");
        let allowed = GuardedResolver {
            allow_private: true,
        }
        .lookup("localhost", 80)
        .await
        .expect("allowed");
        assert!(allowed.iter().all(|a| a.ip().is_loopback()));
    }

    /// A tiny HTTP server on `addr` that answers every request with 200 `ok`.
    fn serve_ok(addr: &str) -> Option<std::net::SocketAddr> {
        let l = std::net::TcpListener::bind(addr).ok()?;
        let local = l.local_addr().ok()?;
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            for mut s in l.incoming().flatten() {
                let mut b = [0u8; 4096];
                let _ = s.read(&mut b);
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                );
            }
        });
        Some(local)
    }

    /// Header names come from a per-thread table of the names seen last (actix-http's ninth
    /// patch): differently cased spellings of one name are that name, names that differ in one
    /// byte (`^` and `~` differ in the bit case would) or that share a slot of the table stay
    /// apart, on the first answer and on the ones after it (which find the names in the table).
    #[actix_rt::test]
    async fn header_names_are_the_same_names_whatever_their_case_and_only_those() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let addr = l.local_addr().expect("addr");
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            for mut s in l.incoming().flatten() {
                let mut b = [0u8; 4096];
                let _ = s.read(&mut b);
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Thing-Id: 1\r\nx-thing-id: 2\r\n\
                      X-THING-ID: 3\r\nx-a^: caret\r\nx-a~: tilde\r\nX-A~: tilde too\r\n\
                      Content-TYPE: text/plain\r\nx-ab-cz: 1\r\nx-bb-dz: 2\r\nX-AB-CZ: 3\r\n\
                      x-bb-dz: 4\r\nconnection: close\r\n\r\nok",
                );
            }
        });
        let url = format!("http://{addr}/");
        for round in 0..3 {
            let r = client(&options(true))
                .get(&url)
                .send()
                .await
                .expect("answer");
            let h = r.headers();
            let all = |name: &str| -> Vec<String> {
                h.get_all(name)
                    .map(|v| v.to_str().unwrap_or("").to_string())
                    .collect()
            };
            assert_eq!(all("x-thing-id"), ["1", "2", "3"], "round {round}");
            assert_eq!(all("x-a^"), ["caret"], "round {round}");
            assert_eq!(all("x-a~"), ["tilde", "tilde too"], "round {round}");
            assert_eq!(all("content-type"), ["text/plain"], "round {round}");
            // Same length, first, middle and last byte: one slot of the table, two names.
            assert_eq!(all("x-ab-cz"), ["1", "3"], "round {round}");
            assert_eq!(all("x-bb-dz"), ["2", "4"], "round {round}");
            for name in r.headers().keys() {
                assert_eq!(name.as_str(), name.as_str().to_ascii_lowercase());
            }
        }
    }

    /// A URL without a host is refused before anything is sent, as awc refused it when it
    /// looked for the host itself (awc's sixth patch asks only whether there is an authority).
    #[actix_rt::test]
    async fn a_url_without_a_host_is_refused_before_sending() {
        for url in ["/v1/chat/completions", "/"] {
            let e = client(&options(true))
                .get(url)
                .send()
                .await
                .expect_err("no host");
            assert!(e.to_string().contains("Missing host name"), "{url}: {e}");
        }
        let e = client(&options(true))
            .get("ftp://127.0.0.1/")
            .send()
            .await
            .expect_err("scheme");
        assert!(e.to_string().contains("Unknown URL scheme"), "{e}");
    }

    fn options(allow_private: bool) -> ClientOptions {
        ClientOptions {
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(2),
            max_connections: 4,
            allow_private,
        }
    }

    /// actix-tls connects to an IP literal without asking the resolver: the client checks
    /// literals itself, so a private literal is refused without the allowance.
    #[actix_rt::test]
    async fn ip_literals_are_checked_at_connect_time() {
        let v4 = serve_ok("127.0.0.1:0").expect("listen");
        let url = format!("http://{v4}/");
        let e = client(&options(false))
            .get(&url)
            .send()
            .await
            .expect_err("a private literal is refused");
        assert!(e.to_string().contains("private"), "{e}");
        let ok = client(&options(true))
            .get(&url)
            .send()
            .await
            .expect("allowed");
        assert_eq!(ok.status(), 200);
        // IPv6 literals connect (they arrive bracketed), when the machine has IPv6 loopback.
        if let Some(v6) = serve_ok("[::1]:0") {
            let url = format!("http://[::1]:{}/", v6.port());
            let ok = client(&options(true))
                .get(&url)
                .send()
                .await
                .expect("v6 literal");
            assert_eq!(ok.status(), 200);
            assert!(client(&options(false)).get(&url).send().await.is_err());
        }
        // Metadata addresses are refused even with the allowance.
        let e = client(&options(true))
            .get("http://169.254.169.254/latest/meta-data/")
            .send()
            .await
            .expect_err("metadata");
        assert!(e.to_string().contains("metadata"), "{e}");
    }

    /// The byte at `i` of answer `n`'s body: differs from one answer to the next, so that a
    /// byte left over from an earlier exchange shows.
    fn pattern(n: usize, i: usize) -> u8 {
        b'a' + ((n * 7 + i) % 26) as u8
    }

    /// A keep-alive HTTP/1.1 server on loopback answering, for `/len/N`, N bytes of
    /// `pattern(request number, i)` (chunked when the query says `chunked`), and 204 for
    /// `/empty`; it reads each request's body (`content-length`) and counts its connections.
    fn serve_sized() -> (
        std::net::SocketAddr,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) {
        use std::io::{BufRead, BufReader, Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let addr = l.local_addr().expect("addr");
        let conns = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = conns.clone();
        std::thread::spawn(move || {
            let mut n = 0usize;
            for s in l.incoming().flatten() {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut w = s.try_clone().expect("clone");
                let mut r = BufReader::new(s);
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let path = line.split(' ').nth(1).unwrap_or("/").to_string();
                    let mut length = 0usize;
                    loop {
                        let mut h = String::new();
                        r.read_line(&mut h).expect("header");
                        if h == "\r\n" {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().expect("length");
                        }
                    }
                    let mut body = vec![0u8; length];
                    r.read_exact(&mut body).expect("request body");
                    n += 1;
                    let answer = if path == "/empty" {
                        b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()
                    } else {
                        let (p, q) = path.split_once('?').unwrap_or((&path, ""));
                        let len: usize = p.trim_start_matches("/len/").parse().expect("len");
                        let body: Vec<u8> = (0..len).map(|i| pattern(n, i)).collect();
                        let mut a = Vec::new();
                        if let Some(size) = q.strip_prefix("chunked") {
                            // `chunked=N`: chunks of N bytes (5,000 by default), all in one write.
                            let size = size.trim_start_matches('=').parse().unwrap_or(5000);
                            a.extend_from_slice(
                                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
                            );
                            for c in body.chunks(size) {
                                a.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                                a.extend_from_slice(c);
                                a.extend_from_slice(b"\r\n");
                            }
                            a.extend_from_slice(b"0\r\n\r\n");
                        } else {
                            a.extend_from_slice(
                                format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n")
                                    .as_bytes(),
                            );
                            a.extend_from_slice(&body);
                        }
                        a
                    };
                    if w.write_all(&answer).is_err() {
                        break;
                    }
                }
            }
        });
        (addr, conns)
    }

    /// Exchanges in a row on one pooled connection, each framed with the buffers the one before
    /// left (the vendored awc keeps them per thread): small and large answers (larger than the
    /// 8 KiB buffers), chunked ones, an answer without a body, and large request bodies; every
    /// answer arrives byte for byte, whatever the exchange before it held.
    #[actix_rt::test]
    async fn exchanges_in_a_row_reuse_framing_buffers_without_mixing_their_bytes() {
        let (addr, conns) = serve_sized();
        let c = client(&options(true));
        let cases: [(&str, usize, usize); 9] = [
            ("/len/{}", 3, 0),
            ("/len/{}", 70_000, 0),
            ("/len/{}", 5, 20_000),
            ("/empty", 0, 0),
            ("/len/{}?chunked", 23_456, 0),
            ("/len/{}", 1, 0),
            ("/len/{}", 9_000, 9_000),
            ("/empty", 0, 100),
            ("/len/{}", 0, 0),
        ];
        for round in 0..3 {
            for (i, (path, len, sent)) in cases.iter().enumerate() {
                let n = round * cases.len() + i + 1;
                let url = format!("http://{addr}{}", path.replace("{}", &len.to_string()));
                let body = vec![b'x'; *sent];
                let mut r = c.post(&url).send_body(body).await.expect("exchange");
                let got = r.body().limit(1 << 20).await.expect("body");
                if *path == "/empty" {
                    assert_eq!(r.status(), 204);
                    assert!(got.is_empty());
                    continue;
                }
                let want: Vec<u8> = (0..*len).map(|j| pattern(n, j)).collect();
                assert_eq!(got.len(), want.len(), "exchange {n} ({url})");
                assert!(got[..] == want[..], "exchange {n} ({url}): bytes differ");
            }
        }
        assert_eq!(
            conns.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "every exchange on the one pooled connection"
        );
    }

    /// The pool's key ignores the authority's case, as `Authority`'s equality does (the vendored
    /// awc compares the bytes first and hashes with foldhash): exchanges to `localhost`,
    /// `LOCALHOST` and `LocalHost` share one pooled connection (a key that missed would open
    /// another; this server serves one connection at a time, so it would also time out).
    #[actix_rt::test]
    async fn pooled_connections_are_found_by_authority_whatever_its_case() {
        let (addr, conns) = serve_sized();
        let c = client(&options(true));
        let port = addr.port();
        for (n, host) in ["localhost", "LOCALHOST", "LocalHost", "localhost"]
            .into_iter()
            .enumerate()
        {
            let url = format!("http://{host}:{port}/len/10");
            let mut r = c.post(&url).send().await.expect("exchange");
            let got = r.body().await.expect("body");
            let want: Vec<u8> = (0..10).map(|j| pattern(n + 1, j)).collect();
            assert!(got[..] == want[..], "{url}: bytes differ");
        }
        let seen = conns.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(seen, 1, "one connection for every case of one authority");
    }

    /// A server that answers request `n` (1, 2, … on its connection) with the header `x-n: n`,
    /// `x-odd: yes` when `n` is odd, and as its body the names of the request's headers that
    /// start with `x-`, one per line.
    fn serve_headers() -> std::net::SocketAddr {
        use std::io::{BufRead, BufReader, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let addr = l.local_addr().expect("addr");
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let mut w = s.try_clone().expect("clone");
                let mut r = BufReader::new(s);
                let (mut n, mut names) = (0, String::new());
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    if line != "\r\n" {
                        let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
                        if name.starts_with("x-") {
                            names.push_str(&name);
                            names.push('\n');
                        }
                        continue;
                    }
                    n += 1;
                    let odd = if n % 2 == 1 { "x-odd: yes\r\n" } else { "" };
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nx-n: {n}\r\n{odd}content-length: {}\r\n\r\n",
                        names.len()
                    );
                    if w.write_all(format!("{head}{names}").as_bytes()).is_err() {
                        break;
                    }
                    names.clear();
                }
            }
        });
        addr
    }

    /// The vendored actix-http keeps dropped header maps of a head's size for the thread's next
    /// head: a kept map comes back empty, and holds the room it had (a map grown to 56 headers
    /// is handed out for a head that asked for 12, where a new one would have room for 14).
    #[test]
    fn a_dropped_header_map_is_reused_empty() {
        use awc::http::header::{HeaderMap, HeaderName, HeaderValue};
        let mut grown = HeaderMap::new();
        for i in 0..40 {
            let name = HeaderName::try_from(format!("x-h{i}")).expect("name");
            grown.insert(name, HeaderValue::from_static("v"));
        }
        let room = grown.capacity();
        assert!((29..=56).contains(&room), "room for {room}");
        drop(grown);
        let reused = HeaderMap::with_capacity(12);
        assert_eq!(reused.capacity(), room, "the dropped map, not a new one");
        assert!(reused.is_empty());
        assert_eq!(reused.iter().count(), 0);
        // Nothing kept for it now: a new map, of the room asked for.
        let fresh = HeaderMap::with_capacity(12);
        assert_eq!(fresh.capacity(), 14);
        // A map too large to keep is freed, not kept.
        let mut huge = HeaderMap::with_capacity(200);
        huge.insert(
            HeaderName::from_static("x-a"),
            HeaderValue::from_static("v"),
        );
        drop(huge);
        assert_eq!(HeaderMap::with_capacity(12).capacity(), 14);
    }

    /// Exchanges in a row, whose request and answer heads are made from header maps the ones
    /// before dropped: each answer has exactly its own headers, and the upstream receives exactly
    /// each request's own.
    #[actix_rt::test]
    async fn reused_header_maps_carry_nothing_from_one_exchange_to_the_next() {
        let addr = serve_headers();
        let c = client(&options(true));
        for n in 1..=12usize {
            let mut req = c.get(format!("http://{addr}/"));
            for j in 0..n % 4 {
                req = req.insert_header((format!("x-req-{n}-{j}"), "v"));
            }
            let mut r = req.send().await.expect("exchange");
            let got = r.body().await.expect("body");
            let mut seen: Vec<&str> = std::str::from_utf8(&got).expect("text").lines().collect();
            seen.sort_unstable();
            let want: Vec<String> = (0..n % 4).map(|j| format!("x-req-{n}-{j}")).collect();
            assert_eq!(seen, want, "exchange {n}: what the upstream received");
            let h = r.headers();
            assert_eq!(
                h.get("x-n").and_then(|v| v.to_str().ok()),
                Some(&*n.to_string())
            );
            assert_eq!(h.contains_key("x-odd"), n % 2 == 1, "exchange {n}");
            let ours = h.keys().filter(|k| k.as_str().starts_with("x-")).count();
            assert_eq!(ours, 1 + n % 2, "exchange {n}: {h:?}");
        }
    }

    /// A server that answers each `GET` with the number of the connection it came on (1, 2, …,
    /// in the order they were accepted), and notes the number of every connection the client
    /// closed.
    fn serve_numbered() -> (
        std::net::SocketAddr,
        std::sync::Arc<std::sync::Mutex<Vec<usize>>>,
    ) {
        use std::io::{BufRead, BufReader, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let addr = l.local_addr().expect("addr");
        let closed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let noted = closed.clone();
        std::thread::spawn(move || {
            for (i, s) in l.incoming().flatten().enumerate() {
                let noted = noted.clone();
                std::thread::spawn(move || {
                    let mut w = s.try_clone().expect("clone");
                    let mut r = BufReader::new(s);
                    let body = (i + 1).to_string();
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            noted.lock().expect("lock").push(i + 1);
                            return;
                        }
                        if line == "\r\n" {
                            let head = format!(
                                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
                                body.len()
                            );
                            let _ = w.write_all(format!("{head}{body}").as_bytes());
                        }
                    }
                });
            }
        });
        (addr, closed)
    }

    /// The pool hands out the connection released last (the vendored awc takes from the back,
    /// as nginx's keepalive cache does: the socket most likely still in cache), and closes the
    /// connections idle past the keep-alive when another is released rather than keeping them
    /// open until a burst reaches back to them.
    #[actix_rt::test]
    async fn the_pool_reuses_the_connection_released_last_and_closes_stale_ones() {
        let (addr, closed) = serve_numbered();
        let c = awc::Client::builder()
            .connector(awc::Connector::new().conn_keep_alive(Duration::from_millis(300)))
            .finish();
        let url = format!("http://{addr}/");
        let number = |b: &[u8]| String::from_utf8(b.to_vec()).expect("utf-8");
        // Two exchanges at once: two connections.
        let (a, b) = futures_util::future::join(c.get(&url).send(), c.get(&url).send()).await;
        let (mut a, mut b) = (a.expect("a"), b.expect("b"));
        let first = number(&a.body().await.expect("body"));
        drop(a);
        let second = number(&b.body().await.expect("body"));
        drop(b);
        assert_ne!(first, second, "two connections");
        let mut held = c.get(&url).send().await.expect("held");
        // `first` idles past the keep-alive while `second` is in use; releasing `second`
        // closes it.
        actix_rt::time::sleep(Duration::from_millis(400)).await;
        let again = number(&held.body().await.expect("body"));
        assert_eq!(again, second, "the connection released last is used first");
        drop(held);
        actix_rt::time::sleep(Duration::from_millis(100)).await;
        let closed = closed.lock().expect("lock").clone();
        assert_eq!(
            closed.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
            vec![first],
            "the stale connection, and only it, was closed"
        );
    }

    /// The pieces of an answer's body as awc gives them.
    async fn pieces(c: &awc::Client, url: &str) -> Vec<Vec<u8>> {
        use futures_util::StreamExt;
        let mut r = c.post(url).send().await.expect("exchange");
        let mut out = vec![];
        while let Some(piece) = r.next().await {
            out.push(piece.expect("piece").to_vec());
        }
        out
    }

    /// Chunks that came in one read are given on as one piece, up to 16 KiB (the vendored awc
    /// joins them: each piece costs every layer above a poll, and the client a chunk), byte for
    /// byte and in order; the connection is still reused after a joined end.
    #[actix_rt::test]
    async fn chunks_received_together_are_joined_up_to_16_kib() {
        let (addr, conns) = serve_sized();
        let c = client(&options(true));
        for (n, (len, size, most)) in [(1_400, 200, 1), (40_000, 1_000, 3), (40_000, 20_000, 2)]
            .into_iter()
            .enumerate()
        {
            let url = format!("http://{addr}/len/{len}?chunked={size}");
            let got = pieces(&c, &url).await;
            let joined: Vec<u8> = got.concat();
            let want: Vec<u8> = (0..len).map(|j| pattern(n + 1, j)).collect();
            assert!(joined == want, "{url}: bytes differ");
            // What was already read is joined; a read may end within the body, so allow one more.
            assert!(got.len() <= most + 1, "{url}: {} pieces", got.len());
            assert!(
                got.iter().all(|p| p.len() <= 16 * 1024 || p.len() == size),
                "{url}: a joined piece over 16 KiB"
            );
        }
        assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    /// Chunked framing of every shape decodes to the same bytes, whether a size line comes whole
    /// (the vendored actix-http takes a plain `HEX\r\n` line at once) or byte by byte, with
    /// upper- and lower-case digits, leading zeros, extensions, whitespace before them, and
    /// trailers after the last chunk.
    #[actix_rt::test]
    async fn chunked_framing_of_every_shape_decodes_to_the_same_bytes() {
        use std::io::{Read, Write};
        let data: Vec<u8> = (0..3000u32)
            .map(|i| b"abcdefghij\r\n"[i as usize % 12])
            .collect();
        let mut framed = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        let sizes = [1usize, 15, 16, 255, 256, 4, 1000, 1453];
        let lines = [
            "{:x}\r\n",
            "{:X}\r\n",
            "000{:x}\r\n",
            "{:x};ext=1\r\n",
            "{:X} ;x\r\n",
        ];
        let mut at = 0;
        for (n, len) in sizes.iter().enumerate() {
            let line = lines[n % lines.len()].replace("{:x}", &format!("{len:x}"));
            let line = line.replace("{:X}", &format!("{len:X}"));
            framed.extend_from_slice(line.as_bytes());
            framed.extend_from_slice(&data[at..at + len]);
            framed.extend_from_slice(b"\r\n");
            at += len;
        }
        assert_eq!(at, data.len());
        framed.extend_from_slice(b"0\r\nx-trailer: 1\r\n\r\n");
        for step in [framed.len(), 1, 3, 7] {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
            let addr = l.local_addr().expect("addr");
            let answer = framed.clone();
            std::thread::spawn(move || {
                let (mut s, _) = l.accept().expect("accept");
                s.set_nodelay(true).expect("nodelay");
                let mut head = [0u8; 1024];
                let _ = s.read(&mut head).expect("request");
                for part in answer.chunks(step) {
                    s.write_all(part).expect("write");
                    if step < 8 {
                        std::thread::sleep(std::time::Duration::from_micros(50));
                    }
                }
            });
            let got = pieces(&client(&options(true)), &format!("http://{addr}/")).await;
            assert!(
                got.concat() == data,
                "written {step} bytes at a time: bytes differ"
            );
        }
    }

    /// A chunk is given on as soon as it came: joining never waits for the next one.
    #[actix_rt::test]
    async fn a_chunk_is_not_held_back_for_the_next() {
        use futures_util::StreamExt;
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let addr = l.local_addr().expect("addr");
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().expect("accept");
            let mut head = [0u8; 1024];
            let _ = s.read(&mut head).expect("request");
            s.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
                .expect("first");
            // The second chunk only once the client saw the first.
            rx.recv().expect("go on");
            s.write_all(b"6\r\nsecond\r\n0\r\n\r\n").expect("second");
        });
        let c = client(&options(true));
        let mut r = c
            .post(format!("http://{addr}/"))
            .send()
            .await
            .expect("exchange");
        let first = r.next().await.expect("a piece").expect("ok");
        assert_eq!(&first[..], b"first");
        tx.send(()).expect("server");
        let second = r.next().await.expect("a piece").expect("ok");
        assert_eq!(&second[..], b"second");
        assert!(r.next().await.is_none());
    }
}
