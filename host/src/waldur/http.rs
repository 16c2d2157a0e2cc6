//! Transport: one `reqwest` client per Waldur client, authentication on every attempt, status
//! checks and retries. Endpoint modules describe a request as a [`Call`]; this module sends it
//! (every page of a listing, as [`super::pagination`] finds the next one).

use std::time::Duration;

use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::auth::{scrub, Auth};
use super::call::{Call, Query};
use super::decode::{decode_list, decode_one};
use super::error::{chain_message, excerpt, WaldurError};
use super::pagination::NextPage;
use super::retry::{retry_after, RetryPolicy};
use super::ClientOptions;
use crate::config::Secret;

/// An answer with an accepted status.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// The transport shared by all endpoint methods of one [`super::WaldurClient`].
pub(crate) struct Http {
    client: reqwest::Client,
    /// Always ends with `/api/`.
    base: Url,
    auth: Auth,
    timeout: Duration,
    oidc_timeout: Duration,
    retry: RetryPolicy,
    /// Scrubbed from every error message.
    secrets: Vec<Secret>,
    /// A dry run's record of the writes it holds back.
    withheld: Option<crate::dry_run::WaldurWrites>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("base", &self.base.as_str())
            .field("auth", &self.auth)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Http {
    pub(crate) fn new(
        api_url: &str,
        auth: Auth,
        options: &ClientOptions,
    ) -> Result<Http, WaldurError> {
        let base = api_base(api_url)?;
        let mut builder = reqwest::Client::builder()
            .user_agent(options.user_agent.clone())
            // As the reference (httpx `follow_redirects=False`): a redirect is an unexpected
            // status, and the Authorization header never follows one.
            .redirect(reqwest::redirect::Policy::none())
            .danger_accept_invalid_certs(!options.verify_ssl)
            .use_rustls_tls();
        let mut secrets = auth.secrets();
        if let Some(proxy) = options.proxy.as_ref().filter(|p| !p.is_empty()) {
            let proxy_setting = reqwest::Proxy::all(proxy.expose()).map_err(|_| {
                // The proxy URL may carry credentials: do not echo it.
                WaldurError::Setup("global_proxy is not a valid proxy URL".into())
            })?;
            builder = builder.proxy(proxy_setting);
            secrets.push(proxy.clone());
        }
        let client = builder
            .build()
            .map_err(|e| WaldurError::Setup(chain_message(&e)))?;
        Ok(Http {
            client,
            base,
            auth,
            timeout: options.timeout,
            oidc_timeout: options.oidc_timeout,
            retry: options.retry.clone(),
            secrets,
            withheld: options.dry_run.clone(),
        })
    }

    /// The dry run's record, when this client belongs to one.
    pub(crate) fn withheld(&self) -> Option<&crate::dry_run::WaldurWrites> {
        self.withheld.as_ref()
    }

    pub(crate) fn base(&self) -> &Url {
        &self.base
    }

    /// `<base>/api/<segments...>/?<query>`. Segments are percent-encoded, so a malformed UUID
    /// cannot change the path; the trailing slash is Waldur's convention.
    pub(crate) fn url(&self, segments: &[&str], query: Query) -> Url {
        let mut url = self.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .expect("http(s) URLs always have a path");
            path.pop_if_empty();
            path.extend(segments);
            path.push("");
        }
        query.append_to(&mut url);
        url
    }

