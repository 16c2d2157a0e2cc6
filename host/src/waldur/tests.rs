//! The client against a real HTTP server: a small axum app on 127.0.0.1:0 whose answers each
//! test scripts, and which records every request it gets.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use waldur_plugin_abi::wire::Limits;

use super::*;
use crate::config::{OidcCredentials, Secret, WaldurAuth};

const TOKEN: &str = "s3cr3t-static-token-value";
const DASHED: &str = "6F1A2B3C-4D5E-6F70-8192-A3B4C5D6E7F8";
const HEX: &str = "6f1a2b3c4d5e6f708192a3b4c5d6e7f8";

/// What the server saw.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    authorization: String,
    user_agent: String,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

type Responder = dyn Fn(&Seen, usize) -> Response + Send + Sync;

struct Server {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn count(&self, path: &str) -> usize {
        self.requests().iter().filter(|s| s.path == path).count()
    }
}

/// Serves `respond(request, index of this request)` on a fresh port.
async fn serve(respond: impl Fn(&Seen, usize) -> Response + Send + Sync + 'static) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve_on(listener, Arc::new(respond))
}

fn serve_on(listener: tokio::net::TcpListener, respond: Arc<Responder>) -> Server {
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let log = log.clone();
            let respond = respond.clone();
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .map(|v| v.to_str().unwrap_or_default().to_owned())
                };
                let request = Seen {
                    method: method.to_string(),
                    path: uri.path().to_owned(),
                    query: uri.query().unwrap_or_default().to_owned(),
                    authorization: header("authorization").unwrap_or_default(),
                    user_agent: header("user-agent").unwrap_or_default(),
                    content_type: header("content-type"),
                    body: body.to_vec(),
                };
                let index = {
                    let mut log = log.lock().unwrap();
                    log.push(request.clone());
                    log.len() - 1
                };
                respond(&request, index)
            }
        },
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server {
        base: format!("http://{addr}"),
        seen,
    }
}

fn reply(status: u16, body: Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn with_link(body: Value, link: &str) -> Response {
    let mut response = reply(200, body);
    response.headers_mut().insert("link", link.parse().unwrap());
    response
}

fn fast_options() -> ClientOptions {
    ClientOptions {
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(5),
        },
        ..ClientOptions::new("order_process")
    }
}

fn token_client(server: &Server) -> WaldurClient {
    WaldurClient::new(
        &format!("{}/api/", server.base),
        &WaldurAuth::Token(Secret::new(TOKEN)),
        fast_options(),
    )
    .unwrap()
}

fn order_json(uuid: &str) -> Value {
    json!({"uuid": uuid, "type": "Create", "state": "pending-provider",
           "marketplace_resource_uuid": HEX, "limits": {"cpu": 10}, "plan_uuid": null})
}

fn resource_json() -> Value {
    json!({"uuid": HEX, "name": "r1", "slug": "r1", "state": "OK", "backend_id": "",
           "limits": {"cpu": 10}, "offering_plugin_options": {}, "project_uuid": HEX,
           "end_date": null, "unknown_new_field": [1, 2]})
}

#[tokio::test]
async fn pagination_follows_absolute_and_relative_links() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let server = serve_on(
        listener,
        Arc::new(move |seen: &Seen, _| {
            if !seen.query.contains("page=") {
                // An absolute link, among other relations.
                with_link(
                    json!([order_json("a1"), order_json("a2")]),
                    &format!(
                        "<{origin}/api/marketplace-orders/?page=2&page_size=100>; rel=\"next\", <{origin}/api/marketplace-orders/?page=3>; rel=\"last\""
                    ),
                )
            } else if seen.query.starts_with("page=2") {
                // A relative link with an unquoted rel.
                with_link(
                    json!([order_json("b1")]),
                    "</api/marketplace-orders/?page=3&page_size=100>; rel=next",
                )
            } else {
                reply(200, json!([order_json("c1")]))
            }
        }),
    );
    let client = token_client(&server);
    let orders = client
        .list_orders(&OrderFilter::pending(DASHED))
        .await
        .unwrap();
    let uuids: Vec<&str> = orders.iter().map(|o| o.uuid.as_str()).collect();
    assert_eq!(uuids, ["a1", "a2", "b1", "c1"]);
    let seen = server.requests();
    assert_eq!(seen.len(), 3);
    assert_eq!(
        seen[0].query,
        format!("offering_uuid={HEX}&state=pending-provider&state=executing&page_size=100")
    );
    assert_eq!(seen[1].query, "page=2&page_size=100");
    assert_eq!(seen[2].query, "page=3&page_size=100");
    assert!(seen.iter().all(|s| s.path == "/api/marketplace-orders/"));
}

