//! Resource API keys (the reference's `generate_resource_keys`, `rotate_resource_key`,
//! `prune_unknown_resource_keys`), kept per account in the state.
//!
//! Keys are deterministic, so tests can predict them: client ids are `<account>-key-<n>`
//! (`n` counts every key the account ever minted) and a value is derived from the account,
//! the client id and the rotation count. They are NOT secret: the demo is for tests.

use std::collections::BTreeSet;

use waldur_plugin_abi::wire::ResourceKey;
use waldur_plugin_abi::{Error, Result};

use crate::state::{Account, ApiKey, State};

/// The value of a key: `dk_` and 16 hex digits of an FNV-1a hash.
pub fn key_value(account: &str, client_id: &str, rotations: u32) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let text = format!("{account}\0{client_id}\0{rotations}");
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("dk_{hash:016x}")
}

/// Mints `count` new keys on the account.
pub fn mint(state: &mut State, account: &str, count: u32) -> Result<Vec<ResourceKey>> {
    let entry = state.account_mut(account)?;
    let mut minted = Vec::with_capacity(count as usize);
    for _ in 0..count {
        entry.keys_minted += 1;
        let client_id = format!("{account}-key-{}", entry.keys_minted);
        let api_key = key_value(account, &client_id, 0);
        entry.api_keys.insert(
            client_id.clone(),
            ApiKey {
                api_key: api_key.clone(),
                rotations: 0,
            },
        );
        minted.push(ResourceKey { client_id, api_key });
    }
    Ok(minted)
}

/// Gives the key a new value (its client id stays) and answers it. With `known` (the client
/// ids Waldur holds), keys Waldur never learned about are dropped too.
pub fn rotate(
    state: &mut State,
    account: &str,
    client_id: &str,
    known: Option<&[String]>,
) -> Result<String> {
    let entry = state.account_mut(account)?;
    let key = entry.api_keys.get_mut(client_id).ok_or_else(|| {
        Error::backend(format!(
            "demo: account {account} has no API key {client_id}"
        ))
    })?;
    key.rotations += 1;
    key.api_key = key_value(account, client_id, key.rotations);
    let value = key.api_key.clone();
    if let Some(known) = known {
        let mut keep: BTreeSet<&str> = known.iter().map(String::as_str).collect();
        keep.insert(client_id);
        drop_unknown(entry, &keep);
    }
    Ok(value)
}

/// Drops every key of the account whose client id is not in `keep`; answers how many.
pub fn prune(state: &mut State, account: &str, keep: &[String]) -> Result<usize> {
    let entry = state.account_mut(account)?;
    Ok(drop_unknown(
        entry,
        &keep.iter().map(String::as_str).collect(),
    ))
}

fn drop_unknown(account: &mut Account, keep: &BTreeSet<&str>) -> usize {
    let before = account.api_keys.len();
    account
        .api_keys
        .retain(|client_id, _| keep.contains(client_id.as_str()));
    before - account.api_keys.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        let mut state = State::default();
        state.create_account("a", "A", "p", None, "root").unwrap();
        state
    }

    #[test]
    fn minted_keys_are_deterministic_and_never_reuse_a_client_id() {
        let mut state = state();
        let keys = mint(&mut state, "a", 2).unwrap();
        assert_eq!(keys[0].client_id, "a-key-1");
        assert_eq!(keys[1].client_id, "a-key-2");
        assert_eq!(keys[0].api_key, key_value("a", "a-key-1", 0));
        assert_ne!(keys[0].api_key, keys[1].api_key);
        prune(&mut state, "a", &[]).unwrap();
        assert_eq!(mint(&mut state, "a", 1).unwrap()[0].client_id, "a-key-3");
        assert!(mint(&mut state, "missing", 1).is_err());
    }

    #[test]
    fn rotation_changes_the_value_and_drops_keys_waldur_does_not_know() {
        let mut state = state();
        let keys = mint(&mut state, "a", 3).unwrap();
        let new = rotate(&mut state, "a", "a-key-1", None).unwrap();
        assert_ne!(new, keys[0].api_key);
        assert_eq!(new, key_value("a", "a-key-1", 1));
        let known = vec!["a-key-2".to_string()];
        rotate(&mut state, "a", "a-key-1", Some(&known)).unwrap();
        let left: Vec<&String> = state.accounts["a"].api_keys.keys().collect();
        assert_eq!(left, ["a-key-1", "a-key-2"]);
        let err = rotate(&mut state, "a", "a-key-9", None).unwrap_err();
        assert_eq!(err.message, "demo: account a has no API key a-key-9");
    }

    #[test]
    fn prune_keeps_only_the_given_keys() {
        let mut state = state();
        mint(&mut state, "a", 3).unwrap();
        let keep = vec!["a-key-3".to_string(), "other".to_string()];
        assert_eq!(prune(&mut state, "a", &keep).unwrap(), 2);
        assert_eq!(state.accounts["a"].api_keys.len(), 1);
    }
}
