//! The HTTP server under the API: hyper's HTTP/1 connections over the
//! daemon's listener, with the limits a daemon reachable from a network
//! needs. A client has `header_read` to send its request head and
//! `body_read` to send its body. At most `max_connections` are open at once;
//! when all are taken, the oldest connection that is not inside a request
//! (idle, or still sending its head) is closed for the newcomer. So a crowd
//! of slow or idle clients can neither use up the file descriptors that the
//! checks and the memory need nor keep `/healthz` from answering.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tower::ServiceExt;
use tracing::{debug, info, warn};

/// How long a client may take to send its request head.
pub const HEADER_READ: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's body, once its head is in.
pub const BODY_READ: Duration = Duration::from_secs(30);
/// The most connections open at once (fewer when the file descriptors are few).
pub const MAX_CONNECTIONS: usize = 256;
/// How long requests in flight may take to finish after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The server's limits, from the defaults above or the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub header_read: Duration,
    pub body_read: Duration,
    pub max_connections: usize,
}

/// A limit set in the environment that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{var}={value:?}: {why}")]
pub struct LimitError {
    pub var: &'static str,
    pub value: String,
    pub why: String,
}

impl Default for Limits {
    fn default() -> Self {
        Self { header_read: HEADER_READ, body_read: BODY_READ, max_connections: MAX_CONNECTIONS }
    }
}

impl Limits {
    /// The defaults, each replaced by `NIGHTSHIFT_HTTP_HEADER_TIMEOUT`,
    /// `NIGHTSHIFT_HTTP_BODY_TIMEOUT` (durations: `10s`) or
    /// `NIGHTSHIFT_HTTP_MAX_CONNECTIONS` when set, and never more connections
    /// than half the process's file descriptors.
    pub fn from_env() -> Result<Self, LimitError> {
        let var = |name: &'static str| std::env::var(name).ok().filter(|v| !v.is_empty()).map(|v| (name, v));
        let duration = |name: &'static str, default: Duration| match var(name) {
            None => Ok(default),
            Some((var, value)) => match crate::duration::parse(&value) {
                Ok(d) if !d.is_zero() => Ok(d),
                Ok(_) => Err(LimitError { var, value, why: "must be more than zero".into() }),
                Err(e) => Err(LimitError { var, value, why: e.to_string() }),
            },
        };
        let max_connections = match var("NIGHTSHIFT_HTTP_MAX_CONNECTIONS") {
            None => MAX_CONNECTIONS,
            Some((var, value)) => match value.parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => return Err(LimitError { var, value, why: "must be a whole number above zero".into() }),
            },
        };
        let limits = Self { header_read: duration("NIGHTSHIFT_HTTP_HEADER_TIMEOUT", HEADER_READ)?, body_read: duration("NIGHTSHIFT_HTTP_BODY_TIMEOUT", BODY_READ)?, max_connections };
        Ok(limits.within(open_files_limit()))
    }

    /// Leaves at least half of `open_files` (the soft RLIMIT_NOFILE) to the
    /// daemon's own work: checks, the memory, git, SSH and Kubernetes.
    pub fn within(self, open_files: Option<u64>) -> Self {
        let Some(open_files) = open_files else { return self };
        let share = usize::try_from(open_files / 2).unwrap_or(usize::MAX).max(1);
        if share < self.max_connections {
            info!(open_files, max_connections = share, "few file descriptors: fewer HTTP connections");
        }
        Self { max_connections: self.max_connections.min(share), ..self }
    }
}

fn open_files_limit() -> Option<u64> {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).ok().map(|(soft, _)| soft)
}

/// One open connection: whether a request is inside the router, and how to close it.
#[derive(Default)]
struct Conn {
    requests: AtomicUsize,
    close: Notify,
}

/// The open connections, oldest first.
struct Table {
    max: usize,
    next: AtomicU64,
    open: Mutex<BTreeMap<u64, Arc<Conn>>>,
}

impl Table {
    fn new(max: usize) -> Self {
        Self { max, next: AtomicU64::new(0), open: Mutex::new(BTreeMap::new()) }
    }

    /// Makes room for one more connection by closing the oldest one that is
    /// not inside a request; `None` when every open connection is.
    fn admit(&self) -> Option<(u64, Arc<Conn>)> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.len() >= self.max {
            let oldest_idle = open.iter().find(|(_, c)| c.requests.load(Ordering::Acquire) == 0).map(|(id, _)| *id)?;
            if let Some(c) = open.remove(&oldest_idle) {
                debug!(connection = oldest_idle, "connection limit reached: closing the oldest idle connection");
                c.close.notify_one();
            }
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn::default());
        open.insert(id, conn.clone());
        Some((id, conn))
    }

    fn leave(&self, id: u64) {
        self.open.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
    }
}

