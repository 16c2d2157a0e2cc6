//! The borrowed form of each argument type, for the host's side of a call.
//!
//! A borrowed form serializes to the same JSON as the owned type (`&str` as `String`, `&[T]`
//! as `Vec<T>`, `Option<&T>` as `Option<T>`), so the host encodes arguments straight from
//! what the caller holds and the plugin decodes the owned type: no copy of a 1,000-member
//! user context before each call, and nothing on the wire changes.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::wire::*;

/// An argument type with the borrowed form the host passes.
pub trait Borrowed<'a> {
    /// Serializes exactly as `Self` does.
    type Ref: Serialize + Copy + 'a;
}

impl<'a> Borrowed<'a> for String {
    type Ref = &'a str;
}

impl<'a, T: Serialize + 'a> Borrowed<'a> for Vec<T> {
    type Ref = &'a [T];
}

impl<'a> Borrowed<'a> for Option<String> {
    type Ref = Option<&'a str>;
}

impl<'a, T: Serialize + 'a> Borrowed<'a> for Option<Vec<T>> {
    type Ref = Option<&'a [T]>;
}

/// Plain values travel by value.
macro_rules! by_value {
    ($($t:ty),* $(,)?) => {
        $( impl<'a> Borrowed<'a> for $t { type Ref = $t; } )*
    };
}

/// Structured values travel by reference, and optional ones as an optional reference.
macro_rules! by_reference {
    ($($t:ty),* $(,)?) => {
        $(
            impl<'a> Borrowed<'a> for $t { type Ref = &'a $t; }
            impl<'a> Borrowed<'a> for Option<$t> { type Ref = Option<&'a $t>; }
        )*
    };
}

by_value!(bool, i32, u32);
by_reference!(
    BackendLimits,
    BackendResourceInfo,
    JsonMap,
    Limits,
    OfferingUser,
    Order,
    RuntimeContext,
    UserContext,
    UserOptions,
    WaldurResource,
    Value,
    BTreeMap<String, String>,
);

#[cfg(test)]
mod tests {
    use super::*;

    fn same_json<T: Serialize>(owned: &T, borrowed: impl Serialize) {
        assert_eq!(
            serde_json::to_string(owned).unwrap(),
            serde_json::to_string(&borrowed).unwrap()
        );
    }

    #[test]
    fn borrowed_forms_encode_like_the_owned_types() {
        let name = String::from("acc-1");
        same_json(&name, <String as Borrowed>::Ref::from(name.as_str()));
        let ids = vec!["a".to_string(), "b".to_string()];
        same_json(&ids, ids.as_slice());
        same_json(&Some(name.clone()), Some(name.as_str()));
        same_json(&None::<String>, None::<&str>);
        same_json(&Some(ids.clone()), Some(ids.as_slice()));
        let context = UserContext::default();
        same_json(&Some(context.clone()), Some(&context));
        same_json(&7u32, 7u32);
    }
}