    /// Sends `call`, retrying transient failures per the policy, and returns the answer if its
    /// status is accepted.
    pub(crate) async fn execute(&self, call: &Call) -> Result<Reply, WaldurError> {
        if let Some(withheld) = self
            .withheld
            .as_ref()
            .filter(|_| call.method != Method::GET)
        {
            return Ok(withhold(withheld, call));
        }
        let mut attempt: u32 = 1;
        let mut reauthenticated = false;
        loop {
            let started = Instant::now();
            let (error, hint) = match self.attempt(call).await {
                Ok((reply, used)) => {
                    tracing::debug!(
                        endpoint = call.endpoint,
                        method = %call.method,
                        path = call.url.path(),
                        status = reply.status,
                        attempt,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "waldur request"
                    );
                    if call.accepted.contains(&reply.status) {
                        return Ok(reply);
                    }
                    // An OIDC token can be revoked or expire early: fetch a fresh one once.
                    if reply.status == 401 && !reauthenticated && self.auth.reject(&used).await {
                        reauthenticated = true;
                        continue;
                    }
                    let hint = retry_after(reply.status, &reply.headers);
                    (self.status_error(call, &reply, &used), hint)
                }
                Err(error) => (error, None),
            };
            if attempt >= self.retry.max_attempts || !call.retry.allows(&error) {
                return Err(error);
            }
            let wait = hint.map_or_else(
                || self.retry.backoff(attempt),
                |asked| asked.min(self.retry.max_retry_after),
            );
            tracing::warn!(
                endpoint = call.endpoint,
                attempt,
                wait_ms = wait.as_millis() as u64,
                "transient Waldur error, retrying: {error}"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// `execute` and decode one object.
    pub(crate) async fn json<T: DeserializeOwned>(
        &self,
        call: &Call,
        required: &[&str],
    ) -> Result<T, WaldurError> {
        let reply = self.execute(call).await?;
        decode_one(call, &reply.body, required)
    }

    /// `execute` every page and concatenate them.
    pub(crate) async fn json_pages<T: DeserializeOwned>(
        &self,
        call: Call,
        required: &[&str],
    ) -> Result<Vec<T>, WaldurError> {
        let mut call = call;
        let mut items = Vec::new();
        let mut pages = NextPage::new(self.base());
        loop {
            let reply = self.execute(&call).await?;
            items.extend(decode_list::<T>(&call, &reply.body, required)?);
            match pages.after(&call, &reply.headers)? {
                Some(next) => call.url = next,
                None => return Ok(items),
            }
        }
    }

    /// `execute`, ignoring the body (the reference's "200 any").
    pub(crate) async fn send(&self, call: &Call) -> Result<u16, WaldurError> {
        Ok(self.execute(call).await?.status)
    }

    async fn attempt(&self, call: &Call) -> Result<(Reply, Secret), WaldurError> {
        let (authorization, used) = self.auth.header(&self.client, self.oidc_timeout).await?;
        let mut request = self
            .client
            .request(call.method.clone(), call.url.clone())
            .timeout(self.timeout)
            .header(AUTHORIZATION, authorization)
            .header(ACCEPT, "application/json");
        if let Some(body) = &call.body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.transport_error(call, e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(call, e))?;
        Ok((
            Reply {
                status,
                headers,
                body: body.to_vec(),
            },
            used,
        ))
    }

    fn transport_error(&self, call: &Call, error: reqwest::Error) -> WaldurError {
        if error.is_timeout() {
            return WaldurError::Timeout {
                method: call.method.clone(),
                path: call.url.path().to_owned(),
                timeout: self.timeout,
            };
        }
        WaldurError::Transport {
            method: call.method.clone(),
            path: call.url.path().to_owned(),
            connect: error.is_connect(),
            message: self.scrub(&chain_message(&error.without_url())),
        }
    }

    /// `used` is the credential of this attempt (a bearer token is not among `secrets`): a
    /// server or proxy echoing the request headers must not put it into the error.
    fn status_error(&self, call: &Call, reply: &Reply, used: &Secret) -> WaldurError {
        WaldurError::Status {
            method: call.method.clone(),
            path: call.url.path().to_owned(),
            status: reply.status,
            body: scrub(&self.scrub(&excerpt(&reply.body)), used),
        }
    }

    fn scrub(&self, text: &str) -> String {
        self.secrets
            .iter()
            .fold(text.to_owned(), |text, secret| scrub(&text, secret))
    }
}

/// A dry run's answer to a write it does not send: recorded, and answered with the first
/// status the endpoint accepts and the endpoint's planned reply.
fn withhold(withheld: &crate::dry_run::WaldurWrites, call: &Call) -> Reply {
    let mut request = format!("{} {}", call.method, call.url.path());
    if let Some(query) = call.url.query() {
        request.push('?');
        request.push_str(query);
    }
    withheld.record(call.endpoint, request, call.body.as_deref());
    Reply {
        status: call.accepted.first().copied().unwrap_or(200),
        headers: HeaderMap::new(),
        body: call.planned_reply.as_bytes().to_vec(),
    }
}

/// `waldur_api_url` -> the URL every path is appended to, ending in `/api/`.
///
/// The reference does `api_url.rstrip("/api")` (a character-set strip that mangles hosts ending
/// in `a`, `p` or `i`) and then prefixes every path with `/api/`. Here: a URL whose path ends
/// with an `api` segment is used as is (`http://h:8000/api/`, `https://h/waldur/api`); any
/// other gets `api/` appended (`http://h:8000/` -> `http://h:8000/api/`), which is where the
/// reference's requests go too.
pub(crate) fn api_base(api_url: &str) -> Result<Url, WaldurError> {
    let mut url = Url::parse(api_url.trim())
        .map_err(|e| WaldurError::Setup(format!("waldur_api_url is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(WaldurError::Setup(
            "waldur_api_url must start with http:// or https://".into(),
        ));
    }
    url.set_query(None);
    url.set_fragment(None);
    let ends_with_api = url
        .path_segments()
        .and_then(|mut segments| segments.rfind(|s| !s.is_empty()))
        == Some("api");
    {
        let mut path = url
            .path_segments_mut()
            .map_err(|_| WaldurError::Setup("waldur_api_url must be a hierarchical URL".into()))?;
        path.pop_if_empty();
        if !ends_with_api {
            path.push("api");
        }
        path.push("");
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_base_keeps_or_adds_the_api_segment() {
        let base = |u: &str| api_base(u).unwrap().to_string();
        assert_eq!(
            base("http://127.0.0.1:8000/api/"),
            "http://127.0.0.1:8000/api/"
        );
        assert_eq!(
            base("http://127.0.0.1:8000/api"),
            "http://127.0.0.1:8000/api/"
        );
        // The reference's rstrip("/api") would mangle this host into "http://w".
        assert_eq!(base("http://wapi/api/"), "http://wapi/api/");
        assert_eq!(base("https://h/waldur/api/"), "https://h/waldur/api/");
        assert_eq!(base("http://h:8000/"), "http://h:8000/api/");
        assert!(api_base("ftp://h/api/").is_err());
        assert!(api_base("not a url").is_err());
    }
}