#[tokio::test]
async fn pagination_refuses_links_to_other_origins_and_loops() {
    let server = serve(|seen, _| {
        if seen.path.contains("orders") {
            with_link(
                json!([]),
                "<http://evil.example/api/x/?page=2>; rel=\"next\"",
            )
        } else {
            with_link(
                json!([]),
                "</api/marketplace-provider-resources/?page=1>; rel=\"next\"",
            )
        }
    })
    .await;
    let client = token_client(&server);
    let error = client
        .list_orders(&OrderFilter::pending(HEX))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("another origin"), "{error}");
    assert_eq!(server.count("/api/marketplace-orders/"), 1);
    let error = client
        .list_provider_resources(&ResourceFilter::offering(HEX))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("does not end"), "{error}");
}

#[tokio::test]
async fn query_keys_paths_and_uuids_are_exact() {
    let server = serve(|seen, _| match seen.path.as_str() {
        p if p.ends_with("/approve_by_provider/") => reply(200, json!({"detail": "ok"})),
        p if p.ends_with("/set_limits/") => reply(200, json!({"status": "OK"})),
        p if p.ends_with("/set_pending_account_linking/") => reply(200, json!({})),
        p if p.ends_with("/set_state_done/") => reply(200, json!({})),
        "/api/marketplace-component-usages/set_usage/" => reply(201, json!({})),
        _ => reply(200, json!([])),
    })
    .await;
    let client = token_client(&server);

    let filter = ResourceFilter::offering(DASHED).with_fields(&["uuid", "backend_id"]);
    client.list_provider_resources(&filter).await.unwrap();
    let period = jiff::civil::date(2026, 7, 1);
    client
        .list_component_user_usages(DASHED, period, &["component_usage"])
        .await
        .unwrap();
    client
        .list_offering_users(&OfferingUserFilter {
            states: vec!["Requested".into(), "Error creating".into()],
            ..OfferingUserFilter::offering(DASHED)
        })
        .await
        .unwrap();
    assert_eq!(
        client.approve_order(DASHED).await.unwrap().as_deref(),
        Some("ok")
    );
    client.set_order_done(DASHED).await.unwrap();
    let limits: Limits = [("cpu".to_owned(), 5.0), ("gpu".to_owned(), 1.5)].into();
    client.set_resource_limits(DASHED, &limits).await.unwrap();
    client
        .set_offering_user_pending_account_linking(DASHED, "link it", None)
        .await
        .unwrap();
    client
        .set_usage(&SetUsageRequest {
            usages: vec![UsageAmount {
                component_type: "cpu".into(),
                amount: "12.35".into(),
            }],
            resource: DASHED.into(),
            date: "2026-07-01T00:00:00+00:00".into(),
        })
        .await
        .unwrap();

    let seen = server.requests();
    assert_eq!(seen[0].path, "/api/marketplace-provider-resources/");
    assert_eq!(
        seen[0].query,
        format!(
            "offering_uuid={HEX}&state=OK&state=Erred&field=uuid&field=backend_id&page_size=100"
        )
    );
    assert_eq!(seen[1].path, "/api/marketplace-component-user-usages/");
    assert_eq!(
        seen[1].query,
        format!("resource_uuid={HEX}&component_usage__billing_period=2026-07-01&field=component_usage&page_size=100")
    );
    assert_eq!(
        seen[2].query,
        format!("offering_uuid={HEX}&state=Requested&state=Error+creating&is_restricted=false&page_size=100")
    );
    assert_eq!(seen[3].method, "POST");
    assert_eq!(
        seen[3].path,
        format!("/api/marketplace-orders/{HEX}/approve_by_provider/")
    );
    assert_eq!(seen[3].json(), json!({}));
    assert_eq!(seen[3].content_type.as_deref(), Some("application/json"));
    // set_state_done has no body at all, as in the reference.
    assert_eq!(
        seen[4].path,
        format!("/api/marketplace-orders/{HEX}/set_state_done/")
    );
    assert!(seen[4].body.is_empty());
    assert_eq!(seen[4].content_type, None);
    assert_eq!(seen[5].json(), json!({"limits": {"cpu": 5, "gpu": 1.5}}));
    assert_eq!(
        seen[6].path,
        format!("/api/marketplace-offering-users/{HEX}/set_pending_account_linking/")
    );
    assert_eq!(
        seen[6].json(),
        json!({"comment": "link it", "comment_url": null})
    );
    assert_eq!(
        seen[7].json(),
        json!({"usages": [{"type": "cpu", "amount": "12.35"}], "resource": HEX,
               "date": "2026-07-01T00:00:00+00:00"})
    );
    for request in &seen {
        assert_eq!(request.authorization, format!("Token {TOKEN}"));
        assert_eq!(
            request.user_agent,
            format!("waldur-agent/{} (order_process)", crate::AGENT_VERSION)
        );
    }
}

