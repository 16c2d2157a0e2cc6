//! Resource API keys (reference §2.7, K1-K4): keys the backend mints for a resource and
//! Waldur keeps (encrypted) for its users.

use reqwest::Method;
use serde_json::json;

use crate::waldur::call::{Call, Query};
use crate::waldur::models::ResourceApiKey;
use crate::waldur::retry::RetryMode;
use crate::waldur::{normalize_uuid, WaldurClient, WaldurError};

/// Which keys K1 lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiKeyFilter {
    /// `resource_uuid=`.
    pub resource_uuid: Option<String>,
    /// `offering_uuid=`.
    pub offering_uuid: Option<String>,
    /// `state=` (repeated).
    pub states: Vec<String>,
    /// `modified_before=` (ISO 8601), for the event-mode sweep of stuck rotations.
    pub modified_before: Option<String>,
}

impl ApiKeyFilter {
    /// Every key of one resource.
    pub fn resource(resource_uuid: &str) -> ApiKeyFilter {
        ApiKeyFilter {
            resource_uuid: Some(resource_uuid.to_owned()),
            ..ApiKeyFilter::default()
        }
    }

    /// The offering's keys in state Updating since before `modified_before`.
    pub fn stuck_rotations(offering_uuid: &str, modified_before: &str) -> ApiKeyFilter {
        ApiKeyFilter {
            offering_uuid: Some(offering_uuid.to_owned()),
            states: vec!["Updating".into()],
            modified_before: Some(modified_before.to_owned()),
            ..ApiKeyFilter::default()
        }
    }
}

/// The body of K3 `set_key`: the new key, and its new public id when the backend changed it
/// (an S3 access key rotates together with its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKeyValue {
    pub api_key: String,
    pub client_id: Option<String>,
}

impl WaldurClient {
    /// K1 `GET /api/marketplace-resource-api-keys/?resource_uuid=` or
    /// `?offering_uuid=&state=Updating&modified_before=` (`page_size=100`) -> 200
    /// `[ResourceApiKeyStatus]`, all pages.
    pub async fn list_resource_api_keys(
        &self,
        filter: &ApiKeyFilter,
    ) -> Result<Vec<ResourceApiKey>, WaldurError> {
        let query = Query::new()
            .opt_uuid("resource_uuid", filter.resource_uuid.as_deref())
            .opt_uuid("offering_uuid", filter.offering_uuid.as_deref())
            .each("state", &filter.states);
        let query = match &filter.modified_before {
            Some(before) => query.add("modified_before", before.as_str()),
            None => query,
        };
        let url = self.http.url(
            &["marketplace-resource-api-keys"],
            query.add("page_size", "100"),
        );
        let call = Call::get("K1 marketplace_resource_api_keys_list", url);
        self.http.json_pages(call, &["uuid"]).await
    }

    /// K2 `POST /api/marketplace-resource-api-keys/report_created/` `{resource, client_id,
    /// api_key}` -> 201 (body not read). Each call records a new key, so it is retried only
    /// when it provably did not reach Waldur.
    pub async fn report_resource_api_key_created(
        &self,
        resource_uuid: &str,
        client_id: &str,
        api_key: &str,
    ) -> Result<(), WaldurError> {
        let url = self.http.url(
            &["marketplace-resource-api-keys", "report_created"],
            Query::new(),
        );
        let body = json!({
            "resource": normalize_uuid(resource_uuid),
            "client_id": client_id,
            "api_key": api_key,
        });
        let call = Call::with_json(
            "K2 marketplace_resource_api_keys_report_created",
            Method::POST,
            url,
            &body,
        )
        .accept(&[201])
        .retry(RetryMode::UnlessDelivered);
        self.http.send(&call).await.map(drop)
    }

    /// K3 `POST .../{uuid}/set_key/` `{api_key, client_id?}` -> 200 (body not read). Sets the
    /// value, hence retried.
    pub async fn set_resource_api_key(
        &self,
        api_key_uuid: &str,
        value: &NewKeyValue,
    ) -> Result<(), WaldurError> {
        let mut body = json!({ "api_key": value.api_key });
        if let Some(client_id) = &value.client_id {
            body["client_id"] = json!(client_id);
        }
        self.key_action(
            "K3 marketplace_resource_api_keys_set_key",
            api_key_uuid,
            "set_key",
            &body,
        )
        .await
    }

    /// K4 `POST .../{uuid}/set_erred/` `{error_message}` -> 200 (body not read).
    pub async fn set_resource_api_key_erred(
        &self,
        api_key_uuid: &str,
        error_message: &str,
    ) -> Result<(), WaldurError> {
        self.key_action(
            "K4 marketplace_resource_api_keys_set_erred",
            api_key_uuid,
            "set_erred",
            &json!({ "error_message": error_message }),
        )
        .await
    }

    async fn key_action(
        &self,
        endpoint: &'static str,
        api_key_uuid: &str,
        action: &str,
        body: &serde_json::Value,
    ) -> Result<(), WaldurError> {
        let url = self.http.url(
            &[
                "marketplace-resource-api-keys",
                &normalize_uuid(api_key_uuid),
                action,
            ],
            Query::new(),
        );
        let call = Call::with_json(endpoint, Method::POST, url, body);
        self.http.send(&call).await.map(drop)
    }
}
