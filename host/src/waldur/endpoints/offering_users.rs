//! Offering users (reference §2.5).

use reqwest::Method;
use waldur_plugin_abi::wire::OfferingUser;

use super::as_strs;
use crate::waldur::call::{Call, Query};
use crate::waldur::decode::required_within;
use crate::waldur::{normalize_uuid, WaldurClient, WaldurError};

/// Read by the username and membership logic: transitions go to `uuid`, users are matched by
/// `user_uuid`, and `state` drives the state machine (§4.3).
const OFFERING_USER_REQUIRED: &[&str] = &["uuid", "user_uuid", "state"];

/// Which offering users U1 lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OfferingUserFilter {
    /// `offering_uuid=`.
    pub offering_uuid: Option<String>,
    /// `user_uuid=`.
    pub user_uuid: Option<String>,
    /// `state=` (repeated).
    pub states: Vec<String>,
    /// `is_restricted=true|false`.
    pub is_restricted: Option<bool>,
    /// `field=` (repeated); empty for full objects.
    pub fields: Vec<String>,
}

impl OfferingUserFilter {
    /// `offering_uuid=<uuid>&is_restricted=false`, as most callers of the reference.
    pub fn offering(offering_uuid: &str) -> OfferingUserFilter {
        OfferingUserFilter {
            offering_uuid: Some(offering_uuid.to_owned()),
            is_restricted: Some(false),
            ..OfferingUserFilter::default()
        }
    }
}

impl WaldurClient {
    /// U1 `GET /api/marketplace-offering-users/?offering_uuid=&user_uuid=&state=...&is_restricted=&field=...&page_size=100`
    /// -> 200, all pages.
    pub async fn list_offering_users(
        &self,
        filter: &OfferingUserFilter,
    ) -> Result<Vec<OfferingUser>, WaldurError> {
        let mut query = Query::new()
            .opt_uuid("offering_uuid", filter.offering_uuid.as_deref())
            .opt_uuid("user_uuid", filter.user_uuid.as_deref())
            .each("state", &filter.states);
        if let Some(restricted) = filter.is_restricted {
            query = query.flag("is_restricted", restricted);
        }
        let url = self.http.url(
            &["marketplace-offering-users"],
            query.fields(&filter.fields).add("page_size", "100"),
        );
        let call = Call::get("U1 marketplace_offering_users_list", url);
        let required = required_within(OFFERING_USER_REQUIRED, &as_strs(&filter.fields));
        self.http.json_pages(call, &required).await
    }

    /// U2 `POST /api/marketplace-offering-users/{uuid}/begin_creating/` without a body -> 200.
    pub async fn begin_creating_offering_user(
        &self,
        offering_user_uuid: &str,
    ) -> Result<(), WaldurError> {
        self.offering_user_transition(
            "U2 marketplace_offering_users_begin_creating",
            offering_user_uuid,
            "begin_creating",
        )
        .await
    }

    /// U3 `PATCH /api/marketplace-offering-users/{uuid}/` `{username}` -> 200 `OfferingUser`.
    pub async fn set_offering_user_username(
        &self,
        offering_user_uuid: &str,
        username: &str,
    ) -> Result<OfferingUser, WaldurError> {
        let url = self.http.url(
            &[
                "marketplace-offering-users",
                &normalize_uuid(offering_user_uuid),
            ],
            Query::new(),
        );
        let call = Call::with_json(
            "U3 marketplace_offering_users_partial_update",
            Method::PATCH,
            url,
            &serde_json::json!({ "username": username }),
        );
        self.http.json(&call, &[]).await
    }

    /// U4 `POST .../{uuid}/set_validation_complete/` without a body -> 200.
    pub async fn set_offering_user_validation_complete(
        &self,
        offering_user_uuid: &str,
    ) -> Result<(), WaldurError> {
        self.offering_user_transition(
            "U4 marketplace_offering_users_set_validation_complete",
            offering_user_uuid,
            "set_validation_complete",
        )
        .await
    }

    /// U5 `POST .../{uuid}/set_pending_account_linking/` `{comment, comment_url}` -> 200. Both
    /// keys are always sent (`comment_url: null` when there is none), as the reference.
    pub async fn set_offering_user_pending_account_linking(
        &self,
        offering_user_uuid: &str,
        comment: &str,
        comment_url: Option<&str>,
    ) -> Result<(), WaldurError> {
        self.offering_user_comment(
            "U5 marketplace_offering_users_set_pending_account_linking",
            offering_user_uuid,
            "set_pending_account_linking",
            comment,
            comment_url,
        )
        .await
    }

    /// U6 `POST .../{uuid}/set_pending_additional_validation/` `{comment, comment_url}` -> 200.
    pub async fn set_offering_user_pending_additional_validation(
        &self,
        offering_user_uuid: &str,
        comment: &str,
        comment_url: Option<&str>,
    ) -> Result<(), WaldurError> {
        self.offering_user_comment(
            "U6 marketplace_offering_users_set_pending_additional_validation",
            offering_user_uuid,
            "set_pending_additional_validation",
            comment,
            comment_url,
        )
        .await
    }

    /// U7 `POST .../{uuid}/set_error_creating/` without a body -> 200.
    pub async fn set_offering_user_error_creating(
        &self,
        offering_user_uuid: &str,
    ) -> Result<(), WaldurError> {
        self.offering_user_transition(
            "U7 marketplace_offering_users_set_error_creating",
            offering_user_uuid,
            "set_error_creating",
        )
        .await
    }

    fn offering_user_action(&self, offering_user_uuid: &str, action: &str) -> reqwest::Url {
        self.http.url(
            &[
                "marketplace-offering-users",
                &normalize_uuid(offering_user_uuid),
                action,
            ],
            Query::new(),
        )
    }

    async fn offering_user_transition(
        &self,
        endpoint: &'static str,
        offering_user_uuid: &str,
        action: &str,
    ) -> Result<(), WaldurError> {
        let call = Call::post_empty(
            endpoint,
            self.offering_user_action(offering_user_uuid, action),
        );
        self.http.send(&call).await.map(|_| ())
    }

    async fn offering_user_comment(
        &self,
        endpoint: &'static str,
        offering_user_uuid: &str,
        action: &str,
        comment: &str,
        comment_url: Option<&str>,
    ) -> Result<(), WaldurError> {
        let body = serde_json::json!({ "comment": comment, "comment_url": comment_url });
        let call = Call::with_json(
            endpoint,
            Method::POST,
            self.offering_user_action(offering_user_uuid, action),
            &body,
        );
        self.http.send(&call).await.map(|_| ())
    }
}
