//! The federation backend of one offering: its settings, the target Waldur, the component
//! mapping, the agent's host callbacks (the source Waldur) and what is worth remembering
//! between calls.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{json, Value};
use waldur_plugin_abi::sdk::components::ComponentMapper;
use waldur_plugin_abi::wire::{BackendComponents, JsonMap, RuntimeContext};
use waldur_plugin_abi::{Error, Host, Result};

use crate::bridge::IdentityBridge;
use crate::settings::FederationSettings;
use crate::target::Target;

/// Facts that do not change while the agent runs, read once from the target.
#[derive(Debug, Default)]
pub(crate) struct Remembered {
    /// Role name -> target role uuid.
    pub roles: BTreeMap<String, String>,
    /// Source identity -> target user uuid (only successful resolutions).
    pub users: BTreeMap<String, String>,
    /// The plan of the target offering new orders use (`Some(None)`: it has none).
    pub plan_url: Option<Option<String>>,
    /// Facts the agent passed after construction.
    pub runtime: RuntimeContext,
}

pub struct Federation {
    pub(crate) settings: FederationSettings,
    pub(crate) target: Target,
    pub(crate) bridge: IdentityBridge,
    pub(crate) mapper: ComponentMapper,
    pub(crate) components: BackendComponents,
    pub(crate) host: Host,
    pub(crate) remembered: Mutex<Remembered>,
}

impl Federation {
    pub fn open(settings: &JsonMap, components: BackendComponents, host: Host) -> Result<Self> {
        let parsed = FederationSettings::parse(settings)?;
        let target = Target::new(&parsed.api_url, &parsed.api_token, parsed.request_timeout)?;
        Ok(Self {
            mapper: ComponentMapper::new(&components)?,
            bridge: IdentityBridge::new(target.clone(), &parsed.identity_bridge_source),
            settings: parsed,
            target,
            components,
            host,
            remembered: Mutex::new(Remembered::default()),
        })
    }

    pub(crate) fn remembered(&self) -> std::sync::MutexGuard<'_, Remembered> {
        // A panic while holding it leaves only caches behind: still usable.
        self.remembered.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The source offering's uuid (from the agent's runtime context).
    pub(crate) fn source_offering_uuid(&self) -> Result<String> {
        let uuid = self.remembered().runtime.offering_uuid.clone();
        if uuid.is_empty() {
            return Err(Error::internal(
                "the agent did not pass the source offering (set_runtime_context)",
            ));
        }
        Ok(uuid)
    }

    /// Every item of a list on the SOURCE Waldur (the host API answers one page per call).
    pub(crate) fn source_list(&self, path: &str, query: &Value) -> Result<Vec<Value>> {
        const PAGE: u64 = 200;
        let mut items = Vec::new();
        for page in 1.. {
            let mut paged = query.clone();
            if let Some(map) = paged.as_object_mut() {
                map.insert("page".into(), json!(page));
                map.insert("page_size".into(), json!(PAGE));
            }
            let answer = self.host.waldur_get(path, &paged)?;
            let Value::Array(batch) = answer else {
                return Err(Error::backend(format!(
                    "source Waldur: {path} did not answer a list"
                )));
            };
            let full = batch.len() as u64 == PAGE;
            items.extend(batch);
            if !full {
                break;
            }
        }
        Ok(items)
    }

    /// A write to the SOURCE Waldur through the agent.
    pub(crate) fn source_write(&self, method: &str, path: &str, body: &Value) -> Result<Value> {
        self.host
            .waldur_request(method, path, &Value::Object(JsonMap::new()), Some(body))
    }

    /// Is the target reachable? Its resources and orders of the offering must be readable.
    pub(crate) fn target_reachable(&self) -> std::result::Result<(), Error> {
        let offering = ("offering_uuid", self.settings.offering_uuid.clone());
        let one = ("page_size", "1".to_string());
        self.target
            .get("marketplace-resources/", &[offering.clone(), one.clone()])?;
        self.target.get("marketplace-orders/", &[offering, one])?;
        Ok(())
    }
}
