//! What a stopping process still owes the connections it accepted. When pingora's
//! listeners stop (SIGTERM, or the old process of an upgrade), its proxy at once drops
//! every connection still waiting for a request: idle keep-alive ones, which is the
//! point, but also one accepted an instant earlier whose request is still on the wire,
//! which then gets no answer at all. This wrapper holds that drop back for
//! [`FIRST_REQUEST_GRACE`], so such a request is read and answered like any other.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;

/// How long after the listeners stop a connection may still deliver its request. Well
/// inside the 5 s grace period, so in-flight requests keep the rest of it, and long
/// against a client's round trip. Idle connections are closed when it ends, as before.
pub const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(2);

/// A service's app, with its clean-up (the drop of waiting connections) delayed.
pub struct AnswerAccepted<A> {
    inner: Arc<A>,
}

impl<A> AnswerAccepted<A> {
    /// Wraps `inner`, delaying its clean-up by [`FIRST_REQUEST_GRACE`].
    pub fn new(inner: A) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for AnswerAccepted<A> {
    async fn process_new(
        self: &Arc<Self>,
        session: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        self.inner.process_new(session, shutdown).await
    }

    /// Called once the listeners have stopped: nobody new can connect, so waiting here
    /// only gives the connections already accepted time to speak.
    async fn cleanup(&self) {
        tokio::time::sleep(FIRST_REQUEST_GRACE).await;
        self.inner.cleanup().await;
    }
}
