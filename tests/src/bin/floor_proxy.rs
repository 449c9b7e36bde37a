//! The floor of the hop: the least a proxy built on the gateway's own stack does for one request,
//! measured beside nginx and to11 by the benchmark (`tests/bench.sh`, `tests/bench-callgrind.sh`).
//!
//! The same server (actix-web's `HttpServer` settings: one worker, `TCP_NODELAY`, no half-closed
//! connections) and the same upstream client (`to11_data_plane::upstream_client` with a replica's
//! default settings: the vendored awc with its pool, the SSRF-guarded connector and
//! `TCP_NODELAY`) as a to11 replica, and nothing of
//! to11: no authentication, no JSON scan of the body, no resolution, no metering, no metrics, no
//! guard on the answer. A request's body is read whole (as to11 reads it) and sent to the
//! upstream with the client's headers (hop-by-hop ones and `host` left out, as nginx does); the
//! answer's status, headers (hop-by-hop ones left out) and body pass back as they come. Where a
//! replica saves work on its hop, the floor saves it too: the same allocator (mimalloc), and an
//! upstream URL parsed once per worker by the replica's own cache (`proxy::Uris`).
//!
//! What to11 costs above this is to11's own work; what this costs above nginx is the stack's.
//!
//! Usage: `to11-floor-proxy LISTEN UPSTREAM` (`UPSTREAM` an `http://host:port` origin); prints the
//! address it listens on.

use std::rc::Rc;

use actix_http::body::{BoxBody, SizedStream};
use actix_http::header::{HeaderName, CONTENT_LENGTH, HOST};
use actix_http::{Request, Response};
use actix_service::{fn_factory_with_config, fn_service};
use actix_web::dev::AppConfig;
use actix_web::HttpServer;
use bytes::BytesMut;
use futures_util::StreamExt;
use to11_data_plane::proxy::Uris;
use to11_shared::config::Source;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One worker's upstream: its client and origin, and the URLs it was sent to, parsed once each by
/// the replica's own cache (`to11_data_plane::proxy::Uris`).
struct Upstream {
    client: awc::Client,
    origin: String,
    uris: Uris,
}

/// The headers that belong to one connection (RFC 9110 §7.6.1), never forwarded.
const HOP_BY_HOP: [HeaderName; 8] = [
    HeaderName::from_static("connection"),
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("transfer-encoding"),
    HeaderName::from_static("te"),
    HeaderName::from_static("trailer"),
    HeaderName::from_static("upgrade"),
    HeaderName::from_static("host"),
];

fn hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
}

/// Forwards `req` to `origin` and its answer back.
async fn forward(
    mut req: Request,
    up: Rc<Upstream>,
) -> Result<Response<BoxBody>, actix_web::Error> {
    let mut payload = req.take_payload();
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        body.extend_from_slice(&chunk?);
    }
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    // Joined per request, as a replica joins its upstream URL.
    let mut url = String::with_capacity(up.origin.len() + path.len());
    url.push_str(&up.origin);
    url.push_str(path);
    let mut out = match up.uris.get(&url) {
        Some((uri, host)) => {
            let mut out = up.client.request(req.method().clone(), uri);
            out.headers_mut().insert(HOST, host);
            out
        }
        // A URL the cache cannot parse goes as text (awc reports why), as a replica's does.
        None => up.client.request(req.method().clone(), url.as_str()),
    };
    let h = out.headers_mut();
    for (name, value) in req.head().headers.iter() {
        if !hop_by_hop(name) && name != CONTENT_LENGTH {
            h.append(name.clone(), value.clone());
        }
    }
    let answer = match out.send_body(body.freeze()).await {
        Ok(a) => a,
        Err(e) => {
            return Ok(Response::with_body(
                actix_http::StatusCode::BAD_GATEWAY,
                BoxBody::new(e.to_string()),
            ))
        }
    };
    let status = answer.status();
    let length = answer
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // The upstream's map moved over (as to11 does), without what belongs to its connection.
    let mut headers = actix_http::header::HeaderMap::new();
    let answer = answer.map_body(|head, payload| {
        headers = std::mem::take(&mut head.headers);
        payload
    });
    for name in HOP_BY_HOP.iter().chain([&CONTENT_LENGTH]) {
        headers.remove(name);
    }
    let body = match length {
        Some(n) => BoxBody::new(SizedStream::new(n, answer)),
        None => BoxBody::new(actix_http::body::BodyStream::new(answer)),
    };
    let mut out = Response::with_body(status, body);
    *out.headers_mut() = headers;
    Ok(out)
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(origin)) = (args.next(), args.next()) else {
        eprintln!(
            "usage: to11-floor-proxy LISTEN UPSTREAM (e.g. 127.0.0.1:0 http://127.0.0.1:9000)"
        );
        std::process::exit(2);
    };
    let origin = origin.trim_end_matches('/').to_string();
    // The replica's own settings (its defaults: timeouts, pool size), with loopback upstreams
    // allowed as the benchmark's replicas have them.
    let settings = to11_data_plane::Settings::read(
        &mut Source::from_pairs(&[("TO11_ALLOW_PRIVATE_UPSTREAMS", "true")]).reader(),
    );
    actix_rt::System::new().block_on(async move {
        let server = HttpServer::new(move || {
            // One client per worker, as a replica has (awc clients are not `Send`).
            let up = Rc::new(Upstream {
                client: to11_data_plane::upstream_client(&settings),
                origin: origin.clone(),
                uris: Uris::default(),
            });
            fn_factory_with_config(move |_: AppConfig| {
                let up = up.clone();
                async move { Ok::<_, ()>(fn_service(move |req: Request| forward(req, up.clone()))) }
            })
        })
        .workers(1)
        .backlog(4096)
        .tcp_nodelay(true)
        .h1_allow_half_closed(false)
        .bind(&listen)?;
        for addr in server.addrs() {
            println!("{addr}");
        }
        use std::io::Write;
        std::io::stdout().flush()?;
        server.run().await
    })
}
