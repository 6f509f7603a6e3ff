//! Wire values into the core's types, where the core cannot take them as they come.
//!
//! The rules are the core's: what metadata may be is
//! [`Metadata::from_json_object`]'s, what a key's fields may be is
//! `keyward_core::input`'s, and the audit trail's page bounds are
//! `keyward_core::audit::page`'s. Only the step from a JSON value to what the core
//! checks is taken here, because the core has no JSON (it stays free of
//! serialisation); here, not in a transport, so that the HTTP API and the CLI's
//! `--metadata` take the same step.

use std::fmt::Display;

use keyward_core::input::FieldError;
use keyward_core::model::Metadata;

/// Metadata as sent: any JSON object, at most 4 KiB serialised.
pub fn parse_metadata(
    object: serde_json::Map<String, serde_json::Value>,
) -> Result<Metadata, String> {
    Metadata::from_json_object(serde_json::Value::Object(object).to_string())
}

/// An optional field as sent, read by `parse`; a problem is named after the field.
pub fn optional<T, E: Display>(
    name: &str,
    text: Option<&str>,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<Option<T>, String> {
    text.map(parse)
        .transpose()
        .map_err(|e| format!("{name}: {e}"))
}

/// The fields of a body that do not read into their type, collected for one answer.
#[derive(Default)]
pub(crate) struct Unreadable(pub(crate) Vec<FieldError>);

impl Unreadable {
    /// `value` read with `read`; `None` (and the problem noted) when it does not read.
    pub(crate) fn read<T, U, E: ToString>(
        &mut self,
        field: &'static str,
        value: Option<T>,
        read: impl FnOnce(T) -> Result<U, E>,
    ) -> Option<U> {
        match value.map(read)? {
            Ok(read) => Some(read),
            Err(problem) => {
                self.0.push(FieldError {
                    field,
                    message: problem.to_string(),
                });
                None
            }
        }
    }

    /// A field that may be cleared (`Some(None)`), read as [`Self::read`].
    pub(crate) fn read_change<T, U, E: ToString>(
        &mut self,
        field: &'static str,
        value: Option<Option<T>>,
        read: impl FnOnce(T) -> Result<U, E>,
    ) -> Option<Option<U>> {
        match value {
            None => None,
            Some(None) => Some(None),
            Some(Some(value)) => self.read(field, Some(value), read).map(Some),
        }
    }
}

/// A body that must be a JSON object. Serde reads a struct whose fields are all
/// optional from `[]` as well, which for a `PUT` would replace everything with
/// nothing: this refuses it (422) before the struct is read.
pub struct Object<T>(pub T);

impl<'de, T: serde::de::DeserializeOwned> serde::Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let object = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        serde_json::from_value(serde_json::Value::Object(object))
            .map(Self)
            .map_err(D::Error::custom)
    }
}
