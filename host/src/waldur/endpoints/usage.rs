//! Usage reporting (reference §2.6).

use jiff::civil::Date;
use reqwest::Method;

use crate::waldur::call::{Call, Query};
use crate::waldur::decode::required_within;
use crate::waldur::models::{
    ComponentUsage, ComponentUserUsage, ComponentUserUsageLimit, SetUsageRequest, UserUsage,
};
use crate::waldur::{normalize_uuid, WaldurClient, WaldurError};

/// Compared with the new totals for idempotent reporting (§3.3).
const USAGE_REQUIRED: &[&str] = &["uuid", "type", "usage"];
/// The parent usage is taken from this URL (§4.4).
const USER_USAGE_REQUIRED: &[&str] = &["component_usage"];
const USER_LIMIT_REQUIRED: &[&str] = &["user", "component_type", "limit"];

impl WaldurClient {
    /// C1 `GET /api/marketplace-component-usages/?resource_uuid=&billing_period=YYYY-MM-01&field=...&page_size=100`
    /// -> 200, all pages. The report reads `uuid, type, usage`.
    pub async fn list_component_usages(
        &self,
        resource_uuid: &str,
        billing_period: Date,
        fields: &[&str],
    ) -> Result<Vec<ComponentUsage>, WaldurError> {
        let query = Query::new()
            .uuid("resource_uuid", resource_uuid)
            .add("billing_period", billing_period.to_string())
            .fields(fields)
            .add("page_size", "100");
        let url = self.http.url(&["marketplace-component-usages"], query);
        let call = Call::get("C1 marketplace_component_usages_list", url);
        self.http
            .json_pages(call, &required_within(USAGE_REQUIRED, fields))
            .await
    }

    /// C2 `GET /api/marketplace-component-user-usages/?resource_uuid=&component_usage__billing_period=YYYY-MM-01&field=...&page_size=100`
    /// -> 200, all pages (note the double underscore in the query key).
    pub async fn list_component_user_usages(
        &self,
        resource_uuid: &str,
        billing_period: Date,
        fields: &[&str],
    ) -> Result<Vec<ComponentUserUsage>, WaldurError> {
        let query = Query::new()
            .uuid("resource_uuid", resource_uuid)
            .add(
                "component_usage__billing_period",
                billing_period.to_string(),
            )
            .fields(fields)
            .add("page_size", "100");
        let url = self.http.url(&["marketplace-component-user-usages"], query);
        let call = Call::get("C2 marketplace_component_user_usages_list", url);
        self.http
            .json_pages(call, &required_within(USER_USAGE_REQUIRED, fields))
            .await
    }

    /// C3 `POST /api/marketplace-component-usages/set_usage/` `{usages: [{type, amount}],
    /// resource, date}` -> **201** only. Sets (creates or replaces) the period's totals, so
    /// repeating it is harmless: retried.
    pub async fn set_usage(&self, request: &SetUsageRequest) -> Result<(), WaldurError> {
        let url = self
            .http
            .url(&["marketplace-component-usages", "set_usage"], Query::new());
        let body = SetUsageRequest {
            resource: normalize_uuid(&request.resource),
            ..request.clone()
        };
        let call = Call::with_json(
            "C3 marketplace_component_usages_set_usage",
            Method::POST,
            url,
            &body,
        )
        .accept(&[201]);
        self.http.send(&call).await.map(|_| ())
    }

    /// C4 `POST /api/marketplace-component-usages/{uuid}/set_user_usages/`
    /// `{usages: [{username, usage, date, user?}]}` -> **201** only. Per-user values are set,
    /// not added: retried.
    pub async fn set_user_usages(
        &self,
        component_usage_uuid: &str,
        usages: &[UserUsage],
    ) -> Result<(), WaldurError> {
        let url = self.http.url(
            &[
                "marketplace-component-usages",
                &normalize_uuid(component_usage_uuid),
                "set_user_usages",
            ],
            Query::new(),
        );
        let call = Call::with_json(
            "C4 marketplace_component_usages_set_user_usages",
            Method::POST,
            url,
            &serde_json::json!({ "usages": usages }),
        )
        .accept(&[201]);
        self.http.send(&call).await.map(|_| ())
    }

    /// C5 `POST /api/marketplace-component-usages/{uuid}/set_user_usage/`
    /// `{username, usage, date, user?}` -> **201** only (historical loader).
    pub async fn set_user_usage(
        &self,
        component_usage_uuid: &str,
        usage: &UserUsage,
    ) -> Result<(), WaldurError> {
        let url = self.http.url(
            &[
                "marketplace-component-usages",
                &normalize_uuid(component_usage_uuid),
                "set_user_usage",
            ],
            Query::new(),
        );
        let call = Call::with_json(
            "C5 marketplace_component_usages_set_user_usage",
            Method::POST,
            url,
            usage,
        )
        .accept(&[201]);
        self.http.send(&call).await.map(|_| ())
    }

    /// C6 `GET /api/component-user-usage-limits/?resource_uuid=&page_size=100` -> 200, all
    /// pages (`user` is a username, `limit` a decimal string).
    pub async fn list_component_user_usage_limits(
        &self,
        resource_uuid: &str,
    ) -> Result<Vec<ComponentUserUsageLimit>, WaldurError> {
        let query = Query::new()
            .uuid("resource_uuid", resource_uuid)
            .add("page_size", "100");
        let url = self.http.url(&["component-user-usage-limits"], query);
        let call = Call::get("C6 component_user_usage_limits_list", url);
        self.http.json_pages(call, USER_LIMIT_REQUIRED).await
    }
}
