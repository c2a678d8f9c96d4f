//! The HTTP server (shell): an accept loop in front of the axum router. `axum::serve` has no
//! header-read timeout and no connection cap, so a slowloris client (one that opens many
//! connections and never finishes a request) could hold the file descriptors SIP and RTP need.
//!
//! - Every connection is a permit of one semaphore of `max_connections`; past it a new
//!   connection gets a 503 (best effort, no waiting) and is closed at once.
//! - hyper reads each request's headers under `header_timeout`; that timer also runs while a
//!   keep-alive connection sits idle between requests, so idle connections are closed too.
//! - Each request carries the client address (`ConnectInfo`), which the API's lock-out needs.
//! - On `stop`: no new connections; open ones finish their request and close (event streams end
//!   through `AppState::shutdown`); whatever is still open after `drain` is dropped.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tower_service::Service;
use tracing::{debug, trace, warn};

/// What the server allows (`[http]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// A request's headers must arrive within this long (and idle keep-alive ends after it).
    pub header_timeout: Duration,
    /// Connections at once; at least 1.
    pub max_connections: usize,
    /// After `stop`, how long open connections get to finish before they are dropped.
    pub drain: Duration,
}

/// What an over-the-cap client reads before the connection closes.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
Content-Length: 64\r\nRetry-After: 1\r\nConnection: close\r\n\r\n\
{\"error\":{\"code\":\"overloaded\",\"message\":\"too many connections\"}}";

/// Serve `router` on `listener` until `stop` is cancelled, then drain for up to
/// `limits.drain`. Returns when every connection is closed or dropped.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    stop: CancellationToken,
) {
    let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(max));
    let kill = CancellationToken::new();
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or the like: do not spin on it.
                    warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            debug!(client.addr = %crate::pii::Pii(&peer.ip()), "HTTP connection refused: at max_connections");
            // Best effort: a fresh socket's send buffer takes this at once; never wait on it.
            let _ = stream.try_write(REFUSED);
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            stream,
            peer,
            router.clone(),
            limits.header_timeout,
            (stop.clone(), kill.clone()),
            permit,
        ));
    }
    drop(listener);
    // Every connection holds a permit until it closes: all of them back means all closed.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.drain, slots.acquire_many(all))
        .await
        .is_err()
    {
        warn!(
            open = max - slots.available_permits(),
            "HTTP connections still open after the drain; dropping them"
        );
        kill.cancel();
    }
}

/// One client connection, HTTP/1.1 with keep-alive, until it closes, `stop` (graceful) or
/// `kill` (dropped).
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    header_timeout: Duration,
    (stop, kill): (CancellationToken, CancellationToken),
    _permit: OwnedSemaphorePermit,
) {
    let service = service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let mut router = router.clone();
        async move { Ok::<_, Infallible>(router.call(req).await.unwrap_or_else(|e| match e {})) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let mut conn = pin!(builder.serve_connection(TokioIo::new(stream), service));
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                trace!(error = %e, "HTTP connection ended");
            }
        }
        () = stop.cancelled() => {
            // Finish the request in flight (an event stream ends on shutdown), then close.
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                _ = conn.as_mut() => {}
                () = kill.cancelled() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests;