#[tokio::test]
async fn models_decode_reused_wire_types_and_tolerate_unknown_fields_and_nulls() {
    let server = serve(|seen, _| match seen.path.as_str() {
        p if p.starts_with("/api/marketplace-provider-resources/") => reply(200, resource_json()),
        p if p.starts_with("/api/marketplace-provider-offerings/") => reply(
            200,
            json!({"uuid": HEX, "customer_uuid": HEX, "plugin_options": {"username_generation_policy": "service_provider"},
                   "components": [{"type": "cpu", "billing_type": "usage", "limit_amount": null, "unit_factor": 1}],
                   "partitions": [{"partition_name": "gpu"}], "brand_new": true}),
        ),
        _ => reply(200, json!([{"uuid": HEX}])),
    })
    .await;
    let client = token_client(&server);
    let resource = client.provider_resource(HEX, &[]).await.unwrap();
    assert_eq!(resource.slug, "r1");
    assert_eq!(resource.end_date, None);
    assert_eq!(resource.extra["unknown_new_field"], json!([1, 2]));
    let offering = client
        .provider_offering(HEX, WaldurClient::PROCESSOR_OFFERING_FIELDS)
        .await
        .unwrap();
    assert_eq!(offering.components[0].component_type, "cpu");
    assert_eq!(offering.partitions[0].partition_name, "gpu");
    assert_eq!(
        offering.plugin_option_str("username_generation_policy"),
        "service_provider"
    );
    let provider = client.service_provider_for_customer(HEX).await.unwrap();
    assert_eq!(provider.uuid, HEX);
    assert_eq!(
        server.requests()[1].query,
        "field=components&field=customer_uuid&field=partitions&field=plugin_options"
    );
    assert_eq!(
        server.requests()[2].query,
        format!("customer_uuid={HEX}&field=uuid")
    );
}

#[tokio::test]
async fn decode_errors_name_the_endpoint_and_the_field() {
    let server = serve(|seen, _| match seen.path.as_str() {
        p if p.starts_with(&format!("/api/marketplace-provider-resources/{HEX}")) => {
            let mut resource = resource_json();
            resource
                .as_object_mut()
                .unwrap()
                .remove("offering_plugin_options");
            reply(200, resource)
        }
        "/api/marketplace-provider-resources/" => reply(
            200,
            json!([resource_json(), {"uuid": 7, "slug": "x", "project_uuid": "p",
                "backend_id": "", "limits": {}, "offering_plugin_options": {}}]),
        ),
        "/api/marketplace-orders/" => reply(200, json!({"not": "a list"})),
        p if p.starts_with("/api/marketplace-provider-offerings/") => reply(
            200,
            json!({"components": [], "plugin_options": {}, "customer_uuid": null}),
        ),
        _ => reply(200, json!([])),
    })
    .await;
    let client = token_client(&server);

    let error = client.provider_resource(HEX, &[]).await.unwrap_err();
    match &error {
        WaldurError::Decode {
            endpoint, field, ..
        } => {
            assert!(endpoint.starts_with("R2 "));
            assert_eq!(field, "offering_plugin_options");
        }
        other => panic!("{other:?}"),
    }
    assert!(!error.is_transient());
    let text = error.to_string();
    assert!(
        text.starts_with("R2 marketplace_provider_resources_retrieve:"),
        "{text}"
    );
    assert!(!text.contains('\n'));

    let error = client
        .list_provider_resources(&ResourceFilter::offering(HEX))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, WaldurError::Decode { field, .. } if field == "[1].uuid"),
        "{error}"
    );

    let error = client
        .list_orders(&OrderFilter::pending(HEX))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("expected a JSON array"),
        "{error}"
    );

    let error = client.provider_offering(HEX, &[]).await.unwrap_err();
    assert!(
        matches!(&error, WaldurError::Decode { field, message, .. } if field == "customer_uuid" && message.contains("null")),
        "{error}"
    );
    // With a field selection, only the selected required fields are required.
    let server = serve(|_, _| reply(200, json!({"plugin_options": {}}))).await;
    let client = token_client(&server);
    client
        .provider_offering(HEX, &["plugin_options"])
        .await
        .unwrap();
}