/// Takes a connection out of the table when its task ends, however it ends.
struct Leave(Arc<Table>, u64);

impl Drop for Leave {
    fn drop(&mut self) {
        self.0.leave(self.1);
    }
}

/// Marks a connection as inside a request while the router handles it.
struct InRequest(Arc<Conn>);

impl InRequest {
    fn enter(conn: &Arc<Conn>) -> Self {
        conn.requests.fetch_add(1, Ordering::AcqRel);
        Self(conn.clone())
    }
}

impl Drop for InRequest {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A request body that fails once `body_read` has passed, so a client that
/// sends its body slowly cannot hold its connection; the handler answers 400.
struct Deadline {
    inner: Incoming,
    limit: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {}", crate::duration::format(*.0))]
struct BodyTimeout(Duration);

impl Deadline {
    fn new(inner: Incoming, limit: Duration) -> Self {
        Self { inner, limit, sleep: Box::pin(tokio::time::sleep(limit)) }
    }
}

impl Body for Deadline {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyTimeout(self.limit).into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `router` on `listener` until `stop` completes; then stops
/// accepting, lets requests in flight finish (for a few seconds at most)
/// and closes the rest.
pub async fn serve(listener: TcpListener, router: Router, limits: Limits, stop: impl Future<Output = ()>) {
    let table = Arc::new(Table::new(limits.max_connections));
    let (stopping, stopped) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut stop => break,
        };
        while tasks.try_join_next().is_some() {}
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, most likely: wait rather than spin.
                warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some((id, conn)) = table.admit() else {
            warn!(max_connections = limits.max_connections, "every connection is inside a request: a new one is closed");
            continue;
        };
        let leave = Leave(table.clone(), id);
        tasks.spawn(connection(stream, router.clone(), limits, conn, leave, stopped.clone()));
        // The new connection reads its head before the next accept can make it
        // the oldest idle one: without this, a burst of accepts (tokio lets a
        // task accept up to 128 before it yields) closes it unread.
        tokio::task::yield_now().await;
    }
    drop(listener);
    let _ = stopping.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        warn!(open = tasks.len(), "connections still open after the shutdown grace: closed");
    }
}

/// One connection, until it ends, is closed for a newcomer, or the server stops.
async fn connection(stream: TcpStream, router: Router, limits: Limits, conn: Arc<Conn>, _leave: Leave, mut stopped: watch::Receiver<bool>) {
    let inside = conn.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let guard = InRequest::enter(&inside);
        let call = router.clone().oneshot(req.map(|body| Deadline::new(body, limits.body_read)));
        async move {
            let response = call.await;
            drop(guard);
            response
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read);
    let served = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(served);
    tokio::select! {
        r = served.as_mut() => {
            if let Err(e) = r {
                debug!(error = %e, "connection ended");
            }
        }
        () = conn.close.notified() => {}
        () = async { let _ = stopped.wait_for(|s| *s).await; } => {
            served.as_mut().graceful_shutdown();
            let _ = served.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_table_closes_its_oldest_idle_connection_and_never_a_busy_one() {
        let table = Table::new(2);
        let (a, conn_a) = table.admit().unwrap_or_else(|| panic!("room"));
        let (_b, conn_b) = table.admit().unwrap_or_else(|| panic!("room"));
        let busy_a = InRequest::enter(&conn_a);
        // a is inside a request: b, the oldest idle one, makes room.
        let (_c, conn_c) = table.admit().unwrap_or_else(|| panic!("b makes room"));
        let ids: Vec<u64> = table.open.lock().unwrap_or_else(PoisonError::into_inner).keys().copied().collect();
        assert_eq!(ids, vec![a, 2]);
        let _busy_c = InRequest::enter(&conn_c);
        assert!(table.admit().is_none(), "both open connections are inside requests");
        drop(busy_a);
        assert!(table.admit().is_some(), "a's request ended: a makes room");
        // b was told to close (its permit is stored until its task looks).
        let told = futures::FutureExt::now_or_never(conn_b.close.notified());
        assert_eq!(told, Some(()));
    }

    #[test]
    fn the_connection_limit_leaves_half_the_file_descriptors() {
        let limits = Limits::default();
        assert_eq!(limits.within(Some(128)).max_connections, 64);
        assert_eq!(limits.within(Some(1_048_576)).max_connections, MAX_CONNECTIONS);
        assert_eq!(limits.within(None).max_connections, MAX_CONNECTIONS);
    }
}
