//! Provider resources (reference §2.4).

use reqwest::Method;
use serde_json::{Map, Value};
use waldur_plugin_abi::wire::{Endpoint, JsonMap, Limits, ProjectUser, WaldurResource};

use super::as_strs;
use crate::dry_run::Assumed;
use crate::waldur::call::{Call, Query, PLANNED_STATUS};
use crate::waldur::decode::{decode_one, required_within};
use crate::waldur::models::{Detail, MembershipSyncOutcome, MembershipSyncStatus, Status};
use crate::waldur::{normalize_uuid, WaldurClient, WaldurError};

/// Dereferenced without a guard on the order path (§0.6): `offering_plugin_options` and
/// `limits` are read as objects, `backend_id` as a string.
const RESOURCE_REQUIRED: &[&str] = &[
    "uuid",
    "slug",
    "project_uuid",
    "backend_id",
    "limits",
    "offering_plugin_options",
];

/// Read by the reference for team members (and required by its client).
const PROJECT_USER_REQUIRED: &[&str] = &["uuid", "username", "role"];

/// The `field=` set of the membership sync's resource listing (§2.4.1).
pub const MEMBERSHIP_RESOURCE_FIELDS: &[&str] = &[
    "uuid",
    "backend_id",
    "name",
    "slug",
    "state",
    "project_uuid",
    "project_slug",
    "customer_slug",
    "restrict_member_access",
    "backend_metadata",
    "limits",
    "paused",
    "downscaled",
    "attributes",
    "offering_plugin_options",
    "offering_backend_id",
    "project_name",
    "project_description",
    "customer_uuid",
    "customer_name",
    "end_date",
    "end_date_updated_at",
    "project_end_date",
];

/// The `field=` set of the report's resource listing (§2.4.1).
pub const REPORT_RESOURCE_FIELDS: &[&str] = &[
    "uuid",
    "backend_id",
    "name",
    "slug",
    "state",
    "project_uuid",
    "project_slug",
    "customer_slug",
    "limits",
    "backend_metadata",
    "attributes",
    "offering_plugin_options",
    "offering_backend_id",
];

/// The `field=` set of the historical loader's resource listing (§2.4.1).
pub const HISTORICAL_RESOURCE_FIELDS: &[&str] = &["uuid", "backend_id", "name"];

/// Which resources R1 lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceFilter {
    /// `offering_uuid=`.
    pub offering_uuid: Option<String>,
    /// `project_uuid=`.
    pub project_uuid: Option<String>,
    /// `backend_id=`.
    pub backend_id: Option<String>,
    /// `state=` (repeated).
    pub states: Vec<String>,
    /// `field=` (repeated); empty for full objects.
    pub fields: Vec<String>,
}

impl ResourceFilter {
    /// `offering_uuid=<uuid>&state=OK&state=Erred`, full objects.
    pub fn offering(offering_uuid: &str) -> ResourceFilter {
        ResourceFilter {
            offering_uuid: Some(offering_uuid.to_owned()),
            states: vec!["OK".into(), "Erred".into()],
            ..ResourceFilter::default()
        }
    }

    /// Replaces the `field=` selection.
    pub fn with_fields(mut self, fields: &[&str]) -> ResourceFilter {
        self.fields = fields.iter().map(|f| (*f).to_owned()).collect();
        self
    }
}

impl WaldurClient {
    /// R1 `GET /api/marketplace-provider-resources/?offering_uuid=&state=...&field=...&page_size=100`
    /// (`&project_uuid=`, `&backend_id=` when given) -> 200, all pages.
    pub async fn list_provider_resources(
        &self,
        filter: &ResourceFilter,
    ) -> Result<Vec<WaldurResource>, WaldurError> {
        let query = Query::new()
            .opt_uuid("offering_uuid", filter.offering_uuid.as_deref())
            .opt_uuid("project_uuid", filter.project_uuid.as_deref())
            .each("backend_id", filter.backend_id.as_slice())
            .each("state", &filter.states)
            .fields(&filter.fields)
            .add("page_size", "100");
        let url = self.http.url(&["marketplace-provider-resources"], query);
        let call = Call::get("R1 marketplace_provider_resources_list", url);
        let required = required_within(RESOURCE_REQUIRED, &as_strs(&filter.fields));
        self.http.json_pages(call, &required).await
    }

