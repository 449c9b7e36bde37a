//! An upstream that breaks a stream midway, at the TCP level: it answers `GET /v1/models` (so it
//! can be connected like any provider) and streams chat answers as chunked SSE, but after a few
//! chunks it resets the connection (RST) or closes it cleanly (FIN) without finishing the body —
//! what a crashing or restarting model server does. Written on raw sockets because an HTTP
//! framework finishes or discards a broken body instead of leaving it broken on the wire.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::mock::stream_chunks;

#[derive(Clone, Copy, Debug)]
pub enum Break {
    Reset,
    Close,
}

/// Starts on 127.0.0.1:0 in the calling actix system; sends `chunks` SSE chunks, then breaks.
pub async fn start(chunks: usize, how: Break) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    actix_rt::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            actix_rt::spawn(serve(s, chunks, how));
        }
    });
    addr
}

/// Reads one request (head and a content-length body) into `req`; `None` when the peer is gone.
async fn read_request(s: &mut TcpStream, req: &mut Vec<u8>) -> Option<String> {
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = req.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = s.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        req.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&req[..head_end]).to_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    while req.len() < head_end + len {
        let n = s.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        req.extend_from_slice(&buf[..n]);
    }
    req.drain(..head_end + len);
    Some(head)
}

/// An upstream that answers as the front ends of real providers do: its head and its body in two
/// separate writes (with `TCP_NODELAY`, a short pause between), over keep-alive connections. A
/// proxy whose own sockets lack `TCP_NODELAY` stalls on such answers until its client's delayed
/// ACK (about 40 ms on Linux).
pub async fn start_split_writes() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    actix_rt::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            actix_rt::spawn(serve_split(s));
        }
    });
    addr
}

async fn serve_split(mut s: TcpStream) {
    let _ = s.set_nodelay(true);
    let mut pending = Vec::new();
    while let Some(head) = read_request(&mut s, &mut pending).await {
        let body = if head.starts_with("get /v1/models") {
            r#"{"object":"list","data":[{"id":"m","object":"model","owned_by":"split"}]}"#
                .to_string()
        } else {
            crate::mock::FAST_BODY.to_string()
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        if s.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        if s.write_all(body.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// An upstream that answers the first request of each connection and closes the connection
/// after reading the second, without answering: what a server that closes idle keep-alive
/// connections does to a client whose request crossed its FIN. Counts the connections it took.
pub async fn start_closing_reused() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>)
{
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connections.clone();
    actix_rt::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            actix_rt::spawn(serve_once(s));
        }
    });
    (addr, connections)
}

async fn serve_once(mut s: TcpStream) {
    let mut pending = Vec::new();
    let Some(head) = read_request(&mut s, &mut pending).await else {
        return;
    };
    let body = if head.starts_with("get /v1/models") {
        r#"{"object":"list","data":[{"id":"m","object":"model","owned_by":"closing"}]}"#
    } else {
        crate::mock::FAST_BODY
    };
    let answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(answer.as_bytes()).await.is_err() {
        return;
    }
    // The second request is read, then the connection is closed unanswered.
    let _ = read_request(&mut s, &mut pending).await;
    let _ = s.shutdown().await;
}

async fn serve(mut s: TcpStream, chunks: usize, how: Break) {
    let Some(head) = read_request(&mut s, &mut Vec::new()).await else {
        return;
    };
    if head.starts_with("get /v1/models") {
        let body =
            r#"{"object":"list","data":[{"id":"m","object":"model","owned_by":"breaking"}]}"#;
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = s.write_all(resp.as_bytes()).await;
        return;
    }
    let _ = s
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        .await;
    for c in stream_chunks("m").iter().take(chunks) {
        let _ = s
            .write_all(format!("{:x}\r\n{c}\r\n", c.len()).as_bytes())
            .await;
        let _ = s.flush().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if let Break::Reset = how {
        let _ = s.set_zero_linger();
    }
    drop(s);
}
