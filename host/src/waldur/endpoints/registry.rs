//! Agent registry: identities, services, processors, log shipping (reference §2.1).

use reqwest::Method;

use crate::waldur::call::{Call, Query};
use crate::waldur::models::{
    AgentIdentity, AgentIdentityRequest, AgentLogRecord, AgentProcessor, AgentService,
};
use crate::waldur::retry::RetryMode;
use crate::waldur::{normalize_uuid, WaldurClient, WaldurError};

const IDENTITY_REQUIRED: &[&str] = &["uuid", "name"];
const SERVICE_REQUIRED: &[&str] = &["uuid", "name"];
const PROCESSOR_REQUIRED: &[&str] = &["uuid", "name"];

impl WaldurClient {
    /// A1 `GET /api/marketplace-site-agent-identities/?name=<name>` -> 200.
    ///
    /// The name (`agent-<offering uuid as configured>`) is a name, not a UUID: it is sent
    /// verbatim so identities registered by the reference agent are found again.
    pub async fn list_agent_identities(
        &self,
        name: &str,
    ) -> Result<Vec<AgentIdentity>, WaldurError> {
        let url = self.http.url(
            &["marketplace-site-agent-identities"],
            Query::new().add("name", name),
        );
        let call = Call::get("A1 marketplace_site_agent_identities_list", url);
        self.http.json_pages(call, IDENTITY_REQUIRED).await
    }

    /// A2 `POST /api/marketplace-site-agent-identities/` -> 201.
    ///
    /// Retried only if the request provably did not reach Waldur: a repeat would create a
    /// second identity.
    pub async fn create_agent_identity(
        &self,
        request: &AgentIdentityRequest,
    ) -> Result<AgentIdentity, WaldurError> {
        let url = self
            .http
            .url(&["marketplace-site-agent-identities"], Query::new());
        let call = Call::with_json(
            "A2 marketplace_site_agent_identities_create",
            Method::POST,
            url,
            &normalized(request),
        )
        .accept(&[201])
        .retry(RetryMode::UnlessDelivered);
        self.http.json(&call, IDENTITY_REQUIRED).await
    }

    /// A3 `PUT /api/marketplace-site-agent-identities/{uuid}/` -> 200 (same body as A2).
    pub async fn update_agent_identity(
        &self,
        identity_uuid: &str,
        request: &AgentIdentityRequest,
    ) -> Result<AgentIdentity, WaldurError> {
        let url = self.http.url(
            &[
                "marketplace-site-agent-identities",
                &normalize_uuid(identity_uuid),
            ],
            Query::new(),
        );
        let call = Call::with_json(
            "A3 marketplace_site_agent_identities_update",
            Method::PUT,
            url,
            &normalized(request),
        );
        self.http.json(&call, IDENTITY_REQUIRED).await
    }

    /// The reference's `AgentIdentityManager.register_identity`: A1 by `request.name`, then A3
    /// on the first match or A2 when there is none.
    pub async fn register_agent_identity(
        &self,
        request: &AgentIdentityRequest,
    ) -> Result<AgentIdentity, WaldurError> {
        let existing = self.list_agent_identities(&request.name).await?;
        match existing.first() {
            Some(identity) => self.update_agent_identity(&identity.uuid, request).await,
            None => self.create_agent_identity(request).await,
        }
    }

    /// A4 `POST /api/marketplace-site-agent-identities/{uuid}/register_service/` `{name, mode}`
    /// -> 200/201. Get-or-create by name on Waldur's side, hence retried.
    pub async fn register_service(
        &self,
        identity_uuid: &str,
        name: &str,
        mode: &str,
    ) -> Result<AgentService, WaldurError> {
        let url = self.http.url(
            &[
                "marketplace-site-agent-identities",
                &normalize_uuid(identity_uuid),
                "register_service",
            ],
            Query::new(),
        );
        let body = serde_json::json!({ "name": name, "mode": mode });
        let call = Call::with_json(
            "A4 marketplace_site_agent_identities_register_service",
            Method::POST,
            url,
            &body,
        )
        .accept(&[200, 201]);
        self.http.json(&call, SERVICE_REQUIRED).await
    }

    /// A5 `POST /api/marketplace-site-agent-services/{uuid}/register_processor/`
    /// `{name, backend_type, backend_version}` -> 200/201. Get-or-create, hence retried.
    pub async fn register_processor(
        &self,
        service_uuid: &str,
        name: &str,
        backend_type: &str,
        backend_version: &str,
    ) -> Result<AgentProcessor, WaldurError> {
        let url = self.http.url(
            &[
                "marketplace-site-agent-services",
                &normalize_uuid(service_uuid),
                "register_processor",
            ],
            Query::new(),
        );
        let body = serde_json::json!({
            "name": name,
            "backend_type": backend_type,
            "backend_version": backend_version,
        });
        let call = Call::with_json(
            "A5 marketplace_site_agent_services_register_processor",
            Method::POST,
            url,
            &body,
        )
        .accept(&[200, 201]);
        self.http.json(&call, PROCESSOR_REQUIRED).await
    }

    /// A9 `POST {waldur_api_url}marketplace-site-agent-logs/` with a JSON array of records
    /// (the caller batches at most 100) -> any 2xx. Returns false when Waldur answers 404
    /// (log shipping not available: the reference drops the batch silently).
    ///
    /// Retried only if the request provably did not reach Waldur: a repeat would duplicate
    /// log lines.
    pub async fn ship_logs(&self, records: &[AgentLogRecord]) -> Result<bool, WaldurError> {
        let url = self
            .http
            .url(&["marketplace-site-agent-logs"], Query::new());
        let records: Vec<AgentLogRecord> = records
            .iter()
            .map(|r| AgentLogRecord {
                agent_identity_uuid: normalize_uuid(&r.agent_identity_uuid),
                ..r.clone()
            })
            .collect();
        let call = Call::with_json(
            "A9 marketplace_site_agent_logs",
            Method::POST,
            url,
            &records,
        )
        .accept(&[200, 201, 202, 204, 404])
        .retry(RetryMode::UnlessDelivered);
        Ok(self.http.send(&call).await? != 404)
    }
}

/// The request with its offering UUID normalised (the name stays verbatim, see A1).
fn normalized(request: &AgentIdentityRequest) -> AgentIdentityRequest {
    AgentIdentityRequest {
        offering: normalize_uuid(&request.offering),
        ..request.clone()
    }
}