    /// R2 `GET /api/marketplace-provider-resources/{uuid}/` (`fields` empty) or with
    /// `?field=...` (the report uses `uuid, name, backend_id`) -> 200.
    pub async fn provider_resource(
        &self,
        resource_uuid: &str,
        fields: &[&str],
    ) -> Result<WaldurResource, WaldurError> {
        let url = self.http.url(
            &[
                "marketplace-provider-resources",
                &normalize_uuid(resource_uuid),
            ],
            Query::new().fields(fields),
        );
        let call = Call::get("R2 marketplace_provider_resources_retrieve", url);
        let mut resource: WaldurResource = self
            .http
            .json(&call, &required_within(RESOURCE_REQUIRED, fields))
            .await?;
        if let Some(backend_id) = self.assumed(Assumed::ResourceBackendId, resource_uuid) {
            resource.backend_id = backend_id;
        }
        Ok(resource)
    }

    /// R3 `GET /api/marketplace-provider-resources/{uuid}/team/` (`?has_consent=true` when
    /// asked) -> 200 `[ProjectUser]`. The action has no pagination parameters; a `Link` header
    /// would still be followed.
    pub async fn resource_team(
        &self,
        resource_uuid: &str,
        has_consent: bool,
    ) -> Result<Vec<ProjectUser>, WaldurError> {
        let query = if has_consent {
            Query::new().flag("has_consent", true)
        } else {
            Query::new()
        };
        let url = self.http.url(
            &[
                "marketplace-provider-resources",
                &normalize_uuid(resource_uuid),
                "team",
            ],
            query,
        );
        let call = Call::get("R3 marketplace_provider_resources_team_list", url);
        self.http.json_pages(call, PROJECT_USER_REQUIRED).await
    }

    /// R4 `POST .../{uuid}/set_backend_id/` `{backend_id}` -> 200 `{status}`.
    pub async fn set_resource_backend_id(
        &self,
        resource_uuid: &str,
        backend_id: &str,
    ) -> Result<Status, WaldurError> {
        let body = serde_json::json!({ "backend_id": backend_id });
        let status = self
            .resource_status_action(
                "R4 marketplace_provider_resources_set_backend_id",
                resource_uuid,
                "set_backend_id",
                &body,
            )
            .await?;
        self.assume(Assumed::ResourceBackendId, resource_uuid, backend_id);
        Ok(status)
    }

    /// R5 `POST .../{uuid}/set_limits/` `{limits: {component: number}}` -> 200 `{status}`.
    /// Whole numbers are sent as JSON integers (`{"cpu": 5}`), as the reference does.
    pub async fn set_resource_limits(
        &self,
        resource_uuid: &str,
        limits: &Limits,
    ) -> Result<Status, WaldurError> {
        let body = serde_json::json!({ "limits": limits_json(limits) });
        self.resource_status_action(
            "R5 marketplace_provider_resources_set_limits",
            resource_uuid,
            "set_limits",
            &body,
        )
        .await
    }

    /// R6 `POST .../{uuid}/set_backend_metadata/` `{backend_metadata}` -> 200 `{status}`.
    pub async fn set_resource_backend_metadata(
        &self,
        resource_uuid: &str,
        backend_metadata: &JsonMap,
    ) -> Result<Status, WaldurError> {
        let body = serde_json::json!({ "backend_metadata": backend_metadata });
        self.resource_status_action(
            "R6 marketplace_provider_resources_set_backend_metadata",
            resource_uuid,
            "set_backend_metadata",
            &body,
        )
        .await
    }

    /// R7 `POST .../{uuid}/set_endpoints/` `{endpoints: [{name, url}]}` -> 200 `{status}`.
    pub async fn set_resource_endpoints(
        &self,
        resource_uuid: &str,
        endpoints: &[Endpoint],
    ) -> Result<Status, WaldurError> {
        let body = serde_json::json!({ "endpoints": endpoints });
        self.resource_status_action(
            "R7 marketplace_provider_resources_set_endpoints",
            resource_uuid,
            "set_endpoints",
            &body,
        )
        .await
    }

    /// R8 `POST .../{uuid}/refresh_last_sync/` without a body -> 200.
    pub async fn refresh_resource_last_sync(&self, resource_uuid: &str) -> Result<(), WaldurError> {
        let call = Call::post_empty(
            "R8 marketplace_provider_resources_refresh_last_sync",
            self.resource_action(resource_uuid, "refresh_last_sync"),
        );
        self.http.send(&call).await.map(|_| ())
    }