#[tokio::test]
async fn status_codes_are_strict() {
    let server = serve(|seen, _| match seen.path.as_str() {
        // The reference's client accepts only 201 here.
        "/api/marketplace-component-usages/set_usage/" => reply(200, json!({})),
        p if p.ends_with("/set_backend_id/") => reply(200, json!({"ok": true})),
        p if p.ends_with("/approve_by_provider/") && p.contains("aaaa") => reply(409, json!({})),
        p if p.ends_with("/approve_by_provider/") => reply(200, json!({"message": "?"})),
        p if p.ends_with("/reject_by_provider/") => reply(409, json!({"detail": "done"})),
        p if p.ends_with("/set_state_done/") => reply(201, json!({})),
        p if p.ends_with("/set_membership_sync_statuses/") => {
            reply(409, json!({"detail": "disabled"}))
        }
        "/api/marketplace-site-agent-logs/" => reply(404, json!({})),
        _ => reply(404, json!({"detail": "Not found."})),
    })
    .await;
    let client = token_client(&server);
    let error = client
        .set_usage(&SetUsageRequest::default())
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(200));
    let error = client.set_resource_backend_id(HEX, "b1").await.unwrap_err();
    assert!(matches!(&error, WaldurError::Decode { field, .. } if field == "status"));
    assert_eq!(client.approve_order("aaaa").await.unwrap(), None);
    let error = client.approve_order(HEX).await.unwrap_err();
    assert!(matches!(&error, WaldurError::Decode { field, .. } if field == "detail"));
    client.reject_order(HEX).await.unwrap();
    assert_eq!(
        client.set_order_done(HEX).await.unwrap_err().status(),
        Some(201)
    );
    assert_eq!(
        client.set_membership_sync_statuses(HEX, &[]).await.unwrap(),
        MembershipSyncOutcome::Conflict {
            detail: "disabled".into()
        }
    );
    assert!(!client.ship_logs(&[]).await.unwrap());
    let error = client.order(HEX).await.unwrap_err();
    assert!(error.is_not_found());
    assert!(!error.is_transient());
    assert_eq!(error.body(), Some(r#"{"detail":"Not found."}"#));
}

#[tokio::test]
async fn transient_errors_are_retried_and_client_errors_are_not() {
    let server = serve(|seen, index| match seen.path.as_str() {
        "/api/version/" if index < 2 => reply(502, json!({})),
        "/api/version/" => reply(200, json!({"version": "8.1.3"})),
        "/api/users/me/" => reply(400, json!({"detail": "bad"})),
        "/api/marketplace-plans/" => reply(500, json!({})),
        "/api/marketplace-site-agent-identities/" => reply(500, json!({})),
        _ => reply(404, json!({})),
    })
    .await;
    let client = token_client(&server);
    assert_eq!(client.version().await.unwrap().version, "8.1.3");
    assert_eq!(server.count("/api/version/"), 3);

    let error = client.users_me(&[]).await.unwrap_err();
    assert_eq!(error.status(), Some(400));
    assert_eq!(server.count("/api/users/me/"), 1);
    client.order(HEX).await.unwrap_err();
    assert_eq!(server.count(&format!("/api/marketplace-orders/{HEX}/")), 1);

    // Creating an identity is not idempotent: a 500 may have created it already.
    let error = client
        .create_agent_identity(&AgentIdentityRequest::default())
        .await
        .unwrap_err();
    assert!(error.is_transient());
    assert_eq!(server.count("/api/marketplace-site-agent-identities/"), 1);
}

#[tokio::test]
async fn too_many_requests_honours_retry_after() {
    let server = serve(|_, index| {
        if index == 0 {
            let mut response = reply(429, json!({"detail": "slow down"}));
            response
                .headers_mut()
                .insert("retry-after", "1".parse().unwrap());
            response
        } else {
            reply(200, json!({"version": "1"}))
        }
    })
    .await;
    let client = token_client(&server);
    let started = Instant::now();
    client.version().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(950));
    assert_eq!(server.count("/api/version/"), 2);
}

