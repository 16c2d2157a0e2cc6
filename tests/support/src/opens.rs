//! Counts how often a file is opened, from the kernel's own record (inotify): a test can show
//! that the real binary reads its config file once, whatever code path reads it.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Watches one file from creation on; [`OpenCounter::opens`] answers the opens since.
pub struct OpenCounter {
    fd: OwnedFd,
}

impl OpenCounter {
    /// Starts counting the opens of `path` (an existing file).
    pub fn watch(path: &Path) -> Self {
        // SAFETY: inotify_init1 has no memory preconditions.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        assert!(
            raw >= 0,
            "inotify_init1: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: `raw` is a new descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let c_path = CString::new(path.as_os_str().as_bytes()).expect("a path without NUL");
        // Closes are watched too: two opens in a row with nothing between would otherwise be
        // coalesced by the kernel into one event.
        // SAFETY: a valid descriptor and a NUL-terminated path.
        let wd = unsafe {
            libc::inotify_add_watch(
                fd.as_raw_fd(),
                c_path.as_ptr(),
                libc::IN_OPEN | libc::IN_CLOSE,
            )
        };
        assert!(
            wd >= 0,
            "inotify_add_watch {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
        Self { fd }
    }

    /// The opens recorded since [`OpenCounter::watch`] or the previous call.
    pub fn opens(&self) -> usize {
        const HEADER: usize = std::mem::size_of::<libc::inotify_event>();
        let mut opens = 0;
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: the buffer is valid for its length.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                )
            };
            if n < 0 {
                let error = std::io::Error::last_os_error();
                assert_eq!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock,
                    "reading inotify events: {error}"
                );
                return opens;
            }
            let mut at = 0;
            while at + HEADER <= n as usize {
                // SAFETY: the kernel wrote a whole event header at `at`; read unaligned.
                let event: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buffer[at..].as_ptr().cast()) };
                if event.mask & libc::IN_OPEN != 0 {
                    opens += 1;
                }
                at += HEADER + event.len as usize;
            }
        }
    }
}
