//! Identity, version and offering context (reference §2.2).

use reqwest::Method;
use waldur_plugin_abi::wire::JsonMap;

use crate::waldur::call::{Call, Query};
use crate::waldur::decode::required_within;
use crate::waldur::models::{
    CheckUniqueBackendIdResponse, OfferingUserAttributeConfig, Plan, ProjectAccount,
    ProviderOffering, ServiceProvider, SshKey, UserMe, Version,
};
use crate::waldur::retry::RetryMode;
use crate::waldur::{normalize_uuid, WaldurClient, WaldurError};

/// Dereferenced without a guard by the reference (§0.6, §6.2): `components` is iterated,
/// `customer_uuid` looked up, `plugin_options` read.
const OFFERING_REQUIRED: &[&str] = &["components", "customer_uuid", "plugin_options"];

impl WaldurClient {
    /// The `field=` set the reference's processors read an offering with (B3 (a)).
    pub const PROCESSOR_OFFERING_FIELDS: &'static [&'static str] = &[
        "components",
        "customer_uuid",
        "partitions",
        "plugin_options",
    ];

    /// The `field=` set of the diagnostics tool's offering read (B3 (d)).
    pub const DIAGNOSTICS_OFFERING_FIELDS: &'static [&'static str] = &[
        "uuid",
        "name",
        "customer_name",
        "state",
        "components",
        "backend_id",
    ];

    /// B1 `GET /api/version/` -> 200 `{version}`.
    pub async fn version(&self) -> Result<Version, WaldurError> {
        let url = self.http.url(&["version"], Query::new());
        let call = Call::get("B1 version_retrieve", url);
        self.http.json(&call, &["version"]).await
    }

    /// B2 `GET /api/users/me/` -> 200; `fields` empty for the processors, `["uuid"]` for the
    /// readiness probe.
    pub async fn users_me(&self, fields: &[&str]) -> Result<UserMe, WaldurError> {
        let url = self.http.url(&["users", "me"], Query::new().fields(fields));
        let call = Call::get("B2 users_me_retrieve", url);
        self.http.json(&call, &[]).await
    }

    /// B3 `GET /api/marketplace-provider-offerings/{uuid}/?field=...` -> 200. Of `components`,
    /// `customer_uuid` (non-null) and `plugin_options`, those selected (all when `fields` is
    /// empty) must be present.
    pub async fn provider_offering(
        &self,
        offering_uuid: &str,
        fields: &[&str],
    ) -> Result<ProviderOffering, WaldurError> {
        let url = self.http.url(
            &[
                "marketplace-provider-offerings",
                &normalize_uuid(offering_uuid),
            ],
            Query::new().fields(fields),
        );
        let call = Call::get("B3 marketplace_provider_offerings_retrieve", url);
        self.http
            .json(&call, &required_within(OFFERING_REQUIRED, fields))
            .await
    }

    /// B4 `GET /api/marketplace-service-providers/?customer_uuid=<uuid>&field=uuid` -> 200.
    pub async fn list_service_providers(
        &self,
        customer_uuid: &str,
    ) -> Result<Vec<ServiceProvider>, WaldurError> {
        let url = self.http.url(
            &["marketplace-service-providers"],
            Query::new()
                .uuid("customer_uuid", customer_uuid)
                .fields(&["uuid"]),
        );
        let call = Call::get("B4 marketplace_service_providers_list", url);
        self.http.json_pages(call, &["uuid"]).await
    }

    /// B4, first item: the service provider of the offering's customer. An empty list is an
    /// error (the reference's `[0]` raises).
    pub async fn service_provider_for_customer(
        &self,
        customer_uuid: &str,
    ) -> Result<ServiceProvider, WaldurError> {
        self.list_service_providers(customer_uuid)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| WaldurError::Unexpected {
                endpoint: "B4 marketplace_service_providers_list",
                message: format!(
                    "no service provider for customer {}",
                    normalize_uuid(customer_uuid)
                ),
            })
    }

    /// B5 `GET /api/marketplace-provider-offerings/{uuid}/user-attribute-config/` -> 200.
    /// (The reference falls back to `username, full_name, email` on any error and caches the
    /// answer 300 s; both are the caller's business.)
    pub async fn offering_user_attribute_config(
        &self,
        offering_uuid: &str,
    ) -> Result<OfferingUserAttributeConfig, WaldurError> {
        let url = self.http.url(
            &[
                "marketplace-provider-offerings",
                &normalize_uuid(offering_uuid),
                "user-attribute-config",
            ],
            Query::new(),
        );
        let call = Call::get(
            "B5 marketplace_provider_offerings_user_attribute_config_retrieve",
            url,
        );
        self.http.json(&call, &["exposed_fields"]).await
    }

    /// B6 `POST /api/marketplace-provider-offerings/{uuid}/check_unique_backend_id/`
    /// `{backend_id, check_all_offerings, use_offering_rules: false}` -> 200 `{is_unique}`.
    /// A read-only check, hence retried.
    pub async fn check_unique_backend_id(
        &self,
        offering_uuid: &str,
        backend_id: &str,
        check_all_offerings: bool,
    ) -> Result<bool, WaldurError> {
        let url = self.http.url(
            &[
                "marketplace-provider-offerings",
                &normalize_uuid(offering_uuid),
                "check_unique_backend_id",
            ],
            Query::new(),
        );
        let body = serde_json::json!({
            "backend_id": backend_id,
            "check_all_offerings": check_all_offerings,
            "use_offering_rules": false,
        });
        let call = Call::with_json(
            "B6 marketplace_provider_offerings_check_unique_backend_id",
            Method::POST,
            url,
            &body,
        );
        let answer: CheckUniqueBackendIdResponse = self.http.json(&call, &["is_unique"]).await?;
        Ok(answer.is_unique)
    }

    /// B7 `GET /api/marketplace-provider-offerings/{uuid}/list_project_service_accounts/`
    /// (`page_size=100`) -> 200 `[ProjectServiceAccount]`, all pages.
    pub async fn list_project_service_accounts(
        &self,
        offering_uuid: &str,
    ) -> Result<Vec<ProjectAccount>, WaldurError> {
        self.offering_accounts(
            "B7 marketplace_provider_offerings_list_project_service_accounts_list",
            offering_uuid,
            "list_project_service_accounts",
        )
        .await
    }

    /// B8 `GET /api/marketplace-provider-offerings/{uuid}/list_course_accounts/`
    /// (`page_size=100`) -> 200 `[CourseAccount]`, all pages.
    pub async fn list_course_accounts(
        &self,
        offering_uuid: &str,
    ) -> Result<Vec<ProjectAccount>, WaldurError> {
        self.offering_accounts(
            "B8 marketplace_provider_offerings_list_course_accounts_list",
            offering_uuid,
            "list_course_accounts",
        )
        .await
    }

    async fn offering_accounts(
        &self,
        endpoint: &'static str,
        offering_uuid: &str,
        action: &str,
    ) -> Result<Vec<ProjectAccount>, WaldurError> {
        let url = self.http.url(
            &[
                "marketplace-provider-offerings",
                &normalize_uuid(offering_uuid),
                action,
            ],
            Query::new().add("page_size", "100"),
        );
        self.http
            .json_pages(Call::get(endpoint, url), &["project_uuid", "state"])
            .await
    }

    /// B11 `GET /api/marketplace-service-providers/{uuid}/keys/` -> 200 `[SshKey]`.
    pub async fn list_service_provider_keys(
        &self,
        service_provider_uuid: &str,
    ) -> Result<Vec<SshKey>, WaldurError> {
        let url = self.http.url(
            &[
                "marketplace-service-providers",
                &normalize_uuid(service_provider_uuid),
                "keys",
            ],
            Query::new(),
        );
        let call = Call::get("B11 marketplace_service_providers_keys_list", url);
        self.http.json_pages(call, &["uuid", "public_key"]).await
    }

    /// B13 `GET /api/marketplace-plans/{uuid}/` -> 200 (`name` and `quotas` are read).
    pub async fn plan(&self, plan_uuid: &str) -> Result<Plan, WaldurError> {
        let url = self.http.url(
            &["marketplace-plans", &normalize_uuid(plan_uuid)],
            Query::new(),
        );
        let call = Call::get("B13 marketplace_plans_retrieve", url);
        self.http.json(&call, &["name", "quotas"]).await
    }

    /// B9 `POST /api/marketplace-provider-offerings/{uuid}/create_offering_component/`
    /// `OfferingComponentRequest` -> 201 (body not read). It creates a component each time,
    /// so it is retried only when it provably did not reach Waldur.
    pub async fn create_offering_component(
        &self,
        offering_uuid: &str,
        component: &JsonMap,
    ) -> Result<(), WaldurError> {
        let call = Call::with_json(
            "B9 marketplace_provider_offerings_create_offering_component",
            Method::POST,
            self.offering_action(offering_uuid, "create_offering_component"),
            component,
        )
        .accept(&[201])
        .retry(RetryMode::UnlessDelivered);
        self.http.send(&call).await.map(|_| ())
    }

    /// B10 `POST /api/marketplace-provider-offerings/{uuid}/update_offering_component/`
    /// `UpdateOfferingComponentRequest` (B9's body plus the component's `uuid`) -> 200 (body
    /// not read). Sets values, hence retried.
    pub async fn update_offering_component(
        &self,
        offering_uuid: &str,
        component: &JsonMap,
    ) -> Result<(), WaldurError> {
        let call = Call::with_json(
            "B10 marketplace_provider_offerings_update_offering_component",
            Method::POST,
            self.offering_action(offering_uuid, "update_offering_component"),
            component,
        );
        self.http.send(&call).await.map(|_| ())
    }

    fn offering_action(&self, offering_uuid: &str, action: &str) -> reqwest::Url {
        self.http.url(
            &[
                "marketplace-provider-offerings",
                &normalize_uuid(offering_uuid),
                action,
            ],
            Query::new(),
        )
    }
}