    /// R9 `POST .../{uuid}/set_as_ok/` without a body -> 200.
    pub async fn set_resource_ok(&self, resource_uuid: &str) -> Result<(), WaldurError> {
        let call = Call::post_empty(
            "R9 marketplace_provider_resources_set_as_ok",
            self.resource_action(resource_uuid, "set_as_ok"),
        );
        self.http.send(&call).await.map(|_| ())
    }

    /// R10 `POST .../{uuid}/set_as_erred/` `{error_message, error_traceback}` -> 200.
    pub async fn set_resource_erred(
        &self,
        resource_uuid: &str,
        error_message: &str,
        error_traceback: &str,
    ) -> Result<(), WaldurError> {
        let body = super::error_details(error_message, error_traceback);
        let call = Call::with_json(
            "R10 marketplace_provider_resources_set_as_erred",
            Method::POST,
            self.resource_action(resource_uuid, "set_as_erred"),
            &body,
        );
        self.http.send(&call).await.map(|_| ())
    }

    /// R11 `POST .../{uuid}/set_membership_sync_statuses/` `{statuses: [...]}` -> 200
    /// `{stored, skipped}` or 409 `{detail}`. Statuses are replaced, not appended: retried.
    pub async fn set_membership_sync_statuses(
        &self,
        resource_uuid: &str,
        statuses: &[MembershipSyncStatus],
    ) -> Result<MembershipSyncOutcome, WaldurError> {
        let statuses: Vec<MembershipSyncStatus> = statuses
            .iter()
            .map(|s| MembershipSyncStatus {
                user_uuid: s.user_uuid.as_deref().map(normalize_uuid),
                resource_project_uuid: s.resource_project_uuid.as_deref().map(normalize_uuid),
                ..s.clone()
            })
            .collect();
        let call = Call::with_json(
            "R11 marketplace_provider_resources_set_membership_sync_statuses",
            Method::POST,
            self.resource_action(resource_uuid, "set_membership_sync_statuses"),
            &serde_json::json!({ "statuses": statuses }),
        )
        .accept(&[200, 409])
        .planned_reply(r#"{"stored": 0, "skipped": 0}"#);
        let reply = self.http.execute(&call).await?;
        if reply.status == 409 {
            let detail: Detail = decode_one(&call, &reply.body, &["detail"])?;
            return Ok(MembershipSyncOutcome::Conflict {
                detail: detail.detail,
            });
        }
        #[derive(serde::Deserialize)]
        struct Stored {
            stored: u64,
            skipped: u64,
        }
        let stored: Stored = decode_one(&call, &reply.body, &["stored", "skipped"])?;
        Ok(MembershipSyncOutcome::Stored {
            stored: stored.stored,
            skipped: stored.skipped,
        })
    }

    /// R12 `GET /api/marketplace-resources/?offering_uuid=&state=...&page_size=100` (the
    /// consumer endpoint, used by the `sync_resource_limits` tool) -> 200, all pages.
    pub async fn list_marketplace_resources(
        &self,
        offering_uuid: &str,
        states: &[&str],
    ) -> Result<Vec<WaldurResource>, WaldurError> {
        let query = Query::new()
            .uuid("offering_uuid", offering_uuid)
            .each("state", states)
            .add("page_size", "100");
        let url = self.http.url(&["marketplace-resources"], query);
        let call = Call::get("R12 marketplace_resources_list", url);
        self.http.json_pages(call, &["uuid", "backend_id"]).await
    }

    fn resource_action(&self, resource_uuid: &str, action: &str) -> reqwest::Url {
        self.http.url(
            &[
                "marketplace-provider-resources",
                &normalize_uuid(resource_uuid),
                action,
            ],
            Query::new(),
        )
    }

    /// The R4-R7 shape: POST a JSON body, 200 `{status}` (required, as the reference's client
    /// parses it).
    async fn resource_status_action(
        &self,
        endpoint: &'static str,
        resource_uuid: &str,
        action: &str,
        body: &Value,
    ) -> Result<Status, WaldurError> {
        let call = Call::with_json(
            endpoint,
            Method::POST,
            self.resource_action(resource_uuid, action),
            body,
        )
        .planned_reply(PLANNED_STATUS);
        self.http.json(&call, &["status"]).await
    }
}

/// Limits as JSON, whole numbers as integers.
fn limits_json(limits: &Limits) -> Map<String, Value> {
    limits
        .iter()
        .map(|(name, value)| {
            let json = if value.fract() == 0.0 && value.abs() < 9.0e15 {
                Value::from(*value as i64)
            } else {
                Value::from(*value)
            };
            (name.clone(), json)
        })
        .collect()
}
