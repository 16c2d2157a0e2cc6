//! Process-wide tuning of glibc's malloc, done once before any thread starts.
//!
//! glibc gives each thread that allocates under contention an arena of its own, up to eight
//! per core, and an arena keeps what it once held. The agent runs plugin calls on tokio's
//! blocking pool (dozens of threads in a burst of events), so memory freed after a burst stays
//! spread over many arenas: in `scripts/bench-events.sh` (1,000 order events) the resident
//! size grew from 76 to 149 MB with the default and from 47 to 58 MB with two arenas, at the
//! same throughput. The limit applies to the plugins too: they share the process's malloc.

/// The arena limit the agent sets unless `MALLOC_ARENA_MAX` is in its environment.
pub const ARENA_MAX: i32 = 2;

/// Caps glibc's malloc arenas at [`ARENA_MAX`]. A `MALLOC_ARENA_MAX` in the environment wins
/// (glibc reads it itself), so a site can still choose. No effect on other C libraries.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes malloc's parameters; it is called from `main` before
        // the agent starts any thread, as glibc asks for M_ARENA_MAX.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX);
        }
    }
}
