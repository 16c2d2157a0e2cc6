//! `#[waldur_plugin_abi::backend_impl]`: records which SDK trait methods an `impl` block
//! writes out, so the plugin manifest and `waldur-agent plugins inspect` can tell vendors and
//! site administrators which optional methods a plugin really implements. Rust offers no other
//! way to tell an overridden trait method from its default body.

use proc_macro::TokenStream;
use quote::quote;
use syn::{parse_macro_input, ImplItem, ItemImpl};

/// Methods that every implementation has or that are not backend operations.
const NOT_LISTED: &[&str] = &["new", "validate_settings", "validate_components"];

#[proc_macro_attribute]
pub fn backend_impl(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return syn::Error::new(
            proc_macro2::Span::call_site(),
            "#[backend_impl] takes no arguments",
        )
        .to_compile_error()
        .into();
    }
    let mut block = parse_macro_input!(item as ItemImpl);
    if block.trait_.is_none() {
        return syn::Error::new_spanned(
            &block.self_ty,
            "#[backend_impl] goes on `impl Backend for T` or `impl UsernameBackend for T`",
        )
        .to_compile_error()
        .into();
    }
    let already_listed = block
        .items
        .iter()
        .any(|item| matches!(item, ImplItem::Const(c) if c.ident == "IMPLEMENTED"));
    if !already_listed {
        let names: Vec<String> = block
            .items
            .iter()
            .filter_map(|item| match item {
                ImplItem::Fn(f) => Some(f.sig.ident.to_string()),
                _ => None,
            })
            .filter(|name| !NOT_LISTED.contains(&name.as_str()))
            .collect();
        block.items.push(syn::parse_quote! {
            const IMPLEMENTED: &'static [&'static str] = &[#(#names),*];
        });
    }
    quote!(#block).into()
}
