//! Which query parameters a route takes: those its OpenAPI entry lists, and no other.
//!
//! A parameter a route does not know was ignored (`?limit=100000000` answered 200, a
//! typo in `?form=` silently meant "no filter"; on the auth URL `?Permissions=` would
//! mean "nothing required"), while only `/api/auth` refused them. The
//! rule now holds for every route, in one place, read from the document the routes
//! are built with: a route documented with `from` and `to` takes those; a route whose
//! entry lists none, or that is not in the document (the console's pages), takes none.
//! Names are compared as the handlers read them, percent-decoded.
//!
//! Under Envoy's `/api/auth/<original path>` the query is the end client's own request
//! to the upstream: it is not keyward's to judge.

use std::collections::{HashMap, HashSet};

use axum::http::StatusCode;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

use super::documented::{operations, operations_mut};
use super::error::ApiError;

/// Routes whose query belongs to someone else.
const THEIRS: [&str; 1] = ["/api/auth/{*original_path}"];

/// Each documented route's query parameters, by its path template.
#[derive(Debug, Default)]
pub struct QueryParams {
    routes: HashMap<String, HashSet<String>>,
}

/// What the 400 of an unknown query parameter is called in the document.
pub(crate) const REFUSAL: &str = "a query parameter the route does not take";

/// Documents the rule in `doc`: every operation may answer 400 for a query parameter
/// it does not take (added to a 400 it already documents).
pub fn document(doc: &mut OpenApi) {
    for item in doc.paths.paths.values_mut() {
        operations_mut(item).for_each(document_operation);
    }
}

fn document_operation(operation: &mut Operation) {
    let responses = &mut operation.responses.responses;
    match responses.get_mut("400") {
        Some(RefOr::T(response)) => {
            response.description = format!("{}; or {REFUSAL}", response.description);
        }
        Some(RefOr::Ref(_)) => {}
        None => {
            let mut description = REFUSAL.to_owned();
            description[..1].make_ascii_uppercase();
            let body = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build();
            let response = ResponseBuilder::new()
                .description(description)
                .content("application/json", body)
                .build();
            responses.insert("400".to_owned(), RefOr::T(response));
        }
    }
}

impl QueryParams {
    /// The parameters of every operation in `doc`, by path (a path's methods share
    /// them: no route takes different parameters under different methods).
    pub fn from_openapi(doc: &OpenApi) -> Self {
        let routes = doc
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let names = operations(item)
                    .flat_map(|operation| operation.parameters.iter().flatten())
                    // Parameters are written inline (no `$ref` to a shared one).
                    .filter_map(|parameter| match parameter {
                        RefOr::T(parameter) => Some(parameter),
                        RefOr::Ref(_) => None,
                    })
                    .filter(|parameter| matches!(parameter.parameter_in, ParameterIn::Query))
                    .map(|parameter| parameter.name.clone())
                    .collect();
                (path.clone(), names)
            })
            .collect();
        Self { routes }
    }

    /// `Err` (400) naming the first parameter of `query` that `route` (a path
    /// template) does not take.
    pub fn check(&self, route: &str, query: &str) -> Result<(), ApiError> {
        if THEIRS.contains(&route) {
            return Ok(());
        }
        let taken = self.routes.get(route);
        let unknown = form_urlencoded::parse(query.as_bytes())
            .map(|(name, _)| name)
            .find(|name| !taken.is_some_and(|taken| taken.contains(name.as_ref())));
        let Some(unknown) = unknown else {
            return Ok(());
        };
        let mut known: Vec<&str> = taken.into_iter().flatten().map(String::as_str).collect();
        known.sort_unstable();
        let takes = if known.is_empty() {
            "this route takes no query parameter".to_owned()
        } else {
            format!("this route takes {}", known.join(", "))
        };
        // Quoted with Rust's escapes: a client's text, shown back without control
        // characters.
        Err(
            ApiError::new(StatusCode::BAD_REQUEST, "Unknown query parameter")
                .detail(format!("unknown query parameter {unknown:?}: {takes}"))
                .hint("Check the parameter's spelling against /openapi.json."),
        )
    }
}