#[tokio::test]
async fn connection_refused_is_retried_even_for_non_idempotent_posts() {
    // Reserve a port, free it, and start the server there only after the first attempt.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options = ClientOptions {
        retry: RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(400),
            max_delay: Duration::from_millis(800),
            ..RetryPolicy::default()
        },
        ..ClientOptions::new("order_process")
    };
    let client = WaldurClient::new(
        &format!("http://127.0.0.1:{port}/api/"),
        &WaldurAuth::Token(Secret::new(TOKEN)),
        options,
    )
    .unwrap();
    let started = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        serve_on(
            listener,
            Arc::new(|_: &Seen, _| reply(201, json!({"uuid": HEX, "name": "agent-x"}))),
        )
    });
    let identity = client
        .create_agent_identity(&AgentIdentityRequest {
            offering: DASHED.into(),
            name: "agent-x".into(),
            ..AgentIdentityRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(identity.uuid, HEX);
    let server = started.await.unwrap();
    assert_eq!(server.requests().len(), 1);
    assert_eq!(server.requests()[0].json()["offering"], HEX);

    // Nothing listening at all: a transient connect error after the attempts.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = WaldurClient::new(
        &format!("http://127.0.0.1:{dead}/api/"),
        &WaldurAuth::Token(Secret::new(TOKEN)),
        fast_options(),
    )
    .unwrap();
    let error = client.version().await.unwrap_err();
    assert!(
        matches!(error, WaldurError::Transport { connect: true, .. }),
        "{error:?}"
    );
    assert!(error.is_transient());
}

#[tokio::test]
async fn slow_answers_time_out() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let options = ClientOptions {
        timeout: Duration::from_millis(150),
        retry: RetryPolicy::none(),
        ..ClientOptions::new("report")
    };
    let client = WaldurClient::new(
        &format!("http://{addr}/api/"),
        &WaldurAuth::Token(Secret::new(TOKEN)),
        options,
    )
    .unwrap();
    let error = client.version().await.unwrap_err();
    assert!(matches!(error, WaldurError::Timeout { .. }), "{error:?}");
    assert!(error.is_transient());
    assert!(error.to_string().contains("0.15s"), "{error}");
}

/// An OIDC token server on the same app: `/token` counts grants and hands out `jwt-<n>`.
async fn oidc_server(
    expires_in: Option<u64>,
    reject_first_jwt: bool,
) -> (Server, Arc<AtomicUsize>) {
    let grants = Arc::new(AtomicUsize::new(0));
    let counter = grants.clone();
    let server = serve(move |seen, _| {
        if seen.path == "/token" {
            assert_eq!(seen.method, "POST");
            let form = String::from_utf8(seen.body.clone()).unwrap();
            assert!(form.contains("grant_type=client_credentials"), "{form}");
            assert!(form.contains("client_id=agent"), "{form}");
            assert!(form.contains("client_secret=oidc-client-secret"), "{form}");
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let mut body = json!({"access_token": format!("jwt-{n}"), "token_type": "Bearer"});
            if let Some(seconds) = expires_in {
                body["expires_in"] = json!(seconds);
            }
            return reply(200, body);
        }
        if reject_first_jwt && seen.authorization == "Bearer jwt-1" {
            return reply(401, json!({"detail": "expired"}));
        }
        reply(200, json!({"version": seen.authorization}))
    })
    .await;
    (server, grants)
}

fn oidc_client(server: &Server) -> WaldurClient {
    let auth = WaldurAuth::Oidc(OidcCredentials {
        token_url: format!("{}/token", server.base),
        client_id: "agent".into(),
        client_secret: Secret::new("oidc-client-secret"),
    });
    WaldurClient::new(&format!("{}/api/", server.base), &auth, fast_options()).unwrap()
}

