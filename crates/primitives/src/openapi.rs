//! OpenAPI schemas of the primitive types the HTTP API shows ([`Hash`](struct@crate::types::Hash), [`Address`]), with the
//! patterns a generated client validates before sending. Only with the `openapi` feature, which the
//! API enables; utoipa builds schema documents and does no I/O.

use std::borrow::Cow;

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::types::{Address, Hash};

impl PartialSchema for Hash {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("A BLAKE3-256 hash (block hash, transaction id): 64 lowercase hex digits."))
            .pattern(Some("^[0-9a-f]{64}$"))
            .examples([serde_json::json!("908bf381bbec09dba20b400b784d38edd92c21d82a4d5474361f03efe9e6f940")])
            .into()
    }
}

impl ToSchema for Hash {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Hash")
    }
}

impl PartialSchema for Address {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("An account: its ed25519 public key as bech32m with the `vis` prefix."))
            .pattern(Some("^vis1[02-9ac-hj-np-z]{58}$"))
            .examples([serde_json::json!("vis18vylnagnq8445f3dhv6d26vhcu44lqckd93gll7004xxz8ynkv5q9ce03x")])
            .into()
    }
}

impl ToSchema for Address {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Address")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The examples in the hash and address schemas parse as the real types.
    #[test]
    fn schema_examples_parse() {
        let example = |s: RefOr<Schema>| match s {
            RefOr::T(Schema::Object(o)) => o.examples[0].as_str().unwrap().to_string(),
            _ => panic!("not an object schema"),
        };
        example(Hash::schema()).parse::<Hash>().unwrap();
        example(Address::schema()).parse::<Address>().unwrap();
    }
}
