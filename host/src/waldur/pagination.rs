//! `Link: <url>; rel="next"` pagination of Waldur list endpoints (reference §1.3).
//!
//! Every list endpoint answers a bare JSON array; more pages are announced by a `Link` header
//! with `rel="next"` (RFC 8288). We follow the announced URL as given (it carries the filters
//! and the page number) instead of rebuilding it like the reference's `sync_all`.

use std::collections::HashSet;

use reqwest::header::{HeaderMap, LINK};
use reqwest::Url;

use super::call::Call;
use super::error::WaldurError;

/// Pages of one listing we follow at most: 1,000,000 objects at `page_size=100`. A server
/// that keeps announcing more is broken; failing beats looping for ever.
const MAX_PAGES: usize = 10_000;

/// Where the next page of a listing is, page after page: the `rel="next"` link of each
/// answer, checked (same origin as Waldur, never a page seen before, at most [`MAX_PAGES`]).
pub(crate) struct NextPage {
    origin: Url,
    seen: HashSet<String>,
}

impl NextPage {
    /// For a listing of the Waldur at `base`.
    pub(crate) fn new(base: &Url) -> NextPage {
        NextPage {
            origin: base.clone(),
            seen: HashSet::new(),
        }
    }

    /// The URL of the page after the one `call` fetched, whose answer had `headers`; `None`
    /// on the last page.
    pub(crate) fn after(
        &mut self,
        call: &Call,
        headers: &HeaderMap,
    ) -> Result<Option<Url>, WaldurError> {
        let next = headers
            .get_all(LINK)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find_map(next_link);
        let Some(target) = next else {
            return Ok(None);
        };
        let next_url = call
            .url
            .join(&target)
            .map_err(|e| WaldurError::Unexpected {
                endpoint: call.endpoint,
                message: format!("invalid rel=\"next\" link {target:?}: {e}"),
            })?;
        // The Authorization header goes with every page: never to another origin.
        if next_url.origin() != self.origin.origin() {
            return Err(WaldurError::Unexpected {
                endpoint: call.endpoint,
                message: format!(
                    "refusing to follow a rel=\"next\" link to another origin: {}",
                    without_query(&next_url)
                ),
            });
        }
        self.seen.insert(call.url.to_string());
        if self.seen.contains(next_url.as_str()) || self.seen.len() >= MAX_PAGES {
            return Err(WaldurError::Unexpected {
                endpoint: call.endpoint,
                message: format!(
                    "pagination does not end (page {} links to {})",
                    self.seen.len(),
                    without_query(&next_url)
                ),
            });
        }
        Ok(Some(next_url))
    }
}

fn without_query(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.to_string()
}

/// The target of the first link whose `rel` includes `next` in one `Link` header value, e.g.
/// `<https://w/api/x/?page=2>; rel="next", <https://w/api/x/?page=9>; rel="last"`.
pub(crate) fn next_link(header: &str) -> Option<String> {
    let mut rest = header;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        if rest.is_empty() {
            return None;
        }
        let inside = rest.strip_prefix('<')?;
        let end = inside.find('>')?;
        let target = inside[..end].trim();
        let (params, remaining) = link_params(&inside[end + 1..]);
        let is_next = params.iter().any(|(name, value)| {
            name.eq_ignore_ascii_case("rel")
                && value
                    .split_ascii_whitespace()
                    .any(|rel| rel.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(target.to_owned());
        }
        rest = remaining;
    }
}

/// Parses `; name=value; name="quoted, value"` up to the comma that ends this link. Returns
/// the parameters and what follows that comma.
fn link_params(text: &str) -> (Vec<(String, String)>, &str) {
    let mut params = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut escaped = false;
    let mut end = text.len();
    for (i, c) in text.char_indices() {
        if in_quotes {
            if escaped {
                escaped = false;
                current.push(c);
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            } else {
                current.push(c);
            }
            continue;
        }
        match c {
            '"' => in_quotes = true,
            ';' => push_param(&mut params, &mut current),
            ',' => {
                end = i;
                break;
            }
            _ => current.push(c),
        }
    }
    push_param(&mut params, &mut current);
    let remaining = if end < text.len() {
        &text[end + 1..]
    } else {
        ""
    };
    (params, remaining)
}

fn push_param(params: &mut Vec<(String, String)>, current: &mut String) {
    let text = std::mem::take(current);
    let text = text.trim();
    if text.is_empty() {
        return;
    }
    let (name, value) = text.split_once('=').unwrap_or((text, ""));
    params.push((name.trim().to_owned(), value.trim().to_owned()));
}

#[cfg(test)]
mod tests {
    use super::next_link;

    #[test]
    fn finds_next_among_several_links() {
        let header = r#"<http://w/api/x/?page=1>; rel="first", <http://w/api/x/?page=3&a=1>; rel="next", <http://w/api/x/?page=9>; rel="last""#;
        assert_eq!(
            next_link(header).as_deref(),
            Some("http://w/api/x/?page=3&a=1")
        );
    }

    #[test]
    fn unquoted_multi_valued_and_case_insensitive_rel() {
        assert_eq!(next_link("</p2>; REL=Next").as_deref(), Some("/p2"));
        assert_eq!(
            next_link(r#"</p2>; rel="prefetch next""#).as_deref(),
            Some("/p2")
        );
    }

    #[test]
    fn quoted_commas_and_semicolons_do_not_split_links() {
        let header = r#"</a>; title="x, y; rel=next"; rel="prev", </b>; rel="next""#;
        assert_eq!(next_link(header).as_deref(), Some("/b"));
    }

    #[test]
    fn no_next_or_garbage() {
        assert_eq!(next_link(r#"</a>; rel="prev""#), None);
        assert_eq!(next_link(""), None);
        assert_eq!(next_link("garbage"), None);
        assert_eq!(next_link("<unterminated; rel=next"), None);
    }
}
