//! One TCP or TLS connection's task: frame inbound messages by Content-Length
//! ([`crate::sip::msg::frame`]), write outbound ones, answer and send CRLF keep-alives
//! (RFC 5626 §4.4.1), and enforce the header (slowloris), write and pong timeouts.
//!
//! Idleness is not decided here. After `idle_timeout` without a SIP message (and without a
//! keep-alive, when keep-alives count on this connection) the task reports [`Inbound::Idle`];
//! the endpoint, which owns the user agent, answers [`Out::CloseIfIdle`] when no dialog uses the
//! connection, or nothing (a PBX's connection that carries a call stays open however long the
//! call is silent), or [`Out::Ping`] on a connection we opened, to keep it and its NAT binding
//! alive. The task closes only if nothing arrived since it reported.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::debug;

use super::{Inbound, Out, TcpLimits};
use crate::sip::msg;
use crate::sip::ua::Peer;

/// A write that takes longer than this means a peer that stopped reading: the connection is
/// closed rather than left to block the task for ever.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// RFC 5626 §4.4.1: a ping not answered by a pong within 10 s means the flow has failed.
const PONG_TIMEOUT: Duration = Duration::from_secs(10);

/// What the task needs to know about its connection.
pub(super) struct Ctx {
    pub(super) id: u64,
    /// The far end's address and the link messages from it arrive on.
    pub(super) peer: Peer,
    pub(super) in_tx: mpsc::Sender<Inbound>,
    pub(super) limits: TcpLimits,
    /// Whether the peer's CRLF keep-alives keep the connection from idling: yes for a trusted
    /// source and on a connection we opened, no for strangers (who could otherwise hold a
    /// slot for ever with a ping every 59 s).
    pub(super) pings_count: bool,
}

/// Run the connection until it closes, either side. `out_rx` is left to the caller, which
/// reports what is still queued in it as undelivered.
pub(super) async fn run<S>(ctx: &Ctx, mut stream: S, out_rx: &mut mpsc::Receiver<Out>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let id = ctx.id;
    let limits = ctx.limits;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    let mut partial_since: Option<Instant> = None;
    let mut idle_at = now() + limits.idle_timeout;
    let mut idle_reported = false;
    let mut pong_by: Option<Instant> = None;
    loop {
        let header_deadline = partial_since.map(|t| t + limits.header_timeout);
        tokio::select! {
            r = stream.read(&mut chunk) => {
                let n = match r { Ok(0) | Err(_) => return, Ok(n) => n };
                pong_by = None;
                buf.extend_from_slice(&chunk[..n]);
                let mut messages = false;
                let mut pinged = false;
                loop {
                    // RFC 5626 §4.4.1: a double-CRLF ping gets a single-CRLF pong.
                    if buf.starts_with(b"\r\n\r\n") {
                        buf.drain(..4);
                        pinged = true;
                        if !write(&mut stream, b"\r\n").await { return; }
                        continue;
                    }
                    match msg::frame(&buf) {
                        Ok(Some(len)) => {
                            let bytes: Vec<u8> = buf.drain(..len).collect();
                            let trimmed = trim_leading_crlf(&bytes);
                            if !trimmed.is_empty() {
                                messages = true;
                                if ctx.in_tx.send(Inbound::Message(ctx.peer, trimmed.to_vec())).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            debug!(conn = id, error = %e, "unframeable stream; closing");
                            // Let the user agent answer 400 if it can read a Via.
                            let _ = ctx.in_tx.send(Inbound::Message(ctx.peer, std::mem::take(&mut buf))).await;
                            return;
                        }
                    }
                }
                if messages || (pinged && ctx.pings_count) {
                    idle_at = now() + limits.idle_timeout;
                    idle_reported = false;
                }
                partial_since = if buf.iter().all(|b| *b == b'\r' || *b == b'\n') {
                    None
                } else {
                    partial_since.or_else(|| Some(now()))
                };
            }
            out = out_rx.recv() => match out {
                Some(Out::Send(bytes, _)) => {
                    if !write(&mut stream, &bytes).await { return; }
                    idle_at = now() + limits.idle_timeout;
                    idle_reported = false;
                }
                Some(Out::Ping) => {
                    if !write(&mut stream, b"\r\n\r\n").await { return; }
                    pong_by.get_or_insert(now() + PONG_TIMEOUT);
                }
                Some(Out::CloseIfIdle) if idle_reported => {
                    debug!(conn = id, "idle and no call uses it: closing");
                    return;
                }
                Some(Out::CloseIfIdle) => {}
                // The endpoint dropped us (a peer not reading what we send).
                None => return,
            },
            () = tokio::time::sleep_until(idle_at) => {
                idle_at = now() + limits.idle_timeout;
                idle_reported = true;
                if ctx.in_tx.send(Inbound::Idle(id)).await.is_err() { return; }
            }
            () = sleep_until_opt(header_deadline) => { debug!(conn = id, "header timeout"); return; }
            () = sleep_until_opt(pong_by) => { debug!(conn = id, "no pong to our keep-alive: the flow has failed"); return; }
        }
    }
}

/// Write all of `bytes`; `false` when the connection failed or the peer stopped reading.
async fn write<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> bool {
    // TLS buffers records in its session: the flush is what puts them on the wire.
    let io = async {
        stream.write_all(bytes).await?;
        stream.flush().await
    };
    matches!(tokio::time::timeout(WRITE_TIMEOUT, io).await, Ok(Ok(())))
}

fn now() -> Instant {
    crate::clock::now().into()
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn trim_leading_crlf(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| *c != b'\r' && *c != b'\n')
        .unwrap_or(b.len());
    &b[start..]
}
