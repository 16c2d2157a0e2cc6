//! Forwards the plugin's `log` / `tracing` output and panic messages into the agent's log.
//!
//! A plugin carries its own copy of `log`, `tracing` and std's panic hook, none of which the
//! agent's logger sees (verified: plugin log records are silently dropped otherwise). The SDK
//! installs a logger in the plugin's copy before any vendor code runs, and attributes each
//! record to the instance whose call is running on this thread (or to none: null context).

use std::cell::Cell;
use std::sync::OnceLock;

use abi_stable::std_types::RStr;

use crate::ffi::{HostHandle, LogLevel};

static FALLBACK_HOST: OnceLock<HostHandle> = OnceLock::new();

thread_local! {
    static CURRENT_HOST: Cell<Option<HostHandle>> = const { Cell::new(None) };
}

static LOGGER: HostLogger = HostLogger;

/// Installs the forwarding logger and panic hook once per plugin library.
///
/// Records from outside any call (a plugin's own threads) go to the agent without an instance
/// context: the first instance may be gone by then, and its context with it.
pub fn install(host: HostHandle) {
    FALLBACK_HOST.get_or_init(|| {
        let _ = log::set_logger(&LOGGER);
        std::panic::set_hook(Box::new(forward_panic));
        HostHandle {
            api: host.api,
            ctx: std::ptr::null(),
        }
    });
}

/// Marks `host` as the instance running on this thread until the guard drops, and takes over
/// the agent's current log level: the agent may configure or change its logging after the
/// plugin was built, and records filtered here never cost a call across the boundary.
pub fn enter(host: HostHandle) -> Scope {
    // SAFETY: the agent's callback is a plain function valid for the process lifetime.
    let max = unsafe { (host.api.max_log_level())(host.ctx) };
    log::set_max_level(level_filter(max));
    Scope {
        previous: CURRENT_HOST.with(|c| c.replace(Some(host))),
    }
}

pub struct Scope {
    previous: Option<HostHandle>,
}

impl Drop for Scope {
    fn drop(&mut self) {
        CURRENT_HOST.with(|c| c.set(self.previous));
    }
}

fn current_host() -> Option<HostHandle> {
    CURRENT_HOST
        .with(|c| c.get())
        .or_else(|| FALLBACK_HOST.get().copied())
}

fn send(level: LogLevel, target: &str, message: &str) {
    if let Some(host) = current_host() {
        // SAFETY: see `install`; the host callback catches its own panics.
        unsafe {
            (host.api.log())(
                host.ctx,
                level,
                RStr::from_str(target),
                RStr::from_str(message),
            )
        }
    }
}

struct HostLogger;

impl log::Log for HostLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let level = match record.level() {
                log::Level::Error => LogLevel::ERROR,
                log::Level::Warn => LogLevel::WARN,
                log::Level::Info => LogLevel::INFO,
                log::Level::Debug => LogLevel::DEBUG,
                log::Level::Trace => LogLevel::TRACE,
            };
            send(level, record.target(), &record.args().to_string());
        }
    }

    fn flush(&self) {}
}

fn level_filter(level: LogLevel) -> log::LevelFilter {
    match level.0 {
        0 => log::LevelFilter::Off,
        1 => log::LevelFilter::Error,
        2 => log::LevelFilter::Warn,
        3 => log::LevelFilter::Info,
        4 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    }
}

fn forward_panic(info: &std::panic::PanicHookInfo<'_>) {
    let location = info
        .location()
        .map(|l| format!(" at {}:{}", l.file(), l.line()))
        .unwrap_or_default();
    let message = format!(
        "plugin panicked{location}: {}",
        panic_message(info.payload())
    );
    send(LogLevel::ERROR, "panic", &message);
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}
