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

use super::error::ApiError;

/// Routes whose query belongs to someone else.
const THEIRS: [&str; 1] = ["/api/auth/{*original_path}"];

/// Each documented route's query parameters, by its path template.
#[derive(Debug, Default)]
pub struct QueryParams {
    routes: HashMap<String, HashSet<String>>,
}

/// What the 400 of an unknown query parameter is called in the document.
const REFUSAL: &str = "a query parameter the route does not take";

/// Documents the rule in `doc`: every operation may answer 400 for a query parameter
/// it does not take (added to a 400 it already documents).
pub fn document(doc: &mut OpenApi) {
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            document_operation(operation);
        }
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
                let names = [
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

#[cfg(test)]
mod tests {
    use super::QueryParams;

    fn rules() -> QueryParams {
        let catalogue = keyward_core::permissions::Catalogue::default();
        QueryParams::from_openapi(&super::super::openapi(&catalogue))
    }

    fn detail(result: Result<(), super::ApiError>) -> String {
        let error = result.expect_err("refused");
        assert_eq!(error.status(), axum::http::StatusCode::BAD_REQUEST);
        format!("{error:?}")
    }

    #[test]
    fn a_route_takes_the_parameters_its_entry_lists() {
        let rules = rules();
        rules
            .check("/api/api-keys/{id}/usage", "from=a&to=b")
            .unwrap();
        rules.check("/api/admin/events", "limit=5&after=x").unwrap();
        rules.check("/api/auth", "permissions=READ_GRAPH").unwrap();
        // Percent-encoded names are the names the handler reads.
        rules.check("/api/api-keys/{id}/usage", "%66rom=a").unwrap();
        rules.check("/api/api-keys", "").unwrap();
    }

    #[test]
    fn any_other_parameter_is_refused_naming_it_and_what_the_route_takes() {
        let rules = rules();
        let said = detail(rules.check("/api/api-keys/{id}/usage", "limit=100000000"));
        assert!(
            said.contains(r#"unknown query parameter \"limit\""#),
            "{said}"
        );
        assert!(said.contains("takes from, granularity, to"), "{said}");
        let said = detail(rules.check("/api/api-keys", "x=1"));
        assert!(said.contains("takes no query parameter"), "{said}");
        detail(rules.check("/api/auth", "Permissions=A"));
        // Routes the document does not list (the console's pages) take none.
        detail(rules.check("/console/{name}", "v=2"));
        detail(rules.check("/healthz", "verbose"));
    }

    #[test]
    fn every_operation_documents_the_refusal() {
        let catalogue = keyward_core::permissions::Catalogue::default();
        let doc = super::super::openapi(&catalogue);
        let json = serde_json::to_value(&doc).unwrap();
        let mut operations = 0;
        for (path, item) in json["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let refusal = operation["responses"]["400"]["description"]
                    .as_str()
                    .unwrap_or_default()
                    .to_lowercase();
                assert!(
                    refusal.contains(super::REFUSAL),
                    "{method} {path}: {refusal:?}"
                );
                operations += 1;
            }
        }
        assert!(operations > 25);
    }

    #[test]
    fn the_query_under_envoys_auth_path_is_the_clients_own() {
        rules()
            .check("/api/auth/{*original_path}", "page=2&anything=else")
            .unwrap();
    }
}
