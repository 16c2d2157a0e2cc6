//! Gives plugins the agent's Waldur client: the host API's `waldur_request` callback, called
//! from a plugin on a blocking thread, runs the async request on the agent's runtime.

use serde_json::Value;
use tokio::runtime::Handle;
use waldur_plugin_abi::Error as AbiError;

use crate::plugins::WaldurGateway;
use crate::waldur::WaldurClient;

/// A [`WaldurGateway`] over one offering's client.
pub struct ClientGateway {
    client: WaldurClient,
    runtime: Handle,
}

impl ClientGateway {
    /// Must be created inside the agent's tokio runtime.
    pub fn new(client: WaldurClient) -> Self {
        Self {
            client,
            runtime: Handle::current(),
        }
    }
}

impl WaldurGateway for ClientGateway {
    fn request(
        &self,
        method: &str,
        path: &str,
        query: &Value,
        body: Option<&Value>,
    ) -> Result<Value, AbiError> {
        // Plugin calls run on blocking threads (spawn_blocking), where blocking on the runtime
        // is allowed; an async worker would deadlock here, which is why plugins are never
        // called from one.
        self.runtime
            .block_on(self.client.plugin_request(method, path, query, body))
            .map_err(|e| {
                if e.is_transient() {
                    AbiError::not_ready(e.to_string())
                } else {
                    AbiError::backend(e.to_string())
                }
            })
    }
}
