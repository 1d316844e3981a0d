//! The embedded message queue between `order` and `notification`: a bounded in-process
//! channel of messages that carry string headers, as Kafka or NATS messages do, so trace
//! context crosses it the way it would cross a real broker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::mpsc;

/// The `messaging.system` of the embedded queue.
pub const QUEUE_SYSTEM: &str = "faultline-demo-queue";

/// One message.
#[derive(Clone, Debug)]
pub struct QueueMessage {
    /// Unique within the queue.
    pub id: u64,
    /// E.g. `order.created`.
    pub topic: String,
    /// Headers, including the trace context.
    pub headers: HashMap<String, String>,
    /// The body.
    pub payload: Vec<u8>,
    /// When it was published.
    pub published_at: SystemTime,
}

/// Why a message was not queued.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueueError {
    /// The queue holds `capacity` messages already (the consumer is stalled or slow).
    #[error("queue full ({0} messages waiting)")]
    Full(usize),
    /// The consumer is gone.
    #[error("queue closed")]
    Closed,
}

/// The publishing side; cheap to clone.
#[derive(Clone, Debug)]
pub struct QueueSender {
    tx: mpsc::Sender<QueueMessage>,
    depth: Arc<AtomicUsize>,
    next_id: Arc<AtomicU64>,
}

/// The consuming side.
#[derive(Debug)]
pub struct QueueReceiver {
    rx: mpsc::Receiver<QueueMessage>,
    depth: Arc<AtomicUsize>,
}

/// A queue holding at most `capacity` messages.
pub fn queue(capacity: usize) -> (QueueSender, QueueReceiver) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let depth = Arc::new(AtomicUsize::new(0));
    (
        QueueSender {
            tx,
            depth: Arc::clone(&depth),
            next_id: Arc::new(AtomicU64::new(1)),
        },
        QueueReceiver { rx, depth },
    )
}

impl QueueSender {
    /// Queues a message without waiting; a full queue refuses it.
    pub fn publish(
        &self,
        topic: &str,
        headers: HashMap<String, String>,
        payload: Vec<u8>,
    ) -> Result<u64, QueueError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let message = QueueMessage {
            id,
            topic: topic.to_owned(),
            headers,
            payload,
            published_at: SystemTime::now(),
        };
        match self.tx.try_send(message) {
            Ok(()) => {
                self.depth.fetch_add(1, Ordering::Relaxed);
                Ok(id)
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                Err(QueueError::Full(self.depth.load(Ordering::Relaxed)))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(QueueError::Closed),
        }
    }

    /// Messages waiting.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }
}

impl QueueReceiver {
    /// The next message; `None` once every sender is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<QueueMessage> {
        let message = self.rx.recv().await?;
        self.depth.fetch_sub(1, Ordering::Relaxed);
        Some(message)
    }

    /// Messages waiting.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delivers_in_order_and_refuses_when_full() {
        let (tx, mut rx) = queue(2);
        let headers = HashMap::from([("traceparent".to_owned(), "x".to_owned())]);
        assert_eq!(tx.publish("t", headers.clone(), b"1".to_vec()), Ok(1));
        assert_eq!(tx.publish("t", HashMap::new(), b"2".to_vec()), Ok(2));
        assert_eq!(
            tx.publish("t", HashMap::new(), b"3".to_vec()),
            Err(QueueError::Full(2))
        );
        assert_eq!(tx.depth(), 2);
        let first = rx.recv().await.expect("message");
        assert_eq!(first.payload, b"1");
        assert_eq!(first.headers, headers);
        assert_eq!(rx.depth(), 1);
        drop(tx);
        assert!(rx.recv().await.is_some());
        assert!(rx.recv().await.is_none());
    }
}
