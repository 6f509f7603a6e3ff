//! A user's shapes: what deleting a user answers.

use serde::Serialize;
use utoipa::ToSchema;

/// A deleted user.
#[derive(Serialize, ToSchema)]
pub struct DeletedUserResponse {
    pub user_id: String,
    /// How many keys were removed.
    pub deleted_keys: u64,
}
