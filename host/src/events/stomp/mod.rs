//! STOMP 1.2 over WebSocket, the transport of event processing: Mastermind's RabbitMQ
//! (Web-STOMP) delivers one MESSAGE per event on the queue of an (offering, object type).
//!
//! [`StompClient::start`] returns at once; a background task connects, subscribes, delivers
//! [`StompEvent`]s and reconnects with [`Backoff`] whenever the connection fails, so a broker
//! that is down at start never blocks the agent (the reference blocks start-up until it
//! connects, reference §9.4). What goes over the wire:
//!
//! - a WebSocket to `url` (`ws://` or `wss://` through rustls), STOMP frames as text messages,
//!   no sub-protocol header (as the reference);
//! - `STOMP` (not `CONNECT`) with `accept-version:1.2`, `heart-beat`, `host` (the vhost),
//!   `login` and `passcode`; then `SUBSCRIBE` with `ack:client-individual`, the RabbitMQ
//!   `prefetch-count` and a receipt. [`StompEvent::Connected`] follows the RECEIPT (or the
//!   first MESSAGE), so a queue that does not exist is a [`StompEvent::Disconnected`], not a
//!   flapping Connected;
//! - each MESSAGE is a [`Delivery`]; [`Delivery::ack`] / [`Delivery::nack`] send ACK / NACK on
//!   the connection that delivered it, and nothing when that connection is gone (the broker
//!   redelivers what was not acknowledged). Unacknowledged deliveries are bounded by
//!   `prefetch`;
//! - heart-beats both ways: an EOL when nothing was sent for the negotiated interval, and the
//!   connection counts as dead when nothing arrived for twice the broker's interval plus a
//!   second;
//! - an ERROR frame (access refused, no such queue, ...) ends the connection with the broker's
//!   message as the one-line reason; then backoff and retry;
//! - [`StompClient::close`] (or drop) sends DISCONNECT, waits briefly for its RECEIPT and
//!   stops reconnecting.
//!
//! The passcode (the agent's Waldur API token) never appears in logs or `Debug` output.
//!
//! Why our own frame codec ([`frame`]): the STOMP crates on crates.io (checked 2026-12 with
//! `cargo info`) either own the TCP connection and cannot run over a WebSocket
//! (`tokio-stomp` 0.4, `tokio-stomp-2` 0.3, `stomp` 0.11 on mio 0.3, `stomp-rs` 0.0.8),
//! are EUPL-licensed (`async-stomp` 0.7), or are a nom-based parser without encoding of
//! the escapes we need (`stomp-parser` 0.8). STOMP 1.2 framing is small; the codec here
//! is fuzzed by property tests.

mod backoff;
mod client;
pub mod frame;

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use backoff::Backoff;
pub use client::StompClient;

/// What the client connects to and subscribes.
#[derive(Clone)]
pub struct StompOptions {
    /// `ws://host:port/path` or `wss://...`.
    pub url: String,
    /// The STOMP `host` header: the RabbitMQ vhost.
    pub vhost: String,
    pub login: String,
    /// Never logged.
    pub passcode: String,
    /// e.g. `/amq/queue/<name>` (the queue must exist; the client never declares it).
    pub destination: String,
    pub subscription_id: String,
    /// Heart-beat interval asked for in both directions (the reference uses 10 s); zero
    /// disables heart-beats.
    pub heartbeat: Duration,
    /// Reconnect backoff.
    pub backoff: Backoff,
    /// RabbitMQ's `prefetch-count` on SUBSCRIBE: the most deliveries unacknowledged at once.
    pub prefetch: u16,
    /// Names the subscription in log lines, e.g. "offering X order".
    pub label: String,
}

impl fmt::Debug for StompOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StompOptions")
            .field("url", &self.url)
            .field("vhost", &self.vhost)
            .field("login", &self.login)
            .field("passcode", &"<redacted>")
            .field("destination", &self.destination)
            .field("subscription_id", &self.subscription_id)
            .field("heartbeat", &self.heartbeat)
            .field("backoff", &self.backoff)
            .field("prefetch", &self.prefetch)
            .field("label", &self.label)
            .finish()
    }
}

/// What the client reports, in order.
#[derive(Debug)]
pub enum StompEvent {
    /// Connected and subscribed; `reconnected` is false the first time only (after a
    /// reconnect the offering is reconciled, since events may have been missed).
    Connected {
        reconnected: bool,
    },
    /// A connection attempt failed or a connection ended; the client retries by itself.
    /// `reason` is one line.
    Disconnected {
        reason: String,
    },
    Message(Delivery),
}

/// How a delivery was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    Acked,
    Nacked,
}

/// One MESSAGE. Acknowledge it once its handler finished ([`Delivery::ack`]), or give it back
/// ([`Delivery::nack`]); the first of the two counts, later calls do nothing.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub destination: String,
    pub message_id: String,
    /// Every header of the MESSAGE frame, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    ack: AckHandle,
}

