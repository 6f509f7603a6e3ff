//! Permission names on the wire: the `Permission` schema every permission list
//! refers to, and the catalogue a deployment accepts.

use serde::Serialize;
use utoipa::ToSchema;

/// A permission name from the configured catalogue.
#[derive(ToSchema)]
#[schema(value_type = String, example = "READ_GRAPH")]
#[allow(dead_code)]
pub struct Permission(String);

/// The permission names a deployment accepts.
#[derive(Serialize, ToSchema)]
pub struct PermissionCatalogue {
    #[schema(value_type = Vec<Permission>)]
    pub permissions: Vec<String>,
}
