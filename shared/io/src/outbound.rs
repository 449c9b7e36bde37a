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
            let addrs: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host, port)).await?.collect();
            connectable(host, addrs, self.allow_private).map_err(|m| m.into())
        })
    }
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
    use actix_service::ServiceExt;
    let tcp = actix_tls::connect::Connector::new(Resolver::custom(GuardedResolver {
        allow_private: o.allow_private,
    }))
    .service()
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
}