/// Acknowledgement requests to the connection that delivered a message.
#[derive(Debug)]
pub(crate) enum Control {
    Ack(String),
    Nack(String),
}

#[derive(Debug, Clone)]
struct AckHandle {
    /// The MESSAGE's `ack` header (its `message-id` when absent).
    id: String,
    /// `None` for a detached delivery.
    link: Option<tokio::sync::mpsc::UnboundedSender<Control>>,
    /// 0: unsettled, 1: acked, 2: nacked; shared by clones.
    state: Arc<AtomicU8>,
}

impl Delivery {
    pub(crate) fn received(
        frame: frame::Frame,
        link: tokio::sync::mpsc::UnboundedSender<Control>,
    ) -> Delivery {
        let destination = frame.get("destination").unwrap_or_default().to_string();
        let message_id = frame.get("message-id").unwrap_or_default().to_string();
        let id = frame.get("ack").unwrap_or(&message_id).to_string();
        Delivery {
            destination,
            message_id,
            headers: frame.headers,
            body: frame.body,
            ack: AckHandle {
                id,
                link: Some(link),
                state: Arc::default(),
            },
        }
    }

    /// A delivery that belongs to no connection (for tests of handlers): `ack` and `nack`
    /// only record the settlement.
    pub fn detached(
        destination: impl Into<String>,
        message_id: impl Into<String>,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Delivery {
        let message_id = message_id.into();
        Delivery {
            destination: destination.into(),
            ack: AckHandle {
                id: message_id.clone(),
                link: None,
                state: Arc::default(),
            },
            message_id,
            headers,
            body,
        }
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the broker says it delivered this message before (`redelivered:true`).
    pub fn redelivered(&self) -> bool {
        self.header("redelivered") == Some("true")
    }

    /// Sends ACK on the connection that delivered the message; nothing if that connection is
    /// gone (the broker then redelivers it) or if it was settled already.
    pub fn ack(&self) {
        self.settle(Settlement::Acked, Control::Ack);
    }

    /// Sends NACK (the broker requeues the message); same rules as [`Delivery::ack`].
    pub fn nack(&self) {
        self.settle(Settlement::Nacked, Control::Nack);
    }

    /// How it was settled, if it was.
    pub fn settled(&self) -> Option<Settlement> {
        match self.ack.state.load(Ordering::Acquire) {
            1 => Some(Settlement::Acked),
            2 => Some(Settlement::Nacked),
            _ => None,
        }
    }

    fn settle(&self, how: Settlement, control: fn(String) -> Control) {
        let code = match how {
            Settlement::Acked => 1,
            Settlement::Nacked => 2,
        };
        // A second ACK of one delivery tag is a channel error in RabbitMQ: settle once.
        if self
            .ack
            .state
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        if let Some(link) = &self.ack.link {
            // Fails only when the connection ended: the broker redelivers.
            let _ = link.send(control(self.ack.id.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_is_settled_once_and_acks_on_its_own_connection() {
        let (link, mut acks) = tokio::sync::mpsc::unbounded_channel();
        let frame = frame::Frame::new(frame::Command::Message)
            .header("destination", "/amq/queue/q")
            .header("message-id", "m-1")
            .header("ack", "a-1");
        let delivery = Delivery::received(frame, link);
        let copy = delivery.clone();
        delivery.ack();
        copy.nack();
        delivery.ack();
        assert_eq!(copy.settled(), Some(Settlement::Acked));
        assert!(matches!(acks.try_recv(), Ok(Control::Ack(id)) if id == "a-1"));
        assert!(acks.try_recv().is_err(), "settled once");
    }

    #[test]
    fn acking_after_the_connection_ended_does_nothing() {
        let (link, acks) = tokio::sync::mpsc::unbounded_channel();
        let delivery = Delivery::received(
            frame::Frame::new(frame::Command::Message).header("message-id", "m"),
            link,
        );
        drop(acks);
        delivery.nack();
        assert_eq!(delivery.settled(), Some(Settlement::Nacked));
        let detached = Delivery::detached("/queue/x", "m", vec![], b"{}".to_vec());
        detached.ack();
        assert_eq!(detached.settled(), Some(Settlement::Acked));
    }

    #[test]
    fn options_debug_hides_the_passcode() {
        let options = StompOptions {
            url: "ws://127.0.0.1:15674/ws".into(),
            vhost: "v".into(),
            login: "l".into(),
            passcode: "token-123".into(),
            destination: "/amq/queue/q".into(),
            subscription_id: "s".into(),
            heartbeat: Duration::from_secs(10),
            backoff: Backoff::default(),
            prefetch: 8,
            label: "x".into(),
        };
        assert!(!format!("{options:?}").contains("token-123"));
    }
}