#[tokio::test]
async fn oidc_token_is_cached_shared_and_refreshed_before_expiry() {
    // 31 s lifetime - 30 s margin: the token is reused for one second.
    let (server, grants) = oidc_server(Some(31), false).await;
    let client = oidc_client(&server);
    let results = map_concurrent(8, 0..8, |_| client.version()).await;
    for result in results {
        assert_eq!(result.unwrap().version, "Bearer jwt-1");
    }
    assert_eq!(
        grants.load(Ordering::SeqCst),
        1,
        "one fetch for concurrent calls"
    );
    // A second client with the same credentials shares the token.
    assert_eq!(
        oidc_client(&server).version().await.unwrap().version,
        "Bearer jwt-1"
    );
    assert_eq!(grants.load(Ordering::SeqCst), 1);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(client.version().await.unwrap().version, "Bearer jwt-2");
    assert_eq!(grants.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn oidc_without_expires_in_uses_the_fallback_and_401_refetches_once() {
    let (server, grants) = oidc_server(None, true).await;
    let client = oidc_client(&server);
    // jwt-1 is refused: the client drops it, fetches jwt-2 and repeats the request.
    assert_eq!(client.version().await.unwrap().version, "Bearer jwt-2");
    assert_eq!(client.version().await.unwrap().version, "Bearer jwt-2");
    assert_eq!(grants.load(Ordering::SeqCst), 2);
    assert_eq!(server.count("/api/version/"), 3);
}

#[tokio::test]
async fn oidc_token_endpoint_failures_are_typed() {
    let server = serve(|seen, _| {
        if seen.path == "/token" {
            reply(401, json!({"error": "invalid_client"}))
        } else {
            reply(200, json!({"version": "x"}))
        }
    })
    .await;
    let client = oidc_client(&server);
    let error = client.version().await.unwrap_err();
    assert!(
        matches!(
            error,
            WaldurError::Oidc {
                status: Some(401),
                transient: false,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(server.count("/api/version/"), 0);
    assert!(!error.to_string().contains("oidc-client-secret"));
}

#[tokio::test]
async fn secrets_never_reach_debug_display_or_logs() {
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Capture {
            self.clone()
        }
    }
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(capture.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // A broken proxy in front of Waldur echoing the request headers into its error pages.
    let server = serve(|seen, _| {
        if seen.path == "/token" {
            return reply(
                200,
                json!({"access_token": "jwt-very-secret-bearer", "expires_in": 600}),
            );
        }
        reply(502, json!({"echo": seen.authorization}))
    })
    .await;
    let proxy = "http://proxyuser:proxy-password@127.0.0.1:9";
    let token_client = WaldurClient::new(
        &format!("{}/api/", server.base),
        &WaldurAuth::Token(Secret::new(TOKEN)),
        fast_options(),
    )
    .unwrap();
    let token_error = token_client.version().await.unwrap_err();
    let oidc = WaldurClient::new(
        &format!("{}/api/", server.base),
        &WaldurAuth::Oidc(OidcCredentials {
            token_url: format!("{}/token", server.base),
            client_id: "agent-2".into(),
            client_secret: Secret::new("oidc-client-secret-2"),
        }),
        fast_options(),
    )
    .unwrap();
    let oidc_error = oidc.version().await.unwrap_err();
    let proxied = WaldurClient::new(
        &format!("{}/api/", server.base),
        &WaldurAuth::Token(Secret::new(TOKEN)),
        ClientOptions {
            proxy: Some(Secret::new(proxy)),
            ..fast_options()
        },
    )
    .unwrap();
    let proxy_error = proxied.version().await.unwrap_err();
    assert_eq!(token_error.status(), Some(502));
    assert!(token_error.to_string().contains("***"), "{token_error}");
    assert!(oidc_error.to_string().contains("***"), "{oidc_error}");

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("retrying"), "the retries were logged: {logs}");
    let everything = format!(
        "{logs}\n{token_error}\n{token_error:?}\n{oidc_error}\n{oidc_error:?}\n{proxy_error}\n{proxy_error:?}\n{token_client:?}\n{oidc:?}\n{proxied:?}\n{:?}",
        ClientOptions {
            proxy: Some(Secret::new(proxy)),
            ..fast_options()
        }
    );
    for secret in [
        TOKEN,
        "jwt-very-secret-bearer",
        "oidc-client-secret-2",
        "proxy-password",
    ] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked:\n{everything}"
        );
    }
}

#[test]
fn invalid_settings_are_setup_errors_without_secrets() {
    let error = WaldurClient::new(
        "http://127.0.0.1:1/api/",
        &WaldurAuth::Token(Secret::new(TOKEN)),
        ClientOptions {
            proxy: Some(Secret::new("::not a url with password hunter2::")),
            ..ClientOptions::new("report")
        },
    )
    .unwrap_err();
    assert!(matches!(error, WaldurError::Setup(_)));
    assert!(!error.to_string().contains("hunter2"));
    let error = WaldurClient::new(
        "ftp://h/api/",
        &WaldurAuth::Token(Secret::new(TOKEN)),
        ClientOptions::new("report"),
    )
    .unwrap_err();
    assert!(error.to_string().contains("http://"), "{error}");
}

#[test]
fn client_for_offering_uses_config_and_base_url() {
    let offering = crate::config::Offering {
        waldur_api_url: "http://wapi:8000/api/".into(),
        auth: WaldurAuth::Token(Secret::new(TOKEN)),
        verify_ssl: false,
        ..Default::default()
    };
    let config = crate::config::Config::default();
    let client = WaldurClient::for_offering(&offering, &config, "membership_sync").unwrap();
    assert_eq!(client.api_base(), "http://wapi:8000/api/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_requests_pass_through_and_reach_waldur_from_blocking_threads() {
    use crate::modes::gateway::ClientGateway;
    use crate::plugins::WaldurGateway;

    let server = serve(|seen, _| match seen.path.as_str() {
        "/api/marketplace-provider-offerings/abc/" => reply(200, json!({"uuid": "abc"})),
        "/api/marketplace-orders/" => reply(201, json!({"created": true})),
        _ => reply(404, json!({"detail": "Not found."})),
    })
    .await;
    let client = token_client(&server);
    let answer = client
        .plugin_request(
            "get",
            "marketplace-provider-offerings/abc/",
            &json!({"state": ["OK", "Erred"], "page_size": 100, "skip": null}),
            None,
        )
        .await
        .unwrap();
    assert_eq!(answer["uuid"], "abc");
    let seen = &server.requests()[0];
    assert_eq!(seen.method, "GET");
    // Keys in JSON-object order (sorted); list values as repeated keys; null skipped.
    assert_eq!(seen.query, "page_size=100&state=OK&state=Erred");
    assert!(seen.authorization.starts_with("Token "));

    // Paths that leave the API are refused before anything is sent.
    let before = server.requests().len();
    assert!(client
        .plugin_request("GET", "https://elsewhere.example/x", &json!({}), None)
        .await
        .is_err());
    assert_eq!(server.requests().len(), before);

    // A plugin calls from a blocking thread; the gateway runs the request on the runtime.
    let gateway = ClientGateway::new(client);
    let created = tokio::task::spawn_blocking(move || {
        let created = gateway
            .request(
                "POST",
                "marketplace-orders/",
                &json!({}),
                Some(&json!({"a": 1})),
            )
            .unwrap();
        let missing = gateway
            .request("GET", "nothing/", &json!({}), None)
            .unwrap_err();
        (created, missing)
    })
    .await
    .unwrap();
    assert_eq!(created.0["created"], true);
    assert_eq!(created.1.kind, waldur_plugin_abi::ErrorKind::BACKEND);
    assert!(created.1.message.contains("404"), "{}", created.1);
}

#[tokio::test]
async fn offering_components_are_created_with_201_and_updated_with_200() {
    let server = serve(|seen, _| match seen.path.as_str() {
        p if p.ends_with("/create_offering_component/") => reply(201, json!({"uuid": HEX})),
        p if p.ends_with("/update_offering_component/") => reply(200, json!({})),
        _ => reply(404, json!({"detail": "Not found."})),
    })
    .await;
    let client = token_client(&server);
    let body: waldur_plugin_abi::wire::JsonMap = serde_json::from_value(json!({
        "billing_type": "limit", "type": "cpu", "name": "CPU",
        "measured_unit": "Hours", "limit_amount": null,
    }))
    .unwrap();
    client
        .create_offering_component(DASHED, &body)
        .await
        .unwrap();
    let mut update = body.clone();
    update.insert("uuid".into(), json!(HEX));
    client
        .update_offering_component(DASHED, &update)
        .await
        .unwrap();
    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(
        seen[0].path,
        format!("/api/marketplace-provider-offerings/{HEX}/create_offering_component/")
    );
    assert_eq!(seen[0].json(), Value::Object(body));
    assert_eq!(
        seen[1].path,
        format!("/api/marketplace-provider-offerings/{HEX}/update_offering_component/")
    );
    assert_eq!(seen[1].json()["uuid"], HEX);

    // Strict status codes: a create answered 200 or an update answered 201 is an error.
    let wrong = serve(|seen, _| match seen.path.as_str() {
        p if p.ends_with("/create_offering_component/") => reply(200, json!({})),
        _ => reply(201, json!({})),
    })
    .await;
    let client = token_client(&wrong);
    let error = client
        .create_offering_component(HEX, &update)
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(200));
    let error = client
        .update_offering_component(HEX, &update)
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(201));
}

#[tokio::test]
async fn import_and_api_key_endpoints_send_the_reference_calls() {
    let server = serve(|seen, _| match (seen.method.as_str(), seen.path.as_str()) {
        ("POST", "/api/backend-resources/") => reply(201, json!({"uuid": HEX, "name": "acc"})),
        ("POST", "/api/marketplace-resource-api-keys/report_created/") => {
            reply(201, json!({"uuid": HEX}))
        }
        ("POST", _) => reply(200, json!({"status": "OK"})),
        ("GET", p) if p.starts_with("/api/backend-resource-requests/") => reply(
            200,
            json!({"uuid": HEX, "state": "Sent", "started": null, "offering": DASHED}),
        ),
        ("GET", "/api/marketplace-resource-api-keys/") => reply(
            200,
            json!([{"uuid": HEX, "resource_uuid": HEX, "resource_backend_id": "acc",
                    "client_id": null, "state": "OK", "pending_action": "", "modified": "x"}]),
        ),
        _ => reply(200, json!([{"uuid": HEX}])),
    })
    .await;
    let client = token_client(&server);
    assert_eq!(
        client.projects_with_slug("proj").await.unwrap()[0].uuid,
        HEX
    );
    let request = client.backend_resource_request(DASHED).await.unwrap();
    assert_eq!(request.state, "Sent");
    client.start_backend_resource_request(DASHED).await.unwrap();
    client
        .set_backend_resource_request_done(DASHED)
        .await
        .unwrap();
    client
        .set_backend_resource_request_erred(DASHED, "boom", "")
        .await
        .unwrap();
    assert_eq!(
        client
            .list_backend_resources("acc", DASHED, DASHED)
            .await
            .unwrap()
            .len(),
        1
    );
    let new = NewBackendResource {
        name: "acc".into(),
        project: DASHED.into(),
        offering: DASHED.into(),
        backend_id: "acc".into(),
        backend_metadata: serde_json::from_value(json!({"limits": {"cpu": 5}})).unwrap(),
    };
    assert_eq!(
        client.create_backend_resource(&new).await.unwrap().uuid,
        HEX
    );
    let keys = client
        .list_resource_api_keys(&ApiKeyFilter::resource(DASHED))
        .await
        .unwrap();
    assert_eq!(keys[0].client_id(), None);
    client
        .list_resource_api_keys(&ApiKeyFilter::stuck_rotations(
            DASHED,
            "2026-12-01T00:00:00Z",
        ))
        .await
        .unwrap();
    client
        .report_resource_api_key_created(DASHED, "c1", "k1")
        .await
        .unwrap();
    let value = NewKeyValue {
        api_key: "k2".into(),
        client_id: None,
    };
    client.set_resource_api_key(DASHED, &value).await.unwrap();
    let value = NewKeyValue {
        client_id: Some("c2".into()),
        ..value
    };
    client.set_resource_api_key(DASHED, &value).await.unwrap();
    client
        .set_resource_api_key_erred(DASHED, "no")
        .await
        .unwrap();

    let seen = server.requests();
    let line = |i: usize| format!("{} {}?{}", seen[i].method, seen[i].path, seen[i].query);
    assert_eq!(line(0), "GET /api/projects/?slug=proj&field=uuid");
    assert_eq!(
        line(1),
        format!("GET /api/backend-resource-requests/{HEX}/?")
    );
    assert_eq!(
        line(2),
        format!("POST /api/backend-resource-requests/{HEX}/start_processing/?")
    );
    assert!(seen[2].body.is_empty() && seen[3].body.is_empty());
    assert_eq!(
        line(3),
        format!("POST /api/backend-resource-requests/{HEX}/set_done/?")
    );
    assert_eq!(
        seen[4].json(),
        json!({"error_message": "boom", "error_traceback": ""})
    );
    assert_eq!(
        line(5),
        format!("GET /api/backend-resources/?backend_id=acc&project_uuid={HEX}&offering_uuid={HEX}&page_size=100")
    );
    assert_eq!(
        seen[6].json(),
        json!({"name": "acc", "project": HEX, "offering": HEX, "backend_id": "acc",
               "backend_metadata": {"limits": {"cpu": 5}}})
    );
    assert_eq!(
        line(7),
        format!("GET /api/marketplace-resource-api-keys/?resource_uuid={HEX}&page_size=100")
    );
    assert_eq!(
        line(8),
        format!("GET /api/marketplace-resource-api-keys/?offering_uuid={HEX}&state=Updating&modified_before=2026-12-01T00%3A00%3A00Z&page_size=100")
    );
    assert_eq!(
        seen[9].json(),
        json!({"resource": HEX, "client_id": "c1", "api_key": "k1"})
    );
    assert_eq!(
        line(10),
        format!("POST /api/marketplace-resource-api-keys/{HEX}/set_key/?")
    );
    assert_eq!(seen[10].json(), json!({"api_key": "k2"}));
    assert_eq!(seen[11].json(), json!({"api_key": "k2", "client_id": "c2"}));
    assert_eq!(seen[12].json(), json!({"error_message": "no"}));

    // I6 and K2 create something each time: a 5xx that reached Waldur is not repeated, and
    // they must answer 201.
    let failing = serve(|_, _| reply(502, json!({}))).await;
    let client = token_client(&failing);
    assert!(client.create_backend_resource(&new).await.is_err());
    assert!(client
        .report_resource_api_key_created(HEX, "c", "k")
        .await
        .is_err());
    assert_eq!(failing.requests().len(), 2);
    let wrong = serve(|_, _| reply(200, json!({}))).await;
    let error = token_client(&wrong)
        .create_backend_resource(&new)
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(200));
}
