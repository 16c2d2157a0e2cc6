//! Resource import (reference §2.7, I1-I6): a Waldur user asks which backend accounts exist
//! that Waldur does not know (a backend resource request), and the agent offers each one as a
//! backend resource the user may import.

use reqwest::Method;

use crate::waldur::call::{Call, Query};
use crate::waldur::models::{BackendResource, BackendResourceRequest, NewBackendResource};
use crate::waldur::retry::RetryMode;
use crate::waldur::{normalize_uuid, WaldurClient, WaldurError};

impl WaldurClient {
    /// I1 `GET /api/backend-resource-requests/{uuid}/` -> 200 `BackendResourceReq`.
    pub async fn backend_resource_request(
        &self,
        request_uuid: &str,
    ) -> Result<BackendResourceRequest, WaldurError> {
        let call = Call::get(
            "I1 backend_resource_requests_retrieve",
            self.request_url(request_uuid, None),
        );
        self.http.json(&call, &["uuid", "state"]).await
    }

    /// I2 `POST .../{uuid}/start_processing/` without a body -> 200 `{status}` (not read).
    /// Moves the request to Processing, hence retried.
    pub async fn start_backend_resource_request(
        &self,
        request_uuid: &str,
    ) -> Result<(), WaldurError> {
        self.request_action(
            "I2 backend_resource_requests_start_processing",
            request_uuid,
            "start_processing",
            None,
        )
        .await
    }

    /// I3 `POST .../{uuid}/set_done/` without a body -> 200 `{status}` (not read).
    pub async fn set_backend_resource_request_done(
        &self,
        request_uuid: &str,
    ) -> Result<(), WaldurError> {
        self.request_action(
            "I3 backend_resource_requests_set_done",
            request_uuid,
            "set_done",
            None,
        )
        .await
    }

    /// I4 `POST .../{uuid}/set_erred/` `{error_message, error_traceback}` -> 200 `{status}`.
    pub async fn set_backend_resource_request_erred(
        &self,
        request_uuid: &str,
        error_message: &str,
        error_traceback: &str,
    ) -> Result<(), WaldurError> {
        let body = super::error_details(error_message, error_traceback);
        self.request_action(
            "I4 backend_resource_requests_set_erred",
            request_uuid,
            "set_erred",
            Some(&body),
        )
        .await
    }

    /// I5 `GET /api/backend-resources/?backend_id=&project_uuid=&offering_uuid=&page_size=100`
    /// -> 200 `[BackendResource]`, all pages: whether an account was offered already.
    pub async fn list_backend_resources(
        &self,
        backend_id: &str,
        project_uuid: &str,
        offering_uuid: &str,
    ) -> Result<Vec<BackendResource>, WaldurError> {
        let query = Query::new()
            .add("backend_id", backend_id)
            .uuid("project_uuid", project_uuid)
            .uuid("offering_uuid", offering_uuid)
            .add("page_size", "100");
        let url = self.http.url(&["backend-resources"], query);
        let call = Call::get("I5 backend_resources_list", url);
        self.http.json_pages(call, &["uuid"]).await
    }

    /// I6 `POST /api/backend-resources/` `{name, project, offering, backend_id,
    /// backend_metadata}` -> 201 `BackendResource`. It creates a new object each time, so it
    /// is retried only when it provably did not reach Waldur; callers look with I5 first.
    pub async fn create_backend_resource(
        &self,
        resource: &NewBackendResource,
    ) -> Result<BackendResource, WaldurError> {
        let body = NewBackendResource {
            project: normalize_uuid(&resource.project),
            offering: normalize_uuid(&resource.offering),
            ..resource.clone()
        };
        let url = self.http.url(&["backend-resources"], Query::new());
        let call = Call::with_json("I6 backend_resources_create", Method::POST, url, &body)
            .accept(&[201])
            .retry(RetryMode::UnlessDelivered);
        self.http.json(&call, &[]).await
    }

    fn request_url(&self, request_uuid: &str, action: Option<&str>) -> reqwest::Url {
        let uuid = normalize_uuid(request_uuid);
        let mut segments = vec!["backend-resource-requests", uuid.as_str()];
        segments.extend(action);
        self.http.url(&segments, Query::new())
    }

    /// The I2-I4 shape: a POST (with a JSON body or none) answered 200 `{status}`.
    async fn request_action(
        &self,
        endpoint: &'static str,
        request_uuid: &str,
        action: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(), WaldurError> {
        let url = self.request_url(request_uuid, Some(action));
        let call = match body {
            Some(body) => Call::with_json(endpoint, Method::POST, url, body),
            None => Call::post_empty(endpoint, url),
        };
        self.http.send(&call).await.map(drop)
    }
}
