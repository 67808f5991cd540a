//! The HTTP endpoint of `--metrics-listen`, served by the controller shard:
//! `GET /metrics` (Prometheus text, gathered from every shard over the mesh),
//! `GET /ready` (200 once every shard has opened its partitions and the broker
//! serves clients, 503 before and while stopping) and `GET /health` (200 while
//! the shard answers). One request per connection, then it closes.

use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};

use crate::metrics::exposition;
use crate::shard::Shard;
use crate::shard::calls::metrics::GatherMetrics;

/// Largest request head read.
const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// Headers parsed per request.
const MAX_HEADERS: usize = 32;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 64;
/// Pause after a failed accept.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// The broker's state as `/ready` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Opening partitions, or waiting to be registered by the controller.
    Starting,
    Ready,
    Stopping,
}

/// Serves the endpoint on `listener` (bound, listening, non-blocking) until the
/// returned task is cancelled.
pub fn spawn(
    shard: Rc<Shard>,
    listener: std::net::TcpListener,
    readiness: impl Fn() -> Readiness + 'static,
) -> glommio::Task<()> {
    // SAFETY: the descriptor comes from a listener we own and give up here.
    let listener = unsafe { TcpListener::from_raw_fd(listener.into_raw_fd()) };
    let readiness = Rc::new(readiness);
    let open = Rc::new(std::cell::Cell::new(0usize));
    glommio::spawn_local(async move {
        loop {
            let stream = match listener.accept().await {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::warn!(%error, "metrics endpoint: accept failed");
                    glommio::timer::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            if open.get() >= MAX_CONNECTIONS {
                continue;
            }
            open.set(open.get() + 1);
            let shard = Rc::clone(&shard);
            let readiness = Rc::clone(&readiness);
            let open = Rc::clone(&open);
            glommio::spawn_local(async move {
                serve(&shard, stream, readiness()).await;
                open.set(open.get() - 1);
            })
            .detach();
        }
    })
}

async fn serve(shard: &Rc<Shard>, mut stream: TcpStream, readiness: Readiness) {
    let head =
        glommio::timer::timeout(READ_TIMEOUT, async { Ok(read_head(&mut stream).await) }).await;
    let response = match head {
        Ok(Some(head)) => match route(&head) {
            Route::Metrics => {
                let text = gather(shard).await;
                Response::ok(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    text,
                )
            }
            Route::Ready => match readiness {
                Readiness::Ready => Response::ok("text/plain", "ready\n".into()),
                Readiness::Starting => Response::status(503, "starting\n"),
                Readiness::Stopping => Response::status(503, "stopping\n"),
            },
            Route::Health => Response::ok("text/plain", "ok\n".into()),
            Route::NotFound => Response::status(404, "try /metrics, /ready or /health\n"),
            Route::NotAllowed => Response::status(405, "only GET is served\n"),
            Route::Bad => Response::status(400, "bad request\n"),
        },
        Ok(None) | Err(_) => Response::status(400, "bad request\n"),
    };
    if let Err(error) = stream.write_all(&response.encode()).await {
        tracing::debug!(%error, "metrics endpoint: write failed");
    }
    let _ = stream.close().await;
}

/// The metrics of every shard, rendered.
async fn gather(shard: &Rc<Shard>) -> String {
    let calls = shard.all_shards().map(|id| (id, GatherMetrics)).collect();
    let snapshots = crate::kafka::fan_out(shard, calls)
        .await
        .into_iter()
        .map(|(_, snapshot)| snapshot)
        .collect();
    exposition::render(snapshots, shard.config().metrics_aggregate_partitions)
}

/// Reads up to the end of the request head; `None` if it is too long or the
/// client closed first.
async fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while head.len() < MAX_REQUEST_BYTES {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&chunk[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            return Some(head);
        }
    }
    None
}

#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    Ready,
    Health,
    NotFound,
    NotAllowed,
    Bad,
}

fn route(head: &[u8]) -> Route {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Route::Bad,
    }
    if request.method != Some("GET") {
        return Route::NotAllowed;
    }
    let path = request.path.unwrap_or("/");
    let path = path.split('?').next().unwrap_or(path);
    match path {
        "/metrics" => Route::Metrics,
        "/ready" => Route::Ready,
        "/health" => Route::Health,
        _ => Route::NotFound,
    }
}

struct Response {
    status: u16,
    content_type: &'static str,
    body: String,
}

impl Response {
    fn ok(content_type: &'static str, body: String) -> Response {
        Response {
            status: 200,
            content_type,
            body,
        }
    }

    fn status(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain",
            body: body.to_string(),
        }
    }

    fn encode(&self) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            _ => "Service Unavailable",
        };
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.status,
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        out.extend_from_slice(self.body.as_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_route_by_method_and_path() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics
        );
        assert_eq!(route(b"GET /ready HTTP/1.0\r\n\r\n"), Route::Ready);
        assert_eq!(route(b"GET /health?x=1 HTTP/1.1\r\n\r\n"), Route::Health);
        assert_eq!(route(b"GET /nope HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"POST /metrics HTTP/1.1\r\n\r\n"), Route::NotAllowed);
        assert_eq!(route(b"\x00\x01garbage\r\n\r\n"), Route::Bad);
    }

    #[test]
    fn responses_carry_their_length_and_close() {
        let text = String::from_utf8(Response::status(503, "starting\n").encode()).unwrap();
        assert!(text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(text.contains("Content-Length: 9\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.ends_with("\r\n\r\nstarting\n"));
    }
}
