//! The OpenAPI documentation routes share, written once.
//!
//! - Each resource of [`routes`](super::routes) names its tag and [`Callers`];
//!   [`resource`] gives each of its operations the tag and, where every route has
//!   the same callers, their security scheme and the 401 for a missing or invalid
//!   credential. A service's route names the scope it needs in its own annotation,
//!   `security(("service_token" = ["keys.read"]))`, and is given the 403 for a
//!   credential without it; one that names none is open to every service.
//! - The refusals many routes share are response groups: a route's `responses(...)`
//!   names the groups it may answer, beside what is its own.

use utoipa::IntoResponses;
use utoipa::openapi::PathItem;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::SecurityRequirement;
use utoipa_axum::router::OpenApiRouter;

use super::error::ErrorBody;

/// Who calls every route of a resource.
#[derive(Clone, Copy, Debug)]
pub enum Callers {
    /// Users, with a JWT from the platform's identity provider.
    Users,
    /// The platform's services, with a service credential holding the scope each
    /// route names, or the static service token.
    Services,
    /// Each route says so in its own annotation.
    PerRoute,
}

/// `router`'s operations, tagged `tag` and documented as called by `callers`.
pub fn resource<S>(tag: &str, callers: Callers, mut router: OpenApiRouter<S>) -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    let (scheme, refusal) = match callers {
        Callers::Users => ("user_jwt", UserToken::responses()),
        Callers::Services => ("service_token", ServiceToken::responses()),
        Callers::PerRoute => ("", Default::default()),
    };
    for item in router.get_openapi_mut().paths.paths.values_mut() {
        for operation in operations_mut(item) {
            operation.tags = Some(vec![tag.to_owned()]);
            if scheme.is_empty() {
                continue;
            }
            operation.responses.responses.extend(refusal.clone());
            match operation.security {
                // A service route that names its scope may refuse a credential without it.
                Some(_) => operation
                    .responses
                    .responses
                    .extend(MissingScope::responses()),
                None => {
                    operation.security =
                        Some(vec![SecurityRequirement::new(scheme, Vec::<String>::new())]);
                }
            }
        }
    }
    router
}

/// Every operation of a path, whatever its method.
pub fn operations(item: &PathItem) -> impl Iterator<Item = &Operation> {
    [
        &item.get,
        &item.put,
        &item.post,
        &item.delete,
        &item.options,
        &item.head,
        &item.patch,
        &item.trace,
    ]
    .into_iter()
    .flatten()
}

/// [`operations`], to change.
pub fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .flatten()
}

/// The database cannot be reached, or cannot store changes now.
#[derive(utoipa::IntoResponses)]
pub enum Database {
    /// Database unavailable, or not writable (a full disk)
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// A user's JWT is required.
#[derive(utoipa::IntoResponses)]
pub enum UserToken {
    /// Missing or invalid JWT
    #[response(status = 401)]
    Unauthorized(ErrorBody),
}

/// A service credential (or the static service token) is required.
#[derive(utoipa::IntoResponses)]
pub enum ServiceToken {
    /// Missing or invalid service credential or token
    #[response(status = 401)]
    Unauthorized(ErrorBody),
}

/// The route's scope is required.
#[derive(utoipa::IntoResponses)]
pub enum MissingScope {
    /// The service credential does not hold the scope this route needs (named in the
    /// error's detail)
    #[response(status = 403)]
    Forbidden(ErrorBody),
}

/// A key of the caller's, named by `{id}`.
#[derive(utoipa::IntoResponses)]
pub enum CallersKey {
    /// No such key among the caller's keys
    #[response(status = 404)]
    NotFound(ErrorBody),
}

/// Any key, named by `{id}`.
#[derive(utoipa::IntoResponses)]
pub enum AnyKey {
    /// No such key
    #[response(status = 404)]
    NotFound(ErrorBody),
}

/// A change a user makes, counted against their change limit.
#[derive(utoipa::IntoResponses)]
pub enum UserChange {
    /// Too many changes by this user; see Retry-After
    #[response(status = 429)]
    TooMany(ErrorBody),
}

/// A JSON body.
#[derive(utoipa::IntoResponses)]
pub enum JsonBody {
    /// Body over 64 KiB
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// Body is not JSON
    #[response(status = 415)]
    NotJson(ErrorBody),
}

/// Fields only the platform sets, refused to a key's owner.
#[derive(utoipa::IntoResponses)]
pub enum PlatformFields {
    /// remaining or rate_limit: set by the platform (PATCH /api/admin/api-keys/{id})
    #[response(status = 403)]
    Forbidden(ErrorBody),
}
