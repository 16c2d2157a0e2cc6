//! Event processing (reference `event_process`): Mastermind publishes a message per change
//! to a queue per (offering, object type); the agent handles each with the polling modes'
//! algorithms.
//!
//! - [`message`]: the messages and their parsing (malformed ones refused in one line);
//! - [`schedule`]: events of one object in arrival order, different objects concurrently;
//! - [`handlers`]: what each event does, on the offering's sessions;
//! - [`stomp`]: the transport; [`subscriptions`]: which queues, with which credentials;
//! - [`offering`]: one offering from start-up to shutdown; [`mode`]: all of them;
//! - [`targets`]: the queues a plugin asks the agent to read for it.

pub mod handlers;
pub mod message;
pub mod mode;
pub mod offering;
pub mod schedule;
pub mod stomp;
pub mod subscriptions;
pub mod targets;
