//! An HTTP/1 client for plain `http://` endpoints that re-arms `TCP_QUICKACK` after every
//! read, so the kernel acknowledges each segment at once.
//!
//! Why: a server that does not set `TCP_NODELAY` (Garage) and writes a response in two
//! pieces (headers, then a small body) holds the second piece back under Nagle's algorithm
//! until the first is acknowledged, and the client's kernel delays that ACK by up to 40 ms
//! while it waits for more data. On a reused connection every small GET then costs ~40 ms.
//! Quick ACKs make the server's second write go out at once. `TCP_QUICKACK` is not sticky
//! (the kernel leaves quick-ACK mode on its own), hence setting it again after each read.
//!
//! `https://` endpoints keep object_store's own client (TLS, HTTP/2 negotiation): a real
//! deployment has a TLS-terminating proxy in front of the store, which sets its own socket
//! options.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use object_store::client::{
    HttpClient, HttpError, HttpErrorKind, HttpRequest, HttpRequestBody, HttpResponse,
    HttpResponseBody, HttpService,
};
use object_store::ClientOptions;
use tokio::net::TcpStream;

/// The object_store connector: plain TCP, quick ACKs, keep-alive pool.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QuickAckHttp {
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub pool: usize,
}

impl object_store::client::HttpConnector for QuickAckHttp {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(self.connect_timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(self.pool)
            .build(QuickAckConnector { inner: http });
        Ok(HttpClient::new(QuickAckClient {
            client,
            timeout: self.timeout,
        }))
    }
}

#[derive(Clone, Debug)]
struct QuickAckConnector {
    inner: HttpConnector,
}

type ConnectFuture = Pin<
    Box<
        dyn Future<Output = Result<QuickAckStream, Box<dyn std::error::Error + Send + Sync>>>
            + Send,
    >,
>;

impl tower_service::Service<http::Uri> for QuickAckConnector {
    type Response = QuickAckStream;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = ConnectFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let fut = self.inner.call(uri);
        Box::pin(async move {
            let io = fut.await?;
            quickack(io.inner());
            Ok(QuickAckStream(io))
        })
    }
}

fn quickack(stream: &TcpStream) {
    // Best effort: where the option is missing the connection still works, just slower.
    let _ = socket2::SockRef::from(stream).set_tcp_quickack(true);
}

struct QuickAckStream(TokioIo<TcpStream>);

impl hyper::rt::Read for QuickAckStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.0).poll_read(cx, buf);
        if r.is_ready() {
            quickack(this.0.inner());
        }
        r
    }
}

impl hyper::rt::Write for QuickAckStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }
}

impl Connection for QuickAckStream {
    fn connected(&self) -> Connected {
        self.0.connected()
    }
}

#[derive(Debug)]
struct QuickAckClient {
    client: Client<QuickAckConnector, HttpRequestBody>,
    timeout: Duration,
}

#[async_trait::async_trait]
impl HttpService for QuickAckClient {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let res = match tokio::time::timeout(self.timeout, self.client.request(req)).await {
            Err(_) => {
                return Err(HttpError::new(
                    HttpErrorKind::Timeout,
                    io::Error::new(io::ErrorKind::TimedOut, "request timed out"),
                ))
            }
            Ok(Err(e)) => {
                let kind = if e.is_connect() {
                    HttpErrorKind::Connect
                } else {
                    HttpErrorKind::Request
                };
                return Err(HttpError::new(kind, e));
            }
            Ok(Ok(r)) => r,
        };
        let (parts, body) = res.into_parts();
        let body = body.map_err(|e| HttpError::new(HttpErrorKind::Interrupted, e));
        Ok(http::Response::from_parts(
            parts,
            HttpResponseBody::new(body),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::time::Instant;

    use object_store::aws::AmazonS3Builder;
    use object_store::path::Path;
    use object_store::ObjectStoreExt;

    use super::*;

    /// An HTTP/1.1 server that, like Garage, leaves Nagle's algorithm on and writes each
    /// response in two pieces: headers, then a 5-byte body. Keep-alive, one thread per
    /// connection; it serves until the test process ends.
    fn serve_in_two_writes() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                std::thread::spawn(move || {
                    let mut req = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                            match conn.read(&mut buf) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => req.extend_from_slice(&buf[..n]),
                            }
                        }
                        let end = req.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                        req.drain(..end);
                        let head = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: \"e\"\r\n\
                                    Last-Modified: Tue, 01 Dec 2026 00:00:00 GMT\r\n\r\n";
                        if conn.write_all(head.as_bytes()).is_err()
                            || conn.write_all(b"hello").is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        port
    }

    fn median(mut v: Vec<Duration>) -> Duration {
        v.sort();
        v[v.len() / 2]
    }

    /// Sequential small GETs on one reused connection, with and without quick ACKs. Not a
    /// benchmark: it shows the stall and that the quick-ACK client avoids it.
    #[test]
    fn quick_acks_avoid_the_delayed_ack_stall() {
        let port = serve_in_two_writes();
        let build = |quick: bool| {
            let mut b = AmazonS3Builder::new()
                .with_bucket_name("bucket")
                .with_region("test")
                .with_access_key_id("key")
                .with_secret_access_key("secret")
                .with_endpoint(format!("http://127.0.0.1:{port}"))
                .with_allow_http(true);
            if quick {
                b = b.with_http_connector(QuickAckHttp {
                    connect_timeout: Duration::from_secs(5),
                    timeout: Duration::from_secs(30),
                    pool: 1,
                });
            }
            b.build().unwrap()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let times = |quick: bool| {
            let s3 = build(quick);
            rt.block_on(async {
                let mut v = Vec::new();
                for _ in 0..15 {
                    let t = Instant::now();
                    let body = s3
                        .get(&Path::from("k"))
                        .await
                        .unwrap()
                        .bytes()
                        .await
                        .unwrap();
                    assert_eq!(&body[..], b"hello");
                    v.push(t.elapsed());
                }
                v
            })
        };
        let plain = median(times(false));
        let quick = median(times(true));
        eprintln!("median small GET on a reused connection: default client {plain:?}, quick-ACK client {quick:?}");
        assert!(
            quick < Duration::from_millis(25),
            "quick-ACK client still stalls: {quick:?} (default client: {plain:?})"
        );
    }
}
