//! Where the offering's existing usernames come from.
//!
//! The generator only needs "the names already in use"; hiding the source behind
//! [`ExistingUsernames`] keeps the Waldur call out of the generator, so unit tests exercise
//! collisions with a plain list and a detached host.
//!
//! The Waldur source lists `marketplace-offering-users/?offering_uuid=<uuid>` through the
//! agent's Waldur callback. The callback answers one JSON page, so pages are requested one by
//! one (`page`, `page_size` = [`PAGE_SIZE`]) until a short page. Every state counts, deleted
//! users included: reusing a deleted user's name would hand their files and history to a
//! stranger on a POSIX system.

use std::collections::HashSet;

use serde_json::{json, Value};
use waldur_plugin_abi::{Error, Host, Result};

/// Offering users per request. A server may cap `page_size`; a modest 100 stays under such
/// caps, so "fewer than requested" can mean "last page".
pub const PAGE_SIZE: usize = 100;
/// 1,000 pages of 100: an offering with more users than this is not a realistic target for
/// one agent, and the bound keeps a misbehaving server from looping forever.
const MAX_PAGES: u32 = 1000;

/// The usernames an offering already has (any case; empty entries are ignored).
pub trait ExistingUsernames {
    fn existing_usernames(&self) -> Result<Vec<String>>;
}

/// A fixed list, for tests and for callers that already know the names.
impl ExistingUsernames for Vec<String> {
    fn existing_usernames(&self) -> Result<Vec<String>> {
        Ok(self.clone())
    }
}

/// The offering's offering users, read from Waldur through the agent.
pub struct WaldurUsernames<'a> {
    pub host: &'a Host,
    pub offering_uuid: &'a str,
}

impl ExistingUsernames for WaldurUsernames<'_> {
    fn existing_usernames(&self) -> Result<Vec<String>> {
        if self.offering_uuid.is_empty() {
            return Err(Error::backend(
                "template usernames: the offering has no uuid, so its usernames cannot be listed",
            ));
        }
        collect_pages(|page| {
            let query = json!({
                "offering_uuid": self.offering_uuid,
                "page": page,
                "page_size": PAGE_SIZE,
            });
            self.host.waldur_get("marketplace-offering-users/", &query)
        })
        // BACKEND, so the agent marks the offering user "Error creating" and retries later,
        // as the reference does for any failure during username generation.
        .map_err(|e| {
            Error::backend(format!(
                "template usernames: cannot list the offering's usernames: {}",
                e.message
            ))
        })
    }
}

/// The `username` of every offering user on every page `fetch_page(1..)` answers.
///
/// Stops at a page shorter than [`PAGE_SIZE`], and also at a page that repeats an offering
/// user already seen: a server (or agent) that ignores `page` would otherwise be asked for
/// the same page `MAX_PAGES` times.
pub fn collect_pages(mut fetch_page: impl FnMut(u32) -> Result<Value>) -> Result<Vec<String>> {
    let mut usernames = Vec::new();
    let mut seen = HashSet::new();
    for page in 1..=MAX_PAGES {
        let answer = fetch_page(page)?;
        let records = answer.as_array().ok_or_else(|| {
            Error::internal(format!("expected a list of offering users, got {answer}"))
        })?;
        let mut repeated = false;
        for record in records {
            let id = record.get("uuid").or_else(|| record.get("url"));
            if let Some(id) = id.and_then(Value::as_str) {
                repeated |= !seen.insert(id.to_string());
            }
            if let Some(name) = record.get("username").and_then(Value::as_str) {
                usernames.push(name.to_string());
            }
        }
        if repeated || records.len() < PAGE_SIZE {
            return Ok(usernames);
        }
    }
    log::warn!(
        "template usernames: stopped listing offering users after {MAX_PAGES} pages of {PAGE_SIZE}"
    );
    Ok(usernames)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(from: usize, count: usize) -> Value {
        Value::Array(
            (from..from + count)
                .map(|n| json!({"uuid": format!("ou{n}"), "username": format!("user{n}")}))
                .collect(),
        )
    }

    #[test]
    fn follows_pages_until_a_short_one() {
        let mut asked = Vec::new();
        let names = collect_pages(|n| {
            asked.push(n);
            Ok(match n {
                1 => page(0, PAGE_SIZE),
                2 => page(PAGE_SIZE, 3),
                _ => unreachable!(),
            })
        })
        .unwrap();
        assert_eq!(asked, vec![1, 2]);
        assert_eq!(names.len(), PAGE_SIZE + 3);
        assert_eq!(names.last().map(String::as_str), Some("user102"));
    }

    #[test]
    fn users_without_a_username_are_skipped() {
        let answer = json!([
            {"uuid": "a", "username": null, "state": "Requested"},
            {"uuid": "b", "username": "jdoe", "state": "Deleted"},
            {"uuid": "c"},
        ]);
        assert_eq!(collect_pages(|_| Ok(answer.clone())).unwrap(), vec!["jdoe"]);
    }

    #[test]
    fn a_server_ignoring_page_is_asked_twice_only() {
        let mut calls = 0;
        let names = collect_pages(|_| {
            calls += 1;
            Ok(page(0, PAGE_SIZE))
        })
        .unwrap();
        assert_eq!(calls, 2);
        assert!(names.contains(&"user0".to_string()));
    }

    #[test]
    fn errors_and_odd_answers_are_errors() {
        assert!(collect_pages(|_| Err(Error::internal("down"))).is_err());
        assert!(collect_pages(|_| Ok(json!({"detail": "nope"}))).is_err());
    }

    #[test]
    fn a_detached_host_fails_as_a_backend_error() {
        let host = Host::detached();
        let source = WaldurUsernames {
            host: &host,
            offering_uuid: "off-1",
        };
        let err = source.existing_usernames().unwrap_err();
        assert_eq!(err.kind, waldur_plugin_abi::ErrorKind::BACKEND);
        assert!(err.message.contains("marketplace-offering-users/"), "{err}");
        let no_uuid = WaldurUsernames {
            host: &host,
            offering_uuid: "",
        };
        assert_eq!(
            no_uuid.existing_usernames().unwrap_err().kind,
            waldur_plugin_abi::ErrorKind::BACKEND
        );
    }
}
