//! The background task behind [`StompClient`]: one connection at a time, reconnecting with
//! backoff until the client is closed or its event receiver is dropped.

use std::collections::VecDeque;
use std::time::Duration;
use tracing::Instrument;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep, sleep_until, timeout, Instant};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::frame::{Command, Decoded, Decoder, Frame, HEARTBEAT};
use super::{Control, Delivery, StompEvent, StompOptions};

/// Opening the WebSocket (TCP, TLS, upgrade).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// From the STOMP frame to CONNECTED, and from SUBSCRIBE to its RECEIPT.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// One WebSocket write.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Waiting for the RECEIPT of DISCONNECT when closing.
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// `close()` waits this long for the task, then aborts it.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Slack on top of twice the broker's heart-beat interval before the connection is dead.
const HEARTBEAT_MARGIN: Duration = Duration::from_secs(1);

const SUBSCRIBE_RECEIPT: &str = "subscribe";
const DISCONNECT_RECEIPT: &str = "disconnect";

/// Handle of a STOMP subscription running in the background. Dropping it (or
/// [`StompClient::close`]) disconnects and stops reconnecting.
#[derive(Debug)]
pub struct StompClient {
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl StompClient {
    /// Returns at once; connecting, subscribing and reconnecting happen in a background
    /// tokio task (so this must be called inside a tokio runtime) that never blocks the
    /// caller: the broker may be down at start.
    pub fn start(options: StompOptions) -> (StompClient, mpsc::Receiver<StompEvent>) {
        // Unacknowledged deliveries are bounded by prefetch; the task never blocks on a full
        // channel anyway (it keeps its own queue and keeps heart-beating).
        let (events, receiver) = mpsc::channel(usize::from(options.prefetch.max(1)) + 8);
        let (shutdown, shutdown_rx) = watch::channel(false);
        // In the offering's span: its connection lines say which offering they are about.
        let task = tokio::spawn(run(options, events, shutdown_rx).in_current_span());
        (
            StompClient {
                shutdown,
                task: Some(task),
            },
            receiver,
        )
    }

    /// Sends DISCONNECT (with a receipt, bounded wait) and stops reconnecting.
    pub async fn close(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(mut task) = self.task.take() {
            if timeout(CLOSE_TIMEOUT, &mut task).await.is_err() {
                task.abort();
            }
        }
    }
}

impl Drop for StompClient {
    fn drop(&mut self) {
        // The task notices, disconnects and ends by itself.
        let _ = self.shutdown.send(true);
    }
}

/// Resolves when the client is closed or dropped.
async fn closed(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// How a connection ended.
enum Ended {
    /// Closed on purpose, or nobody listens to the events any more: stop.
    Stop,
    /// Failed or lost; `subscribed` when it got as far as a live subscription.
    Lost { reason: String, subscribed: bool },
}

fn lost(reason: impl Into<String>, subscribed: bool) -> Ended {
    Ended::Lost {
        reason: one_line(&reason.into()),
        subscribed,
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

async fn run(
    options: StompOptions,
    events: mpsc::Sender<StompEvent>,
    mut shutdown: watch::Receiver<bool>,
) {
    let label = options.label.as_str();
    let mut failures: u32 = 0;
    let mut connected_before = false;
    loop {
        let (reason, subscribed) =
            match session(&options, &events, &mut shutdown, &mut connected_before).await {
                Ended::Stop => {
                    tracing::debug!("STOMP {label}: stopped");
                    return;
                }
                Ended::Lost { reason, subscribed } => (reason, subscribed),
            };
        if subscribed {
            failures = 0;
        }
        let wait = options.backoff.delay(failures);
        failures = failures.saturating_add(1);
        tracing::warn!(
            attempt = failures,
            wait_ms = wait.as_millis() as u64,
            "STOMP {label}: {reason}; reconnecting"
        );
        let event = StompEvent::Disconnected { reason };
        tokio::select! {
            sent = events.send(event) => if sent.is_err() { return },
            () = closed(&mut shutdown) => return,
        }
        tokio::select! {
            () = sleep(wait) => {}
            () = closed(&mut shutdown) => return,
        }
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One WebSocket carrying STOMP frames.
struct Link {
    sink: futures_util::stream::SplitSink<Socket, WsMessage>,
    stream: futures_util::stream::SplitStream<Socket>,
    decoder: Decoder,
    last_received: Instant,
    last_sent: Instant,
}

impl Link {
    fn new(socket: Socket) -> Link {
        let (sink, stream) = socket.split();
        let now = Instant::now();
        Link {
            sink,
            stream,
            decoder: Decoder::new(),
            last_received: now,
            last_sent: now,
        }
    }

    async fn send_bytes(&mut self, bytes: Vec<u8>) -> Result<(), String> {
        // Text messages, as the reference sends them; binary only for a non-UTF-8 body.
        let message = match String::from_utf8(bytes) {
            Ok(text) => WsMessage::text(text),
            Err(e) => WsMessage::binary(e.into_bytes()),
        };
        match timeout(WRITE_TIMEOUT, self.sink.send(message)).await {
            Ok(Ok(())) => {
                self.last_sent = Instant::now();
                Ok(())
            }
            Ok(Err(e)) => Err(format!("WebSocket write failed: {e}")),
            Err(_) => Err(format!(
                "WebSocket write did not finish within {} s",
                WRITE_TIMEOUT.as_secs()
            )),
        }
    }

    async fn send(&mut self, frame: &Frame) -> Result<(), String> {
        tracing::trace!(?frame, "STOMP send");
        let bytes = frame.encode().map_err(|e| e.to_string())?;
        self.send_bytes(bytes).await
    }

    /// The next frame or heart-beat. Cancel-safe: bytes already read stay in the decoder.
    async fn recv(&mut self) -> Result<Decoded, String> {
        loop {
            match self.decoder.next_unit() {
                Ok(Some(unit)) => return Ok(unit),
                Ok(None) => {}
                Err(e) => return Err(format!("broker sent something that is not STOMP: {e}")),
            }
            let message = match self.stream.next().await {
                Some(Ok(message)) => message,
                Some(Err(e)) => return Err(format!("WebSocket read failed: {e}")),
                None => return Err("the broker closed the WebSocket".to_string()),
            };
            self.last_received = Instant::now();
            match message {
                WsMessage::Text(text) => self.decoder.push(text.as_bytes()),
                WsMessage::Binary(bytes) => self.decoder.push(&bytes),
                WsMessage::Close(close) => {
                    let why = close
                        .map(|c| format!(" ({} {})", u16::from(c.code), c.reason))
                        .unwrap_or_default();
                    return Err(format!("the broker closed the WebSocket{why}"));
                }
                // Pings are answered by tungstenite; they still show the link is alive.
                WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) => {}
            }
        }
    }
}

/// The broker's ERROR frame as one line: its `message` header and the body's text.
fn error_reason(frame: &Frame) -> String {
    let message = frame.get("message").unwrap_or("").trim();
    let body = String::from_utf8_lossy(&frame.body);
    let body = one_line(&body);
    match (message.is_empty(), body.is_empty()) {
        (true, true) => "broker ERROR".to_string(),
        (false, true) => format!("broker ERROR: {message}"),
        (true, false) => format!("broker ERROR: {body}"),
        (false, false) => format!("broker ERROR: {message}: {body}"),
    }
}

/// Negotiated heart-beats (STOMP 1.2 §Heart-beating): how often we must send, and how often
/// the broker promised to send; `None` when that direction is off.
fn negotiate(ours: Duration, connected: &Frame) -> (Option<Duration>, Option<Duration>) {
    let ours = ours.as_millis() as u64;
    let (server_sends, server_wants) = connected
        .get("heart-beat")
        .and_then(|v| v.split_once(','))
        .and_then(|(x, y)| Some((x.trim().parse::<u64>().ok()?, y.trim().parse::<u64>().ok()?)))
        .unwrap_or((0, 0));
    let pick = |a: u64, b: u64| (a != 0 && b != 0).then(|| Duration::from_millis(a.max(b)));
    (pick(ours, server_wants), pick(ours, server_sends))
}

/// Sends `event` unless the client is closing or the receiver is gone.
async fn deliver(
    events: &mpsc::Sender<StompEvent>,
    shutdown: &mut watch::Receiver<bool>,
    event: StompEvent,
) -> bool {
    tokio::select! {
        sent = events.send(event) => sent.is_ok(),
        () = closed(shutdown) => false,
    }
}

/// Before the connection is dropped: events other than messages still go out (messages of a
/// dead connection cannot be acknowledged; the broker redelivers them).
async fn flush_pending(
    label: &str,
    pending: &mut VecDeque<StompEvent>,
    events: &mpsc::Sender<StompEvent>,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let mut dropped = 0;
    for event in pending.drain(..) {
        if matches!(event, StompEvent::Message(_)) {
            dropped += 1;
        } else if !deliver(events, shutdown, event).await {
            return false;
        }
    }
    if dropped > 0 {
        tracing::debug!(
            "STOMP {label}: {dropped} undelivered message(s) dropped; the broker redelivers them"
        );
    }
    true
}

fn settle_frame(request: Control) -> Frame {
    match request {
        Control::Ack(id) => Frame::new(Command::Ack).header("id", id),
        Control::Nack(id) => Frame::new(Command::Nack).header("id", id),
    }
}

/// The ACKs and NACKs asked for so far, then DISCONNECT with a receipt, a bounded wait for
/// it, and the WebSocket close.
async fn disconnect(link: &mut Link, controls: &mut mpsc::UnboundedReceiver<Control>, label: &str) {
    while let Ok(request) = controls.try_recv() {
        if link.send(&settle_frame(request)).await.is_err() {
            break;
        }
    }
    let frame = Frame::new(Command::Disconnect).header("receipt", DISCONNECT_RECEIPT);
    if link.send(&frame).await.is_ok() {
        let receipt = async {
            loop {
                match link.recv().await {
                    Ok(Decoded::Frame(f))
                        if f.command == Command::Receipt
                            && f.get("receipt-id") == Some(DISCONNECT_RECEIPT) =>
                    {
                        return true
                    }
                    Ok(_) => {}
                    Err(_) => return false,
                }
            }
        };
        match timeout(DISCONNECT_TIMEOUT, receipt).await {
            Ok(true) => tracing::debug!("STOMP {label}: disconnected"),
            // RabbitMQ's Web-STOMP may close before the RECEIPT goes out.
            Ok(false) => tracing::debug!("STOMP {label}: disconnected (closed without a RECEIPT)"),
            Err(_) => tracing::debug!("STOMP {label}: no RECEIPT for DISCONNECT; closing anyway"),
        }
    }
    let _ = timeout(DISCONNECT_TIMEOUT, link.sink.close()).await;
}

/// Connects, subscribes and serves one connection until it ends.
async fn session(
    options: &StompOptions,
    events: &mpsc::Sender<StompEvent>,
    shutdown: &mut watch::Receiver<bool>,
    connected_before: &mut bool,
) -> Ended {
    let label = options.label.as_str();
    let url = options.url.as_str();
    tracing::debug!(
        "STOMP {label}: connecting to {url} (vhost {}, login {})",
        options.vhost,
        options.login
    );
    let socket = tokio::select! {
        opened = timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(url)) => match opened {
            Ok(Ok((socket, _response))) => socket,
            Ok(Err(e)) => return lost(format!("cannot open WebSocket {url}: {e}"), false),
            Err(_) => return lost(format!("WebSocket {url} did not open within {} s", CONNECT_TIMEOUT.as_secs()), false),
        },
        () = closed(shutdown) => return Ended::Stop,
    };
    let mut link = Link::new(socket);

    // ---- STOMP / CONNECTED
    let beat = options.heartbeat.as_millis().to_string();
    let connect = Frame::new(Command::Stomp)
        .header("accept-version", "1.2")
        .header("heart-beat", format!("{beat},{beat}"))
        .header("host", options.vhost.as_str())
        .header("login", options.login.as_str())
        .header("passcode", options.passcode.as_str());
    let handshake = async {
        link.send(&connect).await?;
        loop {
            match link.recv().await? {
                Decoded::Frame(f) if f.command == Command::Connected => return Ok(f),
                Decoded::Frame(f) if f.command == Command::Error => return Err(error_reason(&f)),
                Decoded::Frame(f) => {
                    return Err(format!("broker answered STOMP with {}", f.command))
                }
                Decoded::Heartbeat => {}
            }
        }
    };
    let connected = tokio::select! {
        answer = timeout(HANDSHAKE_TIMEOUT, handshake) => match answer {
            Ok(Ok(frame)) => frame,
            Ok(Err(reason)) => return lost(reason, false),
            Err(_) => return lost(format!("no CONNECTED within {} s", HANDSHAKE_TIMEOUT.as_secs()), false),
        },
        () = closed(shutdown) => {
            let _ = timeout(DISCONNECT_TIMEOUT, link.sink.close()).await;
            return Ended::Stop;
        }
    };
    let (send_every, broker_every) = negotiate(options.heartbeat, &connected);
    let dead_after = broker_every.map(|every| every * 2 + HEARTBEAT_MARGIN);
    tracing::debug!(
        "STOMP {label}: CONNECTED ({}), heart-beats: send {send_every:?}, expect {broker_every:?}",
        connected.get("server").unwrap_or("unknown server")
    );

    // ---- SUBSCRIBE
    let subscribe = Frame::new(Command::Subscribe)
        .header("id", options.subscription_id.as_str())
        .header("destination", options.destination.as_str())
        .header("ack", "client-individual")
        .header("prefetch-count", options.prefetch.max(1).to_string())
        .header("receipt", SUBSCRIBE_RECEIPT);
    if let Err(reason) = link.send(&subscribe).await {
        return lost(reason, false);
    }
    let subscribe_deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let mut subscribed = false;

    let (control, mut controls) = mpsc::unbounded_channel::<Control>();
    let mut pending: VecDeque<StompEvent> = VecDeque::new();
    let far = Duration::from_secs(86_400 * 365);

    let reason = loop {
        let beat_at = send_every.map_or(Instant::now() + far, |every| link.last_sent + every);
        let dead_at = dead_after.map_or(Instant::now() + far, |after| link.last_received + after);
        tokio::select! {
            unit = link.recv() => {
                let frame = match unit {
                    Ok(Decoded::Heartbeat) => continue,
                    Ok(Decoded::Frame(frame)) => frame,
                    // RabbitMQ's Web-STOMP may close before its ERROR frame for a refused
                    // SUBSCRIBE goes out: say what was being done.
                    Err(reason) if !subscribed => break format!(
                        "{reason} in answer to SUBSCRIBE {} (no such queue, or no permission to read it?)",
                        options.destination
                    ),
                    Err(reason) => break reason,
                };
                tracing::trace!(?frame, "STOMP received");
                match frame.command {
                    Command::Message => {
                        if !subscribed {
                            subscribed = true;
                            pending.push_back(StompEvent::Connected { reconnected: *connected_before });
                            *connected_before = true;
                        }
                        pending.push_back(StompEvent::Message(Delivery::received(frame, control.clone())));
                    }
                    Command::Receipt if frame.get("receipt-id") == Some(SUBSCRIBE_RECEIPT) => {
                        if !subscribed {
                            subscribed = true;
                            pending.push_back(StompEvent::Connected { reconnected: *connected_before });
                            *connected_before = true;
                        }
                        tracing::info!(
                            "STOMP {label}: subscribed to {} at {url} (vhost {})",
                            options.destination, options.vhost
                        );
                    }
                    Command::Error => break error_reason(&frame),
                    other => tracing::debug!("STOMP {label}: ignoring a {other} frame"),
                }
            }
            Some(request) = controls.recv() => {
                if let Err(reason) = link.send(&settle_frame(request)).await {
                    break reason;
                }
            }
            permit = events.reserve(), if !pending.is_empty() => match permit {
                Ok(permit) => permit.send(pending.pop_front().expect("not empty")),
                Err(_) => {
                    // Nobody listens any more.
                    disconnect(&mut link, &mut controls, label).await;
                    return Ended::Stop;
                }
            },
            () = sleep_until(beat_at), if send_every.is_some() => {
                if link.last_sent + send_every.unwrap_or(far) <= Instant::now() {
                    if let Err(reason) = link.send_bytes(HEARTBEAT.to_vec()).await {
                        break reason;
                    }
                }
            }
            () = sleep_until(dead_at), if dead_after.is_some() => {
                if link.last_received + dead_after.unwrap_or(far) <= Instant::now() {
                    break format!(
                        "nothing from the broker for {} ms (heart-beat every {} ms promised)",
                        dead_after.unwrap_or_default().as_millis(),
                        broker_every.unwrap_or_default().as_millis()
                    );
                }
            }
            () = sleep_until(subscribe_deadline), if !subscribed => {
                break format!("no RECEIPT for SUBSCRIBE within {} s", HANDSHAKE_TIMEOUT.as_secs());
            }
            () = closed(shutdown) => {
                disconnect(&mut link, &mut controls, label).await;
                return Ended::Stop;
            }
        }
    };
    if !flush_pending(label, &mut pending, events, shutdown).await {
        return Ended::Stop;
    }
    lost(reason, subscribed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::stomp::Backoff;
    use tokio::net::TcpListener;

    fn options(url: String) -> StompOptions {
        StompOptions {
            url,
            vhost: "vh".into(),
            login: "agent".into(),
            passcode: "token".into(),
            destination: "/amq/queue/q".into(),
            subscription_id: "sub-1".into(),
            heartbeat: Duration::from_secs(10),
            backoff: Backoff {
                initial: Duration::from_millis(50),
                max: Duration::from_millis(200),
            },
            prefetch: 4,
            label: "unit".into(),
        }
    }

    /// A WebSocket server on a free port: `serve` gets each accepted connection.
    async fn fake_broker<F, Fut>(serve: F) -> String
    where
        F: Fn(tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/ws", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                    tokio::spawn(serve(ws));
                }
            }
        });
        url
    }

    async fn read_frame(
        ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    ) -> Option<Frame> {
        let mut decoder = Decoder::new();
        loop {
            if let Some(Decoded::Frame(frame)) = decoder.next_unit().unwrap() {
                return Some(frame);
            }
            match ws.next().await? {
                Ok(WsMessage::Text(text)) => decoder.push(text.as_bytes()),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    async fn send_frame(
        ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
        frame: Frame,
    ) {
        let text = String::from_utf8(frame.encode().unwrap()).unwrap();
        let _ = ws.send(WsMessage::text(text)).await;
    }

    async fn event(events: &mut mpsc::Receiver<StompEvent>) -> StompEvent {
        timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("an event in time")
            .expect("channel open")
    }

    #[tokio::test]
    async fn speaks_the_reference_wire_protocol() {
        let (seen_tx, mut seen) = mpsc::unbounded_channel::<Vec<u8>>();
        let url = fake_broker(move |mut ws| {
            let seen = seen_tx.clone();
            async move {
                let first = read_frame(&mut ws).await.unwrap();
                seen.send(first.encode().unwrap()).unwrap();
                send_frame(
                    &mut ws,
                    Frame::new(Command::Connected)
                        .header("version", "1.2")
                        .header("heart-beat", "0,0"),
                )
                .await;
                let subscribe = read_frame(&mut ws).await.unwrap();
                seen.send(subscribe.encode().unwrap()).unwrap();
                send_frame(
                    &mut ws,
                    Frame::new(Command::Receipt).header("receipt-id", SUBSCRIBE_RECEIPT),
                )
                .await;
                let mut message = Frame::new(Command::Message)
                    .header("subscription", "sub-1")
                    .header("destination", "/queue/q")
                    .header("message-id", "m-1")
                    .header("ack", "ack-1");
                message.body = b"{\"a\": 1}".to_vec();
                send_frame(&mut ws, message).await;
                while let Some(frame) = read_frame(&mut ws).await {
                    seen.send(frame.encode().unwrap()).unwrap();
                    if frame.command == Command::Disconnect {
                        let id = frame.get("receipt").unwrap().to_string();
                        send_frame(
                            &mut ws,
                            Frame::new(Command::Receipt).header("receipt-id", id),
                        )
                        .await;
                    }
                }
            }
        })
        .await;
        let (client, mut events) = StompClient::start(options(url));
        assert!(matches!(
            event(&mut events).await,
            StompEvent::Connected { reconnected: false }
        ));
        let StompEvent::Message(delivery) = event(&mut events).await else {
            panic!("a message")
        };
        assert_eq!(delivery.body, b"{\"a\": 1}");
        assert_eq!(delivery.destination, "/queue/q");
        delivery.ack();
        let closing = Instant::now();
        client.close().await;
        assert!(
            closing.elapsed() < Duration::from_secs(1),
            "{:?}",
            closing.elapsed()
        );

        let mut wire = Vec::new();
        while let Ok(frame) = seen.try_recv() {
            wire.push(String::from_utf8(frame).unwrap());
        }
        assert_eq!(
            wire,
            [
                "STOMP\naccept-version:1.2\nheart-beat:10000,10000\nhost:vh\nlogin:agent\npasscode:token\n\n\0",
                "SUBSCRIBE\nid:sub-1\ndestination:/amq/queue/q\nack:client-individual\nprefetch-count:4\nreceipt:subscribe\n\n\0",
                "ACK\nid:ack-1\n\n\0",
                "DISCONNECT\nreceipt:disconnect\n\n\0",
            ]
        );
    }

    #[tokio::test]
    async fn garbage_and_silence_end_the_connection_with_one_line() {
        // First connection: not STOMP. Later ones: CONNECTED promising heart-beats, then silence.
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let url = fake_broker(move |mut ws| {
            let n = connections.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                let _ = read_frame(&mut ws).await;
                if n == 0 {
                    let _ = ws
                        .send(WsMessage::text("HTTP/1.1 200 OK\r\nhello\n\n\0"))
                        .await;
                } else {
                    send_frame(
                        &mut ws,
                        Frame::new(Command::Connected).header("heart-beat", "100,100"),
                    )
                    .await;
                    let _ = read_frame(&mut ws).await;
                    send_frame(
                        &mut ws,
                        Frame::new(Command::Receipt).header("receipt-id", SUBSCRIBE_RECEIPT),
                    )
                    .await;
                }
                // keep the socket open, say nothing more
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
        })
        .await;
        let mut options = options(url);
        options.heartbeat = Duration::from_millis(100);
        let (client, mut events) = StompClient::start(options);
        let StompEvent::Disconnected { reason } = event(&mut events).await else {
            panic!("garbage ends the connection")
        };
        assert!(
            reason.contains("not STOMP") && !reason.contains('\n'),
            "{reason}"
        );
        assert!(matches!(
            event(&mut events).await,
            StompEvent::Connected { reconnected: false }
        ));
        let silent = Instant::now();
        let StompEvent::Disconnected { reason } = event(&mut events).await else {
            panic!("silence ends the connection")
        };
        assert!(reason.contains("heart-beat"), "{reason}");
        assert!(
            silent.elapsed() < Duration::from_secs(3),
            "{:?}",
            silent.elapsed()
        );
        assert!(matches!(
            event(&mut events).await,
            StompEvent::Connected { reconnected: true }
        ));
        drop(client);
    }

    #[tokio::test]
    async fn a_failing_tls_connection_is_reported_not_a_panic() {
        // A TCP server that hangs up: the TLS handshake fails after rustls set up.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("wss://{}/ws", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                drop(tcp);
            }
        });
        let (client, mut events) = StompClient::start(options(url));
        let StompEvent::Disconnected { reason } = event(&mut events).await else {
            panic!("a disconnect")
        };
        assert!(reason.contains("cannot open WebSocket wss://"), "{reason}");
        client.close().await;
    }

    #[test]
    fn heartbeats_negotiate_per_direction() {
        let connected = |hb: &str| Frame::new(Command::Connected).header("heart-beat", hb);
        let ten = Duration::from_secs(10);
        assert_eq!(
            negotiate(ten, &connected("10000,10000")),
            (Some(ten), Some(ten))
        );
        assert_eq!(
            negotiate(ten, &connected("20000,0")),
            (None, Some(Duration::from_secs(20)))
        );
        assert_eq!(
            negotiate(Duration::from_secs(5), &connected("0,7000")),
            (Some(Duration::from_secs(7)), None)
        );
        assert_eq!(
            negotiate(Duration::ZERO, &connected("1000,1000")),
            (None, None)
        );
        assert_eq!(
            negotiate(ten, &Frame::new(Command::Connected)),
            (None, None)
        );
    }

    #[test]
    fn error_frames_become_one_line() {
        let frame = Frame {
            command: Command::Error,
            headers: vec![("message".into(), "Bad CONNECT".into())],
            body: b"Access refused for user 'x'\n  second line\n".to_vec(),
        };
        assert_eq!(
            error_reason(&frame),
            "broker ERROR: Bad CONNECT: Access refused for user 'x' second line"
        );
        assert_eq!(error_reason(&Frame::new(Command::Error)), "broker ERROR");
    }
}
